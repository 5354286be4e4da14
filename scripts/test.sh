#!/usr/bin/env bash
# Install what is needed and run the test suite (pytest). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh cli,test,optuna
export JAX_PLATFORMS=cpu
export WANDB_MODE=offline
# A real one-node SLURM cluster for the tests marked `slurm` (AUTONUMA_SLURM=0: skip them). When it
# cannot be installed or started (not root, no apt, ports taken) those tests are skipped with the
# reason. If this script started it, it is stopped (by recorded pids) on exit, pass or fail.
if [ "${AUTONUMA_SLURM:-1}" = 1 ]; then
  if ! bash scripts/slurm_cluster.sh status >/dev/null 2>&1; then
    trap 'bash scripts/slurm_cluster.sh stop' EXIT
  fi
  if bash scripts/slurm_cluster.sh install && bash scripts/slurm_cluster.sh start; then
    export AUTONUMA_SLURM=1
  else
    echo "test.sh: no SLURM cluster: the tests marked slurm will be skipped" >&2
    export AUTONUMA_SLURM=0
  fi
fi
# AUTONUMA_TEST_LLVM_OPT=0: the in-process tests compile at LLVM -O0 (--xla_backend_optimization_level=0;
# XLA's HLO passes unchanged; results do not depend on it), the CLI jobs the tests start at the
# default level (tests/cli_helpers.py). A third less compile CPU, but the compiled code runs ~2x
# slower: on the whole suite the long-running tests lost what the compiles gained (40 min 17 s
# against 41 min 15 s, BENCHMARKS.md), so it is off by default; it pays on compile-bound subsets.
llvm_opt="${AUTONUMA_TEST_LLVM_OPT:-3}"
if [ "$llvm_opt" != 3 ]; then
  export AUTONUMA_TEST_CLI_XLA_FLAGS="${XLA_FLAGS:-}"
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=$llvm_opt"
fi
# Two workers (pytest-xdist): one process used 1.2 of the 2 cores on average (XLA compiles on one
# thread, and compiling is most of the suite's time). A module stays on one worker (--dist
# loadfile), the longest modules first: in the order of tests/conftest.py's LONGEST_FIRST
# (--no-loadscope-reorder; xdist would otherwise order modules by their number of tests).
# AUTONUMA_TEST_WORKERS=0 runs everything in this process.
workers="${AUTONUMA_TEST_WORKERS:-2}"
if [ "$workers" -gt 0 ]; then
  set -- -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
fi
.venv/bin/python -m pytest -q --durations=25 "$@"
