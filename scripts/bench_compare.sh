#!/usr/bin/env bash
# Speed of this checkout against an older revision, measured side by side in one run (this machine
# is noisy: only ratios taken in one run mean anything). Rounds alternate old/new; each point is the
# best of its repeats. Usage:
#   bash scripts/bench_compare.sh REV "1 64 1024" [ticks] [rounds] [workload] [machine]
# e.g. bash scripts/bench_compare.sh abd4cb1 "1 64" 200 2 numa01 2node_24cpu
set -euo pipefail
rev=${1:?revision}; batches=${2:-"1 64"}; ticks=${3:-200}; rounds=${4:-2}
workload=${5:-numa01}; machine=${6:-2node_24cpu}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
old=$(mktemp -d /tmp/autonuma-bench-XXXXXX)
trap 'git -C "$here" worktree remove --force "$old" >/dev/null 2>&1 || rm -rf "$old"' EXIT
git -C "$here" worktree add -f --detach "$old" "$rev" -q
for B in $batches; do
  n=$ticks; [ "$B" -ge 256 ] && n=$(( ticks / 4 > 20 ? ticks / 4 : 20 ))
  for r in $(seq "$rounds"); do
    for tree in "$old" "$here"; do
      JAX_PLATFORMS=cpu PYTHONPATH="$tree" "$py" "$here/scripts/bench_point.py" "$B" "$n" "$workload" "$machine" \
        2>/dev/null | tail -1
    done
  done
done | "$py" -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
best = {}
for r in rows:
    k = (r["batch"], r["tree"]); best[k] = max(best.get(k, 0), r["sim_s_per_s_max"])
trees = list(dict.fromkeys(r["tree"] for r in rows))
print("batch  " + "  ".join(f"{t[-28:]:>28s}" for t in trees) + "   new/old")
for B in sorted({r["batch"] for r in rows}):
    v = [best.get((B, t), float("nan")) for t in trees]
    print(f"{B:5d}  " + "  ".join(f"{x:28.2f}" for x in v) + f"   {v[-1] / v[0]:7.2f}x")
print("(simulated configuration-seconds per wall second, best of each side)")
'
