#!/usr/bin/env bash
# Install what is needed and run the main job on its embedded default: numa01 on the 2-node
# 24-CPU machine under every policy (a CPU batch), results and plots written to outputs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh cli
export WANDB_MODE="${WANDB_MODE:-offline}"
exec .venv/bin/python -m autonuma_jax.demo "$@"
