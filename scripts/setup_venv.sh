#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the package with the
# given extras. Usage: scripts/setup_venv.sh [extras]   e.g. scripts/setup_venv.sh cli,test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-cli}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=".venv/.installed-${extras//,/-}-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi
