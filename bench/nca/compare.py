#!/usr/bin/env python3
"""Runs IBM's network-config-analyzer (NCA) and `palisade matrix` on the same generated
cluster, checks that both give the same pod-to-pod answers, and prints the time ratio.

NCA's pod-to-pod map (`--output_format txt_no_fw_rules --output_endpoints pods`) lists, for
every pair of pods, the connections allowed ("All connections" or {protocols, dst_ports}
groups). Palisade's `matrix -o json` lists every (pair, port, protocol) probe. Each Palisade
probe is looked up in NCA's map; extra probes on ports nobody declares check that neither
tool allows too much.

Usage: compare.py --input DIR --palisade BIN --nca BIN --out DIR [--runs N]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

EXTRA_PROBES = [("443", "TCP"), ("8050", "TCP"), ("53", "UDP"), ("9", "SCTP"), ("1", "TCP")]


def timed(cmd, **kw):
    """Wall time and peak RSS in KiB of one run, both from this process (wait4's rusage), so
    no wrapper process adds to either tool's time."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, **kw)
    _, status, rusage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed with status {proc.returncode}")
    return elapsed, rusage.ru_maxrss


def input_file(inp, name):
    """pods.yaml or pods.json (gen_cluster.py --format)."""
    yaml_path = os.path.join(inp, f"{name}.yaml")
    return yaml_path if os.path.exists(yaml_path) else os.path.join(inp, f"{name}.json")


def parse_nca(path):
    """{(src, dst): [(protocols or None, ports or None)]}: None protocols = all connections."""
    allowed = {}
    line_re = re.compile(r"^(\S+) => (\S+) : (.*)$")
    with open(path) as f:
        for line in f:
            m = line_re.match(line.strip())
            if not m:
                continue
            src, dst, conns = m.groups()
            if "/" not in src or "/" not in dst:
                continue  # an IP range, not a pod
            groups = allowed.setdefault((src, dst), [])
            if conns.startswith("All connections"):
                groups.append((None, None))
                continue
            for body in re.findall(r"\{([^}]*)\}", conns):
                protocols, ports, mode = set(), [], None
                for token in (t.strip() for t in body.split(",")):
                    if token.startswith("protocols:"):
                        mode, token = "p", token[len("protocols:"):]
                    elif token.startswith("dst_ports:"):
                        mode, token = "d", token[len("dst_ports:"):]
                    if mode == "p":
                        protocols.add(token)
                    elif mode == "d":
                        low, _, high = token.partition("-")
                        ports.append((int(low), int(high or low)))
                groups.append((protocols, ports or None))
    return allowed


def nca_allows(nca, src, dst, port, protocol):
    for protocols, ports in nca.get((src, dst), []):
        if protocols is None:
            return True
        if protocol in protocols and (ports is None or any(lo <= port <= hi for lo, hi in ports)):
            return True
    return False


def palisade_entries(path):
    with open(path) as f:
        doc = json.load(f)
    for e in doc["entries"]:
        yield e["from"], e["to"], int(e["port"]), e["protocol"], e["allowed"]


def palisade_csv(path):
    with open(path) as f:
        next(f)
        for line in f:
            src, dst, port, protocol, allowed = line.rstrip("\n").split(",")
            yield src, dst, int(port), protocol, allowed == "true"


# Known NCA 2.1.0 deviations from upstream NetworkPolicy semantics.
CAUSES = {
    "ipblock-pod": "an ipBlock that contains a pod address allowed it; NetworkPolicy matches ipBlocks against pod "
                   "addresses (upstream e2e 34-36), NCA 2.1.0 only against addresses outside the cluster",
    "exists-combined": "a peer combining namespaceSelector with a podSelector using Exists/DoesNotExist allowed it; "
                       "NCA 2.1.0 looks for such pods only in the policy's own namespace",
    "unexplained": "not a known NCA deviation: inspect by hand",
}


def peer_cause(policies, ref):
    """The known-deviation cause of the peer a rule reference names, or None if ordinary."""
    if ref.get("peer") is None:
        return None
    spec = policies[(ref["policy"]["namespace"], ref["policy"]["name"])]["spec"]
    direction = ref["direction"].lower()
    field = "from" if direction == "ingress" else "to"
    peer = spec[direction][ref["rule"]][field][ref["peer"]]
    if "ipBlock" in peer:
        return "ipblock-pod"
    exprs = (peer.get("podSelector") or {}).get("matchExpressions") or []
    if "namespaceSelector" in peer and any(e["operator"] in ("Exists", "DoesNotExist") for e in exprs):
        return "exists-combined"
    return None


def classify(report, policies):
    """Why palisade allows what NCA denies: a side whose every allowing peer is a known deviation."""
    flow = report["flows"][0]
    causes = set()
    for side in ("egress", "ingress"):
        verdict = flow[side]
        if verdict["decision"] != "allowed":
            continue
        side_causes = [peer_cause(policies, ref) for ref in verdict["allowedBy"]]
        if all(side_causes):
            causes.update(side_causes)
    return sorted(causes) or ["unexplained"]


def summarize_causes(disagreements, inp, palisade, out_dir):
    """Explains every disagreement by asking palisade which rule and peer decided one flow per
    group of equivalent flows (same source and destination labels, port and direction)."""
    if not disagreements:
        return
    import yaml
    with open(input_file(inp, "pods")) as f:
        labels = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": (p["metadata"]["namespace"],
                  tuple(sorted(p["metadata"].get("labels", {}).items()))) for p in yaml.safe_load(f)["items"]}
    policies = {}
    for name in os.listdir(os.path.join(inp, "policies")):
        with open(os.path.join(inp, "policies", name)) as f:
            for doc in yaml.safe_load_all(f):
                for policy in doc["items"] if doc.get("kind") == "List" else [doc]:
                    policies[(policy["metadata"]["namespace"], policy["metadata"]["name"])] = policy
    groups = {}
    for d in disagreements:
        src, dst, port, protocol, ours, _ = d
        groups.setdefault((labels[src], labels[dst], port, protocol, ours), []).append(d)
    flows_file = os.path.join(out_dir, "disagreement-flows.txt")
    keys = list(groups)
    with open(flows_file, "w") as f:
        for key in keys:
            src, dst, port, protocol, _, _ = groups[key][0]
            f.write(f"{src} {dst} {port} {protocol}\n")
    result = subprocess.run([palisade, "check", "-o", "json", "-f", inp, "--flows", flows_file], capture_output=True, text=True)
    reports = json.loads(result.stdout)
    counts = {}
    for key, report in zip(keys, reports):
        ours = key[4]
        causes = classify(report, policies) if ours else ["unexplained"]
        for cause in causes:
            counts[cause] = counts.get(cause, 0) + len(groups[key])
    print("disagreements by cause (after checking one flow of each of "
          f"{len(keys)} groups of equivalent flows with `palisade check`):")
    for cause, count in sorted(counts.items()):
        print(f"  {count:7d}  {cause}: {CAUSES[cause]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--palisade", required=True)
    ap.add_argument("--nca", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=20, help="palisade runs (best and median are printed)")
    ap.add_argument("--nca-runs", type=int, default=3, help="NCA runs (best and median are printed)")
    ap.add_argument("--nca-output", help="reuse an NCA output file instead of running NCA")
    ap.add_argument("--explain", type=int, default=3, help="print palisade's explanation of this many disagreements")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    inp = args.input

    nca_out = args.nca_output or os.path.join(args.out, "nca.txt")
    pal_json = os.path.join(args.out, "palisade.json")
    times, pal_rss = [], 0

    def run_palisade(count):
        nonlocal pal_rss
        for _ in range(count):
            with open(pal_json, "w") as f:
                elapsed, rss = timed([args.palisade, "matrix", "-o", "json", "-f", inp], stdout=f)
            times.append(elapsed)
            pal_rss = max(pal_rss, rss)

    # The VM's speed drifts over minutes: each NCA run is followed by a share of the palisade
    # runs, so both tools are timed in the same stretches.
    nca_times, nca_rss = [], 0
    if args.nca_output:
        run_palisade(args.runs)
    else:
        print(f"running network-config-analyzer {args.nca_runs} times (this takes a while)...", flush=True)
        for i in range(args.nca_runs):
            elapsed, rss = timed([args.nca, "--connectivity", os.path.join(inp, "policies"),
                                  "--pod_list", input_file(inp, "pods"), "--ns_list", input_file(inp, "namespaces"),
                                  "--output_format", "txt_no_fw_rules", "--output_endpoints", "pods", "--file_out", nca_out],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(args.out, "nca.log"), "w"))
            nca_times.append(elapsed)
            nca_rss = max(nca_rss, rss)
            run_palisade(args.runs // args.nca_runs + (1 if i < args.runs % args.nca_runs else 0))
    pal_time = min(times)
    pal_median = sorted(times)[len(times) // 2]

    extra_csv = os.path.join(args.out, "palisade-extra.csv")
    cmd = [args.palisade, "matrix", "-o", "csv", "-f", inp]
    for port, protocol in EXTRA_PROBES:
        cmd += ["--port", port]
    for protocol in sorted({p for _, p in EXTRA_PROBES}):
        cmd += ["--protocol", protocol]
    with open(extra_csv, "w") as f:
        subprocess.run(cmd, stdout=f, check=True)

    nca = parse_nca(nca_out)
    probes, disagreements = 0, []
    wanted = {(int(p), proto) for p, proto in EXTRA_PROBES}
    for source in (palisade_entries(pal_json), (e for e in palisade_csv(extra_csv) if (e[2], e[3]) in wanted)):
        for src, dst, port, protocol, allowed in source:
            probes += 1
            theirs = nca_allows(nca, src, dst, port, protocol)
            if theirs != allowed:
                disagreements.append((src, dst, port, protocol, allowed, theirs))

    print(f"probes compared: {probes}")
    print(f"disagreements:   {len(disagreements)}")
    for d in disagreements[:20]:
        print("  {} -> {} {}/{}: palisade {}, nca {}".format(d[0], d[1], d[2], d[3],
              "allow" if d[4] else "deny", "allow" if d[5] else "deny"))
    with open(os.path.join(args.out, "disagreements.txt"), "w") as f:
        for d in disagreements:
            f.write("{} -> {} {}/{}: palisade {}, nca {}\n".format(d[0], d[1], d[2], d[3],
                    "allow" if d[4] else "deny", "allow" if d[5] else "deny"))
    summarize_causes(disagreements, inp, args.palisade, args.out)
    for src, dst, port, protocol, _, _ in disagreements[:args.explain]:
        print(f"\n--- palisade check --from {src} --to {dst} --port {port} --protocol {protocol}")
        check = subprocess.run([args.palisade, "check", "-f", inp, "--from", src, "--to", dst, "--port", str(port),
                                "--protocol", protocol], capture_output=True, text=True)
        print(check.stdout)
    print(f"palisade matrix -o json: best of {args.runs}: {pal_time * 1000:.1f} ms (median {pal_median * 1000:.1f} ms), "
          f"max RSS {pal_rss / 1024:.0f} MiB")
    if nca_times:
        nca_best, nca_median = min(nca_times), sorted(nca_times)[len(nca_times) // 2]
        print(f"network-config-analyzer 2.1.0: best of {len(nca_times)}: {nca_best:.1f} s (median {nca_median:.1f} s), "
              f"max RSS {nca_rss / 1024:.0f} MiB")
        print(f"ratio: palisade is {nca_best / pal_time:.0f}x faster (best against best; "
              f"{nca_median / pal_median:.0f}x median against median)")
    return 0 if not disagreements else 1


if __name__ == "__main__":
    sys.exit(main())
