#!/usr/bin/env python3
"""Generates clusters in the shapes users write, for the node-table benchmarks (issue 21).

Unlike gen_cluster.py (tidy: one address block per namespace, 10 apps of 5 replicas), this
one draws what real clusters have:
- `--labels workloads`: Deployments of `--replicas` pods sharing their template's labels
  (app, tier, version, release, pod-template-hash); `--labels per-pod`: every label drawn
  for each pod on its own, so few pods look alike to any selector.
- pods placed on random nodes, each node allocating from its own pod CIDR (10.244.8n.0/21,
  fd00:10:244:n::/64): namespaces interleaved across nodes and address ranges;
- IPv4-only, IPv6-only and dual-stack pods (`--families mixed`, the default), or one kind;
- named ports that map to different numbers on different workloads (`http` is 80, 8080,
  8000 or 3000), endPort ranges, ipBlocks with except over pod ranges and outside ones,
  in both families;
- selectors with In, NotIn, Exists and DoesNotExist, empty (broad) namespace selectors,
  overlapping rules and policies, default-deny policies, egress with DNS;
- optionally ClusterNetworkPolicies (`--cluster-policies N`) with namespaces, pods and
  `networks` peers, Accept/Deny/Pass.

Usage: gen_workloads.py --pods 10000 --policies 1000 --nodes 10 --labels workloads --out DIR
DIR gets namespaces.yaml, pods.yaml, policies.yaml (and cluster-policies.yaml); with
--format json the same as .json (`cargo bench -p palisade --bench agent -- --from DIR`).
"""
import argparse
import ipaddress
import json
import os
import random

import yaml

PODS_PER_NS = 50
APPS = ["web", "api", "db", "cache", "worker", "frontend", "backend", "auth", "payments", "search",
        "queue", "mailer", "gateway", "ledger", "reports", "images", "billing", "profile", "cart", "stock"]
TIERS = ["frontend", "backend", "data"]
VERSIONS = ["v1", "v2", "v3"]
RELEASES = ["stable", "canary"]
TEAMS = [f"t{i}" for i in range(10)]
ENVS = ["prod", "staging", "dev", "qa"]
HTTP_PORTS = [80, 8080, 8000, 3000]
METRICS_PORTS = [9090, 9100, 8081]


def namespaces(n, rng):
    out = []
    for i in range(n):
        name = f"ns-{i}"
        labels = {"kubernetes.io/metadata.name": name, "team": rng.choice(TEAMS), "env": rng.choice(ENVS)}
        if rng.random() < 0.3:
            labels["istio-injection"] = "enabled"
        if rng.random() < 0.1:
            labels["compliance"] = "pci"
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    out.append({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "kube-system", "labels": {"kubernetes.io/metadata.name": "kube-system"}}})
    return out


def template_hash(rng):
    """A pod-template-hash in Kubernetes' alphabet (no vowels), starting with a letter so no
    YAML reader takes it for a number."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return rng.choice(alphabet[:20]) + "".join(rng.choice(alphabet) for _ in range(8))


def draw_labels(rng):
    """One pod template's (or, per pod, one pod's) labels and named ports."""
    app = rng.choice(APPS)
    labels = {"app": app, "tier": rng.choice(TIERS), "version": rng.choice(VERSIONS),
              "pod-template-hash": template_hash(rng)}
    if rng.random() < 0.6:
        labels["release"] = rng.choice(RELEASES)
    if rng.random() < 0.2:
        labels["track"] = "debug"
    ports = [{"containerPort": rng.choice(HTTP_PORTS), "name": "http"}]
    if rng.random() < 0.5:
        ports.append({"containerPort": rng.choice(METRICS_PORTS), "name": "metrics"})
    if app in ("db", "ledger"):
        ports.append({"containerPort": 5432, "name": "db"})
    if app in ("cache", "queue"):
        ports.append({"containerPort": 6379, "name": "db"})
    return labels, ports


class Addresses:
    """Each node hands out addresses from its own pod CIDRs, in order."""

    def __init__(self, nodes):
        self.next = [0] * nodes

    def take(self, node):
        k = self.next[node]
        self.next[node] += 1
        v4 = ipaddress.ip_network(f"10.244.{8 * node}.0/21")[k + 2]
        v6 = ipaddress.ip_network(f"fd00:10:244:{node:x}::/64")[k + 2]
        return str(v4), str(v6)


def pod_families(mode, rng):
    if mode != "mixed":
        return mode
    r = rng.random()
    return "dual" if r < 0.7 else ("v4" if r < 0.9 else "v6")


def pods(count, n_ns, nodes, shape, replicas, families, rng):
    specs = []  # (namespace, name, labels, ports)
    for ns_index in range(n_ns):
        ns = f"ns-{ns_index}"
        in_ns = min(PODS_PER_NS, count - ns_index * PODS_PER_NS)
        workload = 0
        made = 0
        while made < in_ns:
            labels, ports = draw_labels(rng)
            n = min(replicas if shape == "workloads" else 1, in_ns - made)
            for r in range(n):
                if shape == "per-pod" and r:
                    labels, ports = draw_labels(rng)
                specs.append((ns, f"{labels['app']}-{workload}-{r}", dict(labels), [dict(p) for p in ports]))
            made += n
            workload += 1
    # Scheduled in random order on random nodes: a namespace's pods (and a workload's
    # replicas) end up on many nodes, their addresses scattered over the pod network.
    rng.shuffle(specs)
    addresses = Addresses(nodes)
    out = []
    for ns, name, labels, ports in specs:
        node = rng.randrange(nodes)
        v4, v6 = addresses.take(node)
        fam = pod_families(families, rng)
        ips = {"dual": [v4, v6], "v4": [v4], "v6": [v6]}[fam]
        out.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": f"node-{node}", "containers": [{"name": "main", "image": "registry.example/app:1", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]},
        })
    out.append({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"nodeName": "node-0", "containers": [{"name": "dns", "image": "coredns", "ports": [
            {"containerPort": 53, "protocol": "UDP", "name": "dns"}, {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"}]}]},
        "status": {"phase": "Running", "podIP": "10.244.255.2", "podIPs": [{"ip": "10.244.255.2"}, {"ip": "fd00:10:244:ff::2"}]},
    })
    return out


def policy(ns, name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def subject(rng):
    """Who a policy isolates: by app, by expressions, or everyone."""
    r = rng.random()
    if r < 0.45:
        return {"matchLabels": {"app": rng.choice(APPS)}}
    if r < 0.6:
        return {"matchExpressions": [{"key": "tier", "operator": "In", "values": rng.sample(TIERS, 2)}]}
    if r < 0.7:
        return {"matchExpressions": [{"key": "release", "operator": "DoesNotExist"}]}
    if r < 0.8:
        return {"matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v1"]}, {"key": "app", "operator": "Exists"}]}
    return {}


def pod_peer(rng):
    r = rng.random()
    if r < 0.5:
        return {"matchLabels": {"app": rng.choice(APPS)}}
    if r < 0.7:
        return {"matchLabels": {"tier": rng.choice(TIERS)}}
    if r < 0.8:
        return {"matchExpressions": [{"key": "release", "operator": "NotIn", "values": ["canary"]}]}
    if r < 0.9:
        return {"matchExpressions": [{"key": "track", "operator": "DoesNotExist"}, {"key": "tier", "operator": "In", "values": rng.sample(TIERS, 2)}]}
    return {"matchExpressions": [{"key": "version", "operator": "In", "values": rng.sample(VERSIONS, 2)}]}


def namespace_selector(rng):
    r = rng.random()
    if r < 0.25:
        return {"matchLabels": {"team": rng.choice(TEAMS)}}
    if r < 0.45:
        return {"matchExpressions": [{"key": "env", "operator": "In", "values": rng.sample(ENVS, 2)}]}
    if r < 0.6:
        return {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": rng.sample(TEAMS, 3)}]}
    if r < 0.7:
        return {"matchExpressions": [{"key": "istio-injection", "operator": "Exists"}]}
    if r < 0.8:
        return {"matchExpressions": [{"key": "compliance", "operator": "DoesNotExist"}, {"key": "env", "operator": "NotIn", "values": ["dev"]}]}
    if r < 0.9:
        return {"matchLabels": {"kubernetes.io/metadata.name": f"ns-{rng.randrange(200)}"}}
    return {}


def ports(rng):
    r = rng.random()
    if r < 0.3:
        return [{"port": "http"}]
    if r < 0.45:
        return [{"port": "http"}, {"port": "metrics"}]
    if r < 0.6:
        return [{"port": rng.choice([80, 443, 8080, 5432, 6379]), "protocol": "TCP"}]
    if r < 0.7:
        start = rng.choice([8000, 9000, 30000])
        return [{"port": start, "endPort": start + rng.choice([10, 100, 1000])}]
    if r < 0.8:
        return [{"port": "db"}, {"port": 53, "protocol": "UDP"}]
    if r < 0.9:
        return [{"protocol": "UDP"}, {"port": "http"}]
    return []


def ip_block(rng, nodes):
    """An ipBlock over pod ranges (with except) or outside the cluster, in either family."""
    r = rng.random()
    node = rng.randrange(nodes)
    if r < 0.3:
        return {"cidr": "10.244.0.0/16", "except": [f"10.244.{8 * node}.0/21", f"10.244.{8 * rng.randrange(nodes)}.128/25"]}
    if r < 0.45:
        return {"cidr": f"10.244.{8 * node}.0/22"}
    if r < 0.6:
        return {"cidr": "fd00:10:244::/48", "except": [f"fd00:10:244:{node:x}::/64"]}
    if r < 0.8:
        return {"cidr": f"192.0.2.{16 * rng.randrange(16)}/28"}
    return {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.0.0/16"]}


def peers(rng, nodes):
    out = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        r = rng.random()
        if r < 0.4:
            out.append({"podSelector": pod_peer(rng)})
        elif r < 0.75:
            peer = {"namespaceSelector": namespace_selector(rng)}
            if rng.random() < 0.7:
                peer["podSelector"] = pod_peer(rng)
            out.append(peer)
        else:
            out.append({"ipBlock": ip_block(rng, nodes)})
    return out


def make_policy(ns, index, rng, nodes):
    name = f"np-{index}"
    r = rng.random()
    if r < 0.1:
        return policy(ns, name, {"podSelector": {}, "policyTypes": ["Ingress"]})
    if r < 0.15:
        # Default-deny egress that still lets pods resolve names.
        return policy(ns, name, {"podSelector": subject(rng), "policyTypes": ["Egress"], "egress": [
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
             "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})
    direction = "egress" if r > 0.75 else "ingress"
    key = "to" if direction == "egress" else "from"
    rules = []
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        rule = {}
        if rng.random() < 0.9:
            rule[key] = peers(rng, nodes)
        p = ports(rng)
        if p:
            rule["ports"] = p
        rules.append(rule)
    types = ["Egress"] if direction == "egress" else ["Ingress"]
    return policy(ns, name, {"podSelector": subject(rng), "policyTypes": types, direction: rules})


def make_cluster_policy(i, rng, n_ns):
    """A ClusterNetworkPolicy of 25 rules per direction, as gen_cluster.py's, with selectors
    and networks drawn from this generator's vocabulary."""
    tier = "Admin" if i % 2 == 0 else "Baseline"
    if i % 3:
        subj = {"namespaces": namespace_selector(rng)}
    else:
        subj = {"pods": {"namespaceSelector": namespace_selector(rng), "podSelector": pod_peer(rng)}}

    def peer(j):
        kind = j % 4
        if kind == 0:
            return {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": f"ns-{rng.randrange(n_ns)}"}}}
        if kind == 1:
            return {"pods": {"namespaceSelector": namespace_selector(rng), "podSelector": pod_peer(rng)}}
        if kind == 2:
            return {"networks": [f"10.{rng.randrange(256)}.0.0/16", f"192.0.2.{4 * rng.randrange(64)}/30", f"2001:db8:{rng.randrange(256):x}::/48"]}
        return {"namespaces": namespace_selector(rng)}

    def rules(direction):
        out = []
        for j in range(25):
            action = ["Accept", "Deny", "Pass"][(i + j) % 3]
            ps = [peer(j), peer(j + 1)]
            if direction == "ingress":
                ps = [p for p in ps if "networks" not in p] or [{"namespaces": {}}]
            rule = {"name": f"r{j}", "action": action, ("from" if direction == "ingress" else "to"): ps}
            if j % 2:
                rule["protocols"] = [{"tcp": {"destinationPort": {"number": 8000 + j}}},
                                     {"udp": {"destinationPort": {"range": {"start": 5000, "end": 5000 + j}}}}]
            out.append(rule)
        return out

    return {"apiVersion": "policy.networking.k8s.io/v1beta1", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": f"cnp-{i}"},
            "spec": {"tier": tier, "priority": rng.randrange(1001), "subject": subj,
                     "ingress": rules("ingress"), "egress": rules("egress")}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, required=True)
    parser.add_argument("--policies", type=int, required=True)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--labels", choices=["workloads", "per-pod"], default="workloads")
    parser.add_argument("--replicas", type=int, default=6, help="pods per workload (--labels workloads)")
    parser.add_argument("--families", choices=["mixed", "dual", "v4", "v6"], default="mixed")
    parser.add_argument("--cluster-policies", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=["yaml", "json"], default="yaml",
                        help="json: Lists as `kubectl get -o json` writes them (what the agent bench reads)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n_ns = max(1, (args.pods + PODS_PER_NS - 1) // PODS_PER_NS)
    os.makedirs(args.out, exist_ok=True)

    def dump(name, obj):
        if args.format == "json":
            with open(os.path.join(args.out, name.replace(".yaml", ".json")), "w") as f:
                json.dump(obj, f)
            return
        with open(os.path.join(args.out, name), "w") as f:
            yaml.safe_dump(obj, f, sort_keys=False, default_flow_style=None)

    dump("namespaces.yaml", {"apiVersion": "v1", "kind": "NamespaceList", "items": namespaces(n_ns, rng)})
    dump("pods.yaml", {"apiVersion": "v1", "kind": "PodList",
                       "items": pods(args.pods, n_ns, args.nodes, args.labels, args.replicas, args.families, rng)})
    items = [make_policy(f"ns-{rng.randrange(n_ns)}", i, rng, args.nodes) for i in range(args.policies)]
    dump("policies.yaml", {"apiVersion": "v1", "kind": "List", "items": items})
    if args.cluster_policies:
        cnps = [make_cluster_policy(i, rng, n_ns) for i in range(args.cluster_policies)]
        dump("cluster-policies.yaml", {"apiVersion": "v1", "kind": "List", "items": cnps})
    print(f"{args.out}: {n_ns} namespaces, {args.pods} pods (+1 DNS pod) on {args.nodes} nodes, labels {args.labels}, "
          f"families {args.families}, {args.policies} policies, {args.cluster_policies} cluster policies")


if __name__ == "__main__":
    main()
