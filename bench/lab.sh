#!/usr/bin/env bash
# Lab timings (as root, release build): lab up, pods realized per second, a policy's apply
# (engine -> render -> nft on every node) with many pods, the seed walkthrough end to end.
# Usage: bench/lab.sh [PODS]   (default 100)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
palisade="${PALISADE:-$root/target/release/palisade}"
pods="${1:-100}"
export PALISADE_LAB=bench
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
tmp=$(mktemp -d)
trap '"$palisade" lab down >/dev/null 2>&1; rm -rf "$tmp"' EXIT

"$palisade" lab down >/dev/null 2>&1 || true
for nodes in 1 2; do
  t=$(date +%s%N); "$palisade" lab up --nodes "$nodes" >/dev/null; echo "lab up --nodes $nodes: $(ms "$t") ms"
  "$palisade" lab down >/dev/null
done

"$palisade" lab up --nodes 2 >/dev/null
cat >"$tmp/app.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: bench}
spec:
  replicas: $pods
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers: [{name: c, image: busybox, command: [sleep, infinity]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: bench}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
YAML
t=$(date +%s%N); out=$("$palisade" lab apply -f "$tmp/app.yaml"); took=$(ms "$t")
echo "apply $((pods + 2)) pods over 2 nodes: $took ms ($(( (pods + 2) * 1000 / took )) pods/s); $(echo "$out" | tail -1)"
cat >"$tmp/policy.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: bench}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 80}]}]
YAML
t=$(date +%s%N); out=$("$palisade" lab apply -f "$tmp/policy.yaml"); echo "apply a policy with $((pods + 3)) pods: $(ms "$t") ms; $(echo "$out" | tail -1)"
t=$(date +%s%N); out=$("$palisade" lab label deploy app -n bench role=client); echo "label (no pod change): $(ms "$t") ms"
web=$("$palisade" lab get pods -n bench -o jsonpath='{.items[?(@.metadata.labels.app=="web")].status.podIP}' | cut -d' ' -f1)
for i in 1 2 3; do
  t=$(date +%s%N); "$palisade" lab exec -n bench deploy/app -- curl -s -o /dev/null --max-time 2 "http://$web" || true; echo "denied curl, exec included: $(ms "$t") ms"
done
t=$(date +%s%N); "$palisade" lab delete deploy app -n bench >/dev/null; echo "delete $pods pods: $(ms "$t") ms"
"$palisade" lab down >/dev/null
t=$(date +%s%N); PALISADE="$palisade" "$root/examples/seed-demo/run.sh" >/dev/null; echo "seed walkthrough (run.sh, lab up to last check): $(ms "$t") ms"
