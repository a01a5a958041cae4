#!/usr/bin/env bash
# The seed walkthrough ("A Practical Guide to Network Policies"), answered by the policy
# engine from the manifests alone: before the policy both namespaces reach nginx; after it,
# production still does and develop does not. Exits non-zero if any answer differs.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
palisade="${PALISADE:-palisade}"

# The objects as the walkthrough creates them: `kubectl apply -n NS -f FILE` is FILE@NS.
cluster=(
  "$here/namespaces.yaml"
  "$here/nginx-deployment.yaml@production"
  "$here/nginx-service.yaml@production"
  "$here/curl-deployment.yaml@production"
  "$here/curl-deployment.yaml@develop"
)
policy="$here/production-networkpolicy.yaml"
failures=0

expect() { # expect STATUS DESCRIPTION -- palisade ARGS...
  local want=$1 what=$2; shift 3
  echo "\$ palisade $(printf '%s ' "$@" | sed "s|$here/||g")"
  "$palisade" "$@"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "!! expected exit status $want ($what), got $got"
    failures=$((failures + 1))
  fi
  echo
}

echo "== Before the policy: every pod may reach nginx =="
echo
expect 0 allowed -- check -f "${cluster[@]}" --from production/curl --to production/svc/nginx --port 80
expect 0 allowed -- check -f "${cluster[@]}" --from develop/curl --to production/svc/nginx --port 80

echo "== After applying default-deny-ingress in production =="
echo
expect 0 allowed -- check -f "${cluster[@]}" "$policy" --from production/curl --to production/svc/nginx --port 80
expect 1 denied -- check -f "${cluster[@]}" "$policy" --from develop/curl --to production/svc/nginx --port 80
expect 0 "matrix printed" -- matrix -f "${cluster[@]}" "$policy" --port 80

if [ "$failures" -ne 0 ]; then
  echo "$failures answer(s) differ from the walkthrough"
  exit 1
fi
echo "All answers match the walkthrough: production -> nginx allowed, develop -> nginx denied."
