#!/usr/bin/env python3
"""Generates a synthetic cluster for benchmarks: namespaces, pods (with status.podIP) and
NetworkPolicies, in files both Palisade and IBM's network-config-analyzer read.

Usage: gen_cluster.py --pods N --policies P [--seed S] --out DIR

Layout of DIR: namespaces.yaml (NamespaceList), pods.yaml (PodList), policies/ (one
multi-document file per namespace). With --format json: namespaces.json, pods.json and one
List per namespace in policies/, as `kubectl get ... -o json` writes them. 50 pods per namespace, 10 apps of 5 replicas (two
versions), tiers with their own ports (named ports that map to different numbers on
different tiers), and a mix of policies: default-deny, same-namespace allows, cross-namespace
AND peers, named ports, endPort ranges, ipBlocks with except, egress with DNS, matchExpressions.
"""
import argparse
import json
import ipaddress
import os
import random

import yaml

PODS_PER_NS = 50
TIERS = {
    "web": [{"containerPort": 80, "name": "http"}],
    "api": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
    "db": [{"containerPort": 5432, "name": "db"}],
    "cache": [{"containerPort": 6379, "name": "redis"}],
    "worker": [],
}
TIER_NAMES = list(TIERS)
TEAMS = ["t0", "t1", "t2", "t3", "t4"]
ENVS = ["prod", "dev", "staging"]


def namespaces(n, rng):
    out = []
    for i in range(n):
        name = f"ns-{i}"
        labels = {"kubernetes.io/metadata.name": name, "team": TEAMS[i % len(TEAMS)], "env": ENVS[rng.randrange(len(ENVS))]}
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    out.append({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "kube-system", "labels": {"kubernetes.io/metadata.name": "kube-system"}}})
    return out


def pods(count, n_ns, nodes=0, interleave=False):
    out = []
    network = ipaddress.ip_network("10.244.0.0/16")
    for i in range(count):
        if interleave:
            # Round-robin: a namespace's pods hold scattered addresses, as when they run on
            # many nodes, each with its own pod CIDR.
            ns, local = f"ns-{i % n_ns}", i // n_ns
        else:
            ns = f"ns-{i // PODS_PER_NS}" if i // PODS_PER_NS < n_ns else f"ns-{n_ns - 1}"
            local = i % PODS_PER_NS
        app = local // 5
        tier = TIER_NAMES[app % len(TIER_NAMES)]
        labels = {"app": f"app-{app}", "tier": tier, "version": "v1" if local % 5 < 3 else "v2"}
        containers = [{"name": "main", "image": "registry.example/app:1", "ports": TIERS[tier]}]
        if not TIERS[tier]:
            containers[0].pop("ports")
        out.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{labels['app']}-{local}", "namespace": ns, "labels": labels},
            "spec": {"containers": containers, **({"nodeName": f"node-{i % nodes}"} if nodes else {})},
            "status": {"phase": "Running", "podIP": str(network[i + 10])},
        })
    # Cluster DNS, the usual egress destination.
    out.append({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"containers": [{"name": "dns", "image": "coredns", "ports": [
            {"containerPort": 53, "protocol": "UDP", "name": "dns"}, {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"}]}]},
        "status": {"phase": "Running", "podIP": "10.244.255.2"},
    })
    return out


def policy(ns, name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def app_selector(rng):
    return {"matchLabels": {"app": f"app-{rng.randrange(10)}"}}


def make_policy(ns, index, rng, n_ns, exists_peers, pod_ipblocks):
    kind = rng.choices(range(10), weights=[8, 20, 14, 12, 8, 8, 10, 6, 8, 6])[0]
    name = f"np-{index}"
    other_team = {"matchExpressions": [{"key": "team", "operator": "In", "values": rng.sample(TEAMS, 2)}]}
    if kind == 0:
        return policy(ns, name, {"podSelector": {}, "policyTypes": ["Ingress"]})
    if kind == 1:
        return policy(ns, name, {"podSelector": app_selector(rng), "policyTypes": ["Ingress"], "ingress": [
            {"from": [{"podSelector": app_selector(rng)}, {"podSelector": {"matchLabels": {"tier": rng.choice(TIER_NAMES)}}}],
             "ports": [{"port": rng.choice([80, 8080, 5432, 6379]), "protocol": "TCP"}]}]})
    if kind == 2:
        return policy(ns, name, {"podSelector": {"matchLabels": {"tier": "api"}}, "ingress": [
            {"from": [{"namespaceSelector": other_team, "podSelector": {"matchLabels": {"tier": "web"}}}],
             "ports": [{"port": "http"}, {"port": "metrics"}]}]})
    if kind == 3:
        return policy(ns, name, {"podSelector": app_selector(rng), "policyTypes": ["Egress"], "egress": [
            {"to": [{"namespaceSelector": {"matchLabels": {"env": rng.choice(ENVS)}}, "podSelector": {"matchLabels": {"tier": "db"}}}],
             "ports": [{"port": 5432}]},
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})
    if kind == 4:
        # Outside addresses by default; with --pod-ipblocks the block covers pod addresses, which
        # NetworkPolicy matches (upstream e2e 34-36) and NCA 2.1.0 does not.
        if pod_ipblocks:
            third = rng.randrange(max(1, (n_ns * PODS_PER_NS) // 256 + 1))
            block = {"cidr": "10.244.0.0/16", "except": [f"10.244.{third}.0/24"]}
        else:
            block = {"cidr": "192.168.0.0/16", "except": [f"192.168.{rng.randrange(256)}.0/24"]}
        return policy(ns, name, {"podSelector": {"matchLabels": {"tier": rng.choice(["web", "api"])}}, "ingress": [
            {"from": [{"ipBlock": block}, {"podSelector": {"matchLabels": {"tier": "web"}}}],
             "ports": [{"port": 8000, "endPort": 8100}, {"port": 80}]}]})
    if kind == 5:
        return policy(ns, name, {"podSelector": {"matchLabels": {"tier": "worker"}}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]},
            {"to": [{"podSelector": {}}]}]})
    if kind == 6:
        return policy(ns, name, {"podSelector": {"matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v1"]}]},
                                 "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                                     {"key": "env", "operator": "In", "values": ["prod", "staging"]}]}}]}]})
    if kind == 7:
        return policy(ns, name, {"podSelector": {"matchLabels": {"tier": "cache"}}, "ingress": [{}]})
    if kind == 8:
        return policy(ns, name, {"podSelector": app_selector(rng), "ingress": [
            {"ports": [{"protocol": "UDP"}, {"protocol": "SCTP", "port": 9}]},
            {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"tier": "api"}}}], "ports": [{"port": "db"}]}]})
    # kind 9: selector operators, with Exists in a combined peer only when asked (NCA 2.1.0
    # mishandles it; see compare.py).
    pods_sel = {"matchExpressions": [{"key": "version", "operator": "Exists" if exists_peers else "In",
                                      **({} if exists_peers else {"values": ["v1", "v2"]})}]}
    return policy(ns, name, {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]},
                             "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": rng.choice(TEAMS)}}, "podSelector": pods_sel}]}]})


def make_cluster_policy(i, rng, n_ns):
    """A ClusterNetworkPolicy of 25 rules per direction: subjects by team or env, peers of
    every kind, Accept/Deny/Pass, ports and ranges."""
    tier = "Admin" if i % 2 == 0 else "Baseline"
    subject = ({"namespaces": {"matchLabels": {"team": TEAMS[i % len(TEAMS)]}}} if i % 3
               else {"pods": {"namespaceSelector": {"matchLabels": {"env": ENVS[i % len(ENVS)]}}, "podSelector": {"matchLabels": {"tier": TIER_NAMES[i % len(TIER_NAMES)]}}}})

    def peer(j):
        kind = j % 4
        if kind == 0:
            return {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": f"ns-{rng.randrange(n_ns)}"}}}
        if kind == 1:
            return {"pods": {"namespaceSelector": {"matchLabels": {"team": TEAMS[j % len(TEAMS)]}}, "podSelector": {"matchLabels": {"app": f"app-{j % 10}"}}}}
        if kind == 2:
            return {"networks": [f"10.{rng.randrange(256)}.0.0/16", f"192.0.2.{4 * rng.randrange(64)}/30"]}
        return {"namespaces": {"matchLabels": {"env": ENVS[j % len(ENVS)]}}}

    def rules(direction):
        out = []
        for j in range(25):
            action = ["Accept", "Deny", "Pass"][(i + j) % 3]
            peers = [peer(j), peer(j + 1)]
            if direction == "ingress":
                peers = [p for p in peers if "networks" not in p] or [{"namespaces": {}}]
            rule = {"name": f"r{j}", "action": action, ("from" if direction == "ingress" else "to"): peers}
            if j % 2:
                port = 8000 + j
                rule["protocols"] = [{"tcp": {"destinationPort": {"number": port}}}, {"udp": {"destinationPort": {"range": {"start": 5000, "end": 5000 + j}}}}]
            out.append(rule)
        return out

    return {"apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": f"cnp-{i}"},
            "spec": {"tier": tier, "priority": rng.randrange(1001), "subject": subject,
                     "ingress": rules("ingress"), "egress": rules("egress")}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, required=True)
    parser.add_argument("--policies", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--exists-peers", action="store_true",
                        help="let some combined peers use Exists (NCA 2.1.0 gets these wrong)")
    parser.add_argument("--pod-ipblocks", action="store_true",
                        help="let some ipBlocks cover pod addresses (NCA 2.1.0 never matches pods by ipBlock)")
    parser.add_argument("--cluster-policies", type=int, default=0,
                        help="also this many ClusterNetworkPolicies (25 rules each, both tiers) in cluster-policies.yaml")
    parser.add_argument("--nodes", type=int, default=0,
                        help="give pod i spec.nodeName node-<i mod NODES>, for one node's table (`dataplane render --node node-1`)")
    parser.add_argument("--interleave", action="store_true",
                        help="pod i in namespace i mod NAMESPACES: a namespace's addresses scattered over the pod network, not one block")
    parser.add_argument("--format", choices=["yaml", "json"], default="yaml",
                        help="yaml (block style with flow leaves) or json (kubectl -o json style)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n_ns = max(1, (args.pods + PODS_PER_NS - 1) // PODS_PER_NS)
    os.makedirs(os.path.join(args.out, "policies"), exist_ok=True)
    ext = args.format

    def dump(path, obj):
        with open(f"{path}.{ext}", "w") as f:
            if ext == "json":
                json.dump(obj, f, indent=4)
                f.write("\n")
            else:
                yaml.safe_dump(obj, f, sort_keys=False, default_flow_style=None)

    dump(os.path.join(args.out, "namespaces"), {"apiVersion": "v1", "kind": "NamespaceList", "items": namespaces(n_ns, rng)})
    dump(os.path.join(args.out, "pods"), {"apiVersion": "v1", "kind": "PodList", "items": pods(args.pods, n_ns, args.nodes, args.interleave)})
    by_ns = {}
    for i in range(args.policies):
        ns = f"ns-{rng.randrange(n_ns)}"
        by_ns.setdefault(ns, []).append(make_policy(ns, i, rng, n_ns, args.exists_peers, args.pod_ipblocks))
    for ns, items in by_ns.items():
        if ext == "json":
            dump(os.path.join(args.out, "policies", ns), {"apiVersion": "v1", "kind": "List", "items": items})
        else:
            with open(os.path.join(args.out, "policies", f"{ns}.yaml"), "w") as f:
                yaml.safe_dump_all(items, f, sort_keys=False, default_flow_style=None)
    if args.cluster_policies:
        items = [make_cluster_policy(i, rng, n_ns) for i in range(args.cluster_policies)]
        with open(os.path.join(args.out, f"cluster-policies.{ext}"), "w") as f:
            if ext == "json":
                json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f, indent=4)
            else:
                yaml.safe_dump_all(items, f, sort_keys=False, default_flow_style=None)
    print(f"{args.out}: {n_ns} namespaces, {args.pods} pods (+1 DNS pod), {args.policies} policies, {args.cluster_policies} cluster policies")


if __name__ == "__main__":
    main()
