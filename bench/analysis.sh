#!/usr/bin/env bash
# Times the analysis commands on generated clusters, end to end (process start, loading,
# evaluation, output to /dev/null). Prints best and median wall time of N runs and peak RSS.
#
# Usage: bench/analysis.sh [RUNS] [yaml|json]     (needs python3 with PyYAML for the generator)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs=${1:-5}
format=${2:-yaml}
bin="$root/target/release/palisade"
(cd "$root" && cargo build --release -q -p palisade)

best_of() { python3 "$root/bench/timeit.py" "$runs" "$@"; }

for size in "500 200" "2000 10" "10000 1000"; do
  set -- $size
  dir="$root/bench/out/cluster-$1-$2"
  [ "$format" = yaml ] || dir="$dir-$format"
  [ -d "$dir" ] || python3 "$root/bench/gen_cluster.py" --pods "$1" --policies "$2" --format "$format" --out "$dir" > /dev/null
  echo "== $1 pods, $2 policies ($(du -sh "$dir" | cut -f1) of $format)"
  best_of "check one flow" "$bin" check -f "$dir" --from ns-0/app-0-0 --to ns-1/app-1-5 --port 8080 -o json
  best_of "matrix --summary -o json" "$bin" matrix -f "$dir" --summary -o json
  if [ "$1" -le 2000 ]; then
    best_of "matrix -o json (every pair)" "$bin" matrix -f "$dir" -o json
  fi
done
