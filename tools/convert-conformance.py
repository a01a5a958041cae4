#!/usr/bin/env python3
"""Transcribes the upstream NetworkPolicy e2e cases into Palisade's conformance format.

Input: the machine-readable transcription of kubernetes/kubernetes
test/e2e/network/netpol/network_policy.go (../shared/conformance/k8s-e2e-cases.yaml).
Output: crates/palisade-conformance/cases/e2e-NN.yaml, one file per case, each with two
variants: the newest upstream topology, and the older fixed 9-pod model. Probe expectations
become truth tables ('.' allowed, 'X' denied, '-' loopback, not probed), the form the
upstream suite prints.

Usage: tools/convert-conformance.py [SOURCE] [OUTPUT_DIR]
"""
import os
import sys

import yaml

ALL_PODS = [f"{ns}/{p}" for ns in "xyz" for p in "abc"]


def table(pods, expect):
    """expect: dict (from, to) -> 'allow'|'deny' for every non-loopback pair."""
    corner = "from\\to"
    label = max(len(corner), max(len(p) for p in pods)) + 1
    width = max(len(p) for p in pods)
    rows = [(corner.ljust(label) + " ".join(p.ljust(width) for p in pods)).rstrip()]
    for src in pods:
        cells = ["-" if src == dst else ("." if expect[(src, dst)] == "allow" else "X") for dst in pods]
        rows.append((src.ljust(label) + " ".join(c.ljust(width) for c in cells)).rstrip())
    return "\n".join(rows) + "\n"


def newest_steps(case):
    steps = []
    pods = case["topology"]
    for step in case["steps"]:
        if step["action"] != "probe":
            steps.append(dict(step))
            continue
        expect = {}
        for probe in step["probes"]:
            assert probe["port"] == step["port"] and probe["protocol"] == step["protocol"]
            expect[(probe["from"], probe["to"])] = probe["expect"]
        missing = [(a, b) for a in pods for b in pods if a != b and (a, b) not in expect]
        assert not missing, (case["id"], missing)
        steps.append({"action": "probe", "port": f"{step['port']}/{step['protocol']}", "expect": table(pods, expect)})
    return steps


def full_model_steps(case):
    full = case["full_model_3x3"]
    probes = iter(full["probe_steps"])
    steps = []
    for step in case["steps"]:
        if step["action"] != "probe":
            step = dict(step)
            if "instead of" in full["topology"]:
                # e2e-35/36: the older suite used an unmasked '<x/a podIP>/4' prefix.
                text = yaml.safe_dump(step["policy"]).replace("'{{largeCIDR x/b}}'", "'{{podIP x/a}}/4'")
                step["policy"] = yaml.safe_load(text)
            steps.append(step)
            continue
        probe = next(probes)
        assert probe["default"] == "allow"
        denied = {tuple(p.split(" -> ")) for p in probe.get("deny", [])}
        expect = {(a, b): ("deny" if (a, b) in denied else "allow") for a in ALL_PODS for b in ALL_PODS if a != b}
        steps.append({"action": "probe", "port": f"{probe['port']}/{probe['protocol']}", "expect": table(ALL_PODS, expect)})
    assert next(probes, None) is None, case["id"]
    return steps


class LiteralDumper(yaml.SafeDumper):
    pass


def str_presenter(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


LiteralDumper.add_representer(str, str_presenter)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    source = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "../../shared/conformance/k8s-e2e-cases.yaml")
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "../crates/palisade-conformance/cases")
    with open(source) as f:
        cases = yaml.safe_load(f)["cases"]
    os.makedirs(out_dir, exist_ok=True)
    for case in cases:
        number = case["id"].rsplit("-", 1)[1]
        doc = {
            "id": f"e2e-{number}",
            "title": case["title"],
            "upstream": case["name"],
            "servers": [f"{port}/{proto}" for port in case["servers"]["ports"] for proto in case["servers"]["protocols"]],
            "variants": [
                {"name": "newest", "pods": case["topology"], "steps": newest_steps(case)},
                {"name": "full-3x3", "pods": ALL_PODS, "steps": full_model_steps(case)},
            ],
        }
        if case.get("notes"):
            doc["notes"] = case["notes"]
        header = (
            "# Upstream NetworkPolicy e2e case, transcribed by tools/convert-conformance.py from\n"
            "# kubernetes/kubernetes test/e2e/network/netpol/network_policy.go.\n"
            "# Truth tables: rows are clients, columns servers; '.' allowed, 'X' denied, '-' not probed.\n"
        )
        with open(os.path.join(out_dir, f"e2e-{number}.yaml"), "w") as f:
            f.write(header)
            yaml.dump(doc, f, Dumper=LiteralDumper, sort_keys=False, width=120)
    print(f"wrote {len(cases)} cases to {out_dir}")


if __name__ == "__main__":
    main()
