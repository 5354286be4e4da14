#!/usr/bin/env bash
# Install what is needed and run the main job on its embedded default: numa01 on the 2-node 24-CPU
# machine under every policy (the baselines hard_bind, none, inverse_bind, autonuma24 and its rivals),
# as one CPU batch; results.parquet,
# timeseries.parquet, plots and an offline wandb run land in outputs/policies/<timestamp>/.
# Extra arguments are hydra overrides, e.g.  bash scripts/run.sh workload=numa02 sweep.seeds=3
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh cli
export WANDB_MODE="${WANDB_MODE:-offline}"
.venv/bin/autonuma-sim experiment=policies "$@"
latest=$(ls -td outputs/policies/*/ 2>/dev/null | head -1)
[ -n "$latest" ] && .venv/bin/autonuma-sim-report "$latest"
