#!/usr/bin/env bash
# Lab timings (as root, release build), everything through the lab's Kubernetes API with
# the real kubectl: lab up; N pods created by one Deployment until all run with addresses
# and answer (`kubectl wait`); a policy until every node enforces it; a denied curl through
# `kubectl exec`; deleting the pods; the seed walkthrough end to end. Policy is enforced
# by Palisade's DaemonSet, which lab up applies (one agent pod per node).
# Usage: bench/lab.sh [PODS]   (default 100)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
palisade="${PALISADE:-$root/target/release/palisade}"
kubectl="${KUBECTL:-/opt/palisade-tools/bin/kubectl}"
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
KUBECONFIG="$("$palisade" lab kubeconfig)"
export KUBECONFIG
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
t=$(date +%s%N)
"$kubectl" apply -f "$tmp/app.yaml" >/dev/null
"$kubectl" wait --for=condition=Available deployment --all -n bench --timeout=300s >/dev/null
took=$(ms "$t")
running=$("$kubectl" get pods -n bench --field-selector=status.phase=Running -o name | wc -l)
echo "kubectl apply + wait: $((pods + 2)) pods over 2 nodes running with addresses: $took ms ($(( (pods + 2) * 1000 / took )) pods/s, $running running)"
"$palisade" lab status --wait-synced 30 >/dev/null
daemon=$(pgrep -f "lab --lab bench daemon" | head -1)
echo "lab daemon resident memory with $((pods + 5)) pods running: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$daemon/status")"
cat >"$tmp/policy.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: bench}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}], ports: [{port: 80}]}]
YAML
t=$(date +%s%N)
"$kubectl" apply -f "$tmp/policy.yaml" >/dev/null
"$palisade" lab status --wait-synced 30 >/dev/null
echo "kubectl apply of a policy until both nodes' agents enforce it, $((pods + 5)) pods: $(ms "$t") ms"
for pid in $(pgrep -f "palisade agent"); do
  if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -q "^PALISADE_LAB_POD=bench/"; then
    echo "agent $pid resident memory: $(awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status")"
  fi
done
t=$(date +%s%N); "$kubectl" get pods -A -o json >/dev/null; echo "kubectl get pods -A -o json ($((pods + 5)) pods): $(ms "$t") ms"
web=$("$kubectl" get pods -n bench -l app=web -o jsonpath='{.items[0].status.podIP}')
for i in 1 2 3; do
  t=$(date +%s%N); "$kubectl" exec -n bench deploy/app -- curl -s -o /dev/null --max-time 2 "http://$web" || true; echo "denied curl, kubectl exec included: $(ms "$t") ms"
done
t=$(date +%s%N)
"$kubectl" delete deploy app -n bench >/dev/null
"$kubectl" wait --for=delete pod -l app=app -n bench --timeout=300s >/dev/null 2>&1 || true
echo "kubectl delete of the $pods-pod Deployment until the API has no pods of it: $(ms "$t") ms"
# The runtime tears the sandboxes down after the API let go of them (kill, CNI DEL, netns).
# Three pods stay in pod namespaces: the two web pods and cluster DNS (the agents are
# hostNetwork pods).
while [ "$(ip netns list 2>/dev/null | grep -c '^pal-bench-pod-')" -gt 3 ]; do sleep 0.05; done
echo "... until the nodes removed their sandboxes: $(ms "$t") ms"
"$palisade" lab down >/dev/null
t=$(date +%s%N); PALISADE="$palisade" "$root/examples/seed-demo/run.sh" >/dev/null; echo "seed walkthrough (run.sh, lab up to last check): $(ms "$t") ms"
