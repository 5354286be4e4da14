#!/usr/bin/env bash
# Submit one of the sbatch templates of this folder with a fresh job folder.
#
#   slurm/submit.sh array POINTS_FILE [sbatch options...] [-- EXTRA overrides...]
#   slurm/submit.sh gpu [sbatch options...] [-- ARGS...]
#
# The job folder, ${AUTONUMA_JOB_ROOT:-<repo>/outputs/slurm}/<kind>-<date>-<time>-<pid>, is made
# here (SLURM does not create the folder of --output): it holds the SLURM log(s), a copy of the
# points file (requeued tasks read the copy, not a file you may have edited since) and the runs'
# output folders (<task id>/ for an array, run/ otherwise). Prints JOB_ID=... and JOB_DIR=....
# AUTONUMA_ARRAY_PARALLEL=K runs at most K array tasks at a time. AUTONUMA_CMD and the other
# variables of the templates pass through (sbatch exports the environment).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
kind="${1:-}"
case "$kind" in
  array | gpu) shift ;;
  *) echo "usage: $0 {array POINTS_FILE|gpu} [sbatch options...] [-- ARGS...]" >&2; exit 2 ;;
esac

points=""
if [ "$kind" = array ]; then
  points="${1:?usage: $0 array POINTS_FILE [sbatch options...] [-- EXTRA overrides...]}"; shift
  [ -r "$points" ] || { echo "$0: cannot read $points" >&2; exit 2; }
fi
sbatch_opts=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do sbatch_opts+=("$1"); shift; done
[ "${1:-}" = -- ] && shift

job_dir="${AUTONUMA_JOB_ROOT:-$repo/outputs/slurm}/$kind-$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$job_dir"
job_dir="$(cd "$job_dir" && pwd)"
export AUTONUMA_REPO="$repo" AUTONUMA_JOB_DIR="$job_dir"

args=()
if [ "$kind" = array ]; then
  grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*#' "$points" >"$job_dir/points.txt" || true
  n=$(wc -l <"$job_dir/points.txt")
  [ "$n" -gt 0 ] || { echo "$0: no points in $points" >&2; exit 2; }
  array="0-$((n - 1))${AUTONUMA_ARRAY_PARALLEL:+%$AUTONUMA_ARRAY_PARALLEL}"
  sbatch_opts=(--array="$array" --output="$job_dir/%x-%A_%a.out" "${sbatch_opts[@]}")
  args=("$job_dir/points.txt")
else
  sbatch_opts=(--output="$job_dir/%x-%j.out" "${sbatch_opts[@]}")
fi

job_id="$(sbatch --parsable "${sbatch_opts[@]}" "$here/$kind.sbatch" "${args[@]}" "$@")"
job_id="${job_id%%;*}"   # "id;cluster" on multi-cluster set-ups
echo "JOB_ID=$job_id"
echo "JOB_DIR=$job_dir"
