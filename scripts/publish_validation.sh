#!/usr/bin/env bash
# Add the cells of one or more finished validate runs to the published matrix (docs/validation.csv,
# docs/validation.md, docs/validation/*.png) without rerunning the cells already published.
#
#   bash scripts/publish_validation.sh OUT [OUT...]    # OUT: a `python -m autonuma_jax.validate --out OUT` folder
#
# The published table keeps no cells/*.json: its rows are kept by `validate --collect` from the csv
# (cells with no json), and the new cells' json and plots replace any published rows of the same cell.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 OUT [OUT...]" >&2; exit 2; }
PY=${PYTHON:-.venv/bin/python}
D=$(mktemp -d /tmp/valdoc.XXXXXX)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/cells"
cp docs/validation.csv "$D/"
cp docs/validation/*.png "$D/"
for src in "$@"; do
  ls "$src"/cells/*.json > /dev/null || { echo "$src: no finished cells (cells/*.json)" >&2; exit 2; }
  cp "$src"/cells/*.json "$D/cells/"
  cp "$src"/locality_*.png "$D/" 2>/dev/null || true
  cp "$src"/nmstat_*.png "$D/" 2>/dev/null || true
done
"$PY" -m autonuma_jax.validate --seeds 3 --out "$D" --collect --nmstat 2node_24cpu/numa01 > /dev/null
cp "$D/validation.csv" docs/validation.csv
sed -e 's/^Plots: /Plots (in `docs\/validation\/`): /' -e "s#--out $D#--out /tmp/valdoc#" "$D/validation.md" > docs/validation.md
cp "$D"/*.png docs/validation/
echo "docs/validation.csv, docs/validation.md and docs/validation/ rewritten; review with git diff" >&2
