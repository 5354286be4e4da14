#!/usr/bin/env bash
# Install what is needed and run the test suite (pytest). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh cli,test
export JAX_PLATFORMS=cpu
export WANDB_MODE=offline
.venv/bin/python -m pytest -q "$@"
