#!/usr/bin/env bash
# The seed walkthrough ("A Practical Guide to Network Policies") with real packets: the
# article's kubectl commands, run by the real kubectl against a local lab's Kubernetes API
# (nodes and pods are network namespaces, nginx and curl are real processes, Palisade's
# agent programs nftables). Prints the transcript and checks every answer against the
# article; exits non-zero if one differs.
#
# On a fresh Debian machine (as root) it first installs what is missing (kubectl included)
# and builds Palisade. Set PALISADE to a built binary to skip that; PALISADE_LAB picks the
# lab (default: default); KUBECTL a kubectl binary.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -z "${PALISADE:-}" ]; then
  set -e
  # shellcheck source=../../scripts/setup
  source "$root/scripts/setup"
  (cd "$root" && cargo build --release --locked -q -p palisade -p palisade-cni)
  set +e
  PALISADE="$root/target/release/palisade"
fi
KUBECTL="${KUBECTL:-/opt/palisade-tools/bin/kubectl}"
export PALISADE_LAB="${PALISADE_LAB:-default}"
failures=0

# Prints the command as the article does, runs it with kubectl, shows the output.
run() {
  echo "\$ kubectl $*"
  "$KUBECTL" "$@" 2>&1 | tee /tmp/palisade-seed-last.$$
  last_status=${PIPESTATUS[0]}
  echo "----------- exit status $last_status -----------"
  echo
}

expect_status() { # expect_status CODE DESCRIPTION
  if [ "$last_status" -ne "$1" ]; then
    echo "!! expected exit status $1 ($2), got $last_status"
    echo
    failures=$((failures + 1))
  fi
}

expect_output() { # expect_output PATTERN DESCRIPTION
  if ! grep -qE "$1" /tmp/palisade-seed-last.$$; then
    echo "!! expected $2 (/$1/)"
    echo
    failures=$((failures + 1))
  fi
}

cd "$here"
echo "== A fresh lab =="
"$PALISADE" lab down >/dev/null 2>&1
"$PALISADE" lab up --nodes 2 || exit 1
KUBECONFIG="$("$PALISADE" lab kubeconfig)"
export KUBECONFIG
echo

echo "== Namespaces, nginx, its Service, curl in both namespaces =="
echo
run create ns production; expect_output '^namespace/production created' "the namespace"
run create ns develop; expect_output '^namespace/develop created' "the namespace"
run apply -f nginx-deployment.yaml -n production; expect_output '^deployment.apps/nginx-deployment created' "the deployment"
run apply -f nginx-service.yaml -n production; expect_output '^service/nginx created' "the service"
run apply -f curl-deployment.yaml -n production; expect_output '^deployment.apps/curl created' "the deployment"
run apply -f curl-deployment.yaml -n develop; expect_output '^deployment.apps/curl created' "the deployment"
# Not in the article (it waits by reading on): the pods must run before they answer.
run wait --for=condition=Available deployment --all -n production --timeout=60s; expect_status 0 "production's deployments available"
run wait --for=condition=Available deployment --all -n develop --timeout=60s; expect_status 0 "develop's deployment available"
run get pods -A -o wide; expect_output '^production +nginx-deployment-[a-z0-9]+-[a-z0-9]{5} +1/1 +Running' "nginx running"

# The article writes `kubectl exec -n NS deploy/curl sh -- CMD`; kubectl 1.25 and later
# refuse a command before `--` ("exec [POD] [COMMAND] is not supported anymore"), so the
# transcript runs the same commands in today's form, `kubectl exec -n NS deploy/curl -- CMD`.
echo "== Before the policy: both namespaces reach nginx =="
echo
run exec -n production deploy/curl -- curl -I http://nginx; expect_output 'HTTP/1.1 200 OK' "200 OK from production"; expect_output '^Server: nginx' "nginx's Server header"
run exec -n develop deploy/curl -- curl -I http://nginx.production; expect_output 'HTTP/1.1 200 OK' "200 OK from develop"; expect_output '^Server: nginx' "nginx's Server header"
NGINX_SERVICE_IP=$("$KUBECTL" get svc nginx -n production -o jsonpath='{.spec.clusterIP}')
echo "\$ export NGINX_SERVICE_IP=\$(kubectl get svc nginx -n production -o jsonpath='{.spec.clusterIP}')"
echo "\$ echo \$NGINX_SERVICE_IP"
echo "$NGINX_SERVICE_IP"
echo
run exec -n production deploy/curl -- nc -vz "$NGINX_SERVICE_IP" 80; expect_output "$NGINX_SERVICE_IP.* 80 .*succeeded|open" "nc connects from production"
run exec -n develop deploy/curl -- nc -vz "$NGINX_SERVICE_IP" 80; expect_output "$NGINX_SERVICE_IP.* 80 .*succeeded|open" "nc connects from develop"

echo "== default-deny-ingress in production =="
echo
run apply -f production-networkpolicy.yaml; expect_output '^networkpolicy.networking.k8s.io/default-deny-ingress created' "the policy"
# kubectl returns once the API stored the policy; the nodes enforce it a few milliseconds
# later. This waits for that (and says how long the nodes took).
echo "\$ palisade lab status --wait-synced 10"
"$PALISADE" lab status --wait-synced 10 | sed -n '/^dataplane/,$p'
echo

echo "== After the policy: production still reaches nginx, develop does not =="
echo
run exec -n production deploy/curl -- curl -I http://nginx; expect_output 'HTTP/1.1 200 OK' "200 OK from production"
start=$(date +%s%N)
run exec -n develop deploy/curl -- curl -I http://nginx.production
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
expect_output "curl: \(7\) Failed to connect to nginx.production port 80 .*Couldn't connect to server" "curl: (7) from develop"
expect_output "command terminated with exit code 7" "curl's exit status through kubectl"
expect_status 7 "curl's 'could not connect'"
echo "(the refusal came back in $elapsed_ms ms, kubectl's start-up included)"
echo
run exec -n production deploy/curl -- nc -vz "$NGINX_SERVICE_IP" 80; expect_output "succeeded|open" "nc connects from production"
run exec -n develop deploy/curl -- nc -vz "$NGINX_SERVICE_IP" 80; expect_output "failed: Connection refused" "nc is refused from develop"; expect_status 1 "nc's failure"
rm -f /tmp/palisade-seed-last.$$

if [ "$failures" -ne 0 ]; then
  echo "$failures answer(s) differ from the walkthrough"
  exit 1
fi
echo "All answers match the walkthrough: production -> nginx allowed, develop -> nginx refused."
echo "The lab is still up: \`export KUBECONFIG=$KUBECONFIG\`, then \`$KUBECTL get pods -A -o wide\`;"
echo "\`$PALISADE lab down\` removes it."
