#!/usr/bin/env bash
# Reproducible comparison with IBM's network-config-analyzer 2.1.0 (the Python peer):
# installs it into a venv, generates one cluster, runs both, compares every pod-to-pod
# answer and prints the time ratio.
#
# Usage: bench/nca/compare.sh [PODS] [POLICIES] [extra gen_cluster.py flags]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pods=${1:-500}
policies=${2:-200}
shift $(( $# > 2 ? 2 : $# ))
suffix=$(printf '%s' "$*" | tr -c 'a-z0-9' '-' | sed 's/-\+/-/g; s/^-//; s/-$//')
out="$root/bench/out/nca-$pods-$policies${suffix:+-$suffix}"
venv="$root/bench/.venv"

if [ ! -x "$venv/bin/nca" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q network-config-analyzer==2.1.0 pyyaml
fi
"$venv/bin/python" "$root/bench/gen_cluster.py" --pods "$pods" --policies "$policies" --out "$out/input" "$@"
(cd "$root" && cargo build --release -q -p palisade)
"$venv/bin/python" "$root/bench/nca/compare.py" --input "$out/input" --palisade "$root/target/release/palisade" \
  --nca "$venv/bin/nca" --out "$out"
