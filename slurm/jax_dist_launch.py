#!/usr/bin/env python3
"""Run a Python entry point as one process of a multi-process JAX job started by `srun`.

    python slurm/jax_dist_launch.py -m MODULE [ARGS...]
    python slurm/jax_dist_launch.py SCRIPT.py [ARGS...]

Before the entry point runs (in this same process, as ``__main__``), it calls
``jax.distributed.initialize()`` with values read from the environment:

- coordinator: ``JAX_COORDINATOR_ADDRESS`` (``host:port``; slurm/multinode.sbatch sets it to the
  first node of the allocation); when unset, JAX's own SLURM auto-detection picks it;
- number of processes: ``JAX_NUM_PROCESSES``, else ``SLURM_NTASKS``;
- process id: ``JAX_PROCESS_ID``, else ``SLURM_PROCID``;
- local devices: ``JAX_LOCAL_DEVICE_IDS`` (comma-separated), else every device the task sees.

With a single process nothing is initialised, unless ``JAX_DISTRIBUTED=1``. Only the standard
library and jax are imported, so this works on a machine with nothing else installed.
"""
from __future__ import annotations

import os
import runpy
import sys


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return int(value)
    return None


def initialize() -> None:
    num_processes = _env_int("JAX_NUM_PROCESSES", "SLURM_NTASKS") or 1
    if num_processes <= 1 and os.environ.get("JAX_DISTRIBUTED") != "1":
        return
    import jax

    kwargs: dict = {}
    coordinator = os.environ.get("JAX_COORDINATOR_ADDRESS", "").strip()
    if coordinator:
        kwargs.update(coordinator_address=coordinator, num_processes=num_processes,
                      process_id=_env_int("JAX_PROCESS_ID", "SLURM_PROCID") or 0)
    local = os.environ.get("JAX_LOCAL_DEVICE_IDS", "").strip()
    if local:
        kwargs["local_device_ids"] = [int(x) for x in local.split(",") if x.strip()]
    jax.distributed.initialize(**kwargs)
    print(f"[jax_dist_launch] process {jax.process_index()}/{jax.process_count()} on "
          f"{os.environ.get('SLURMD_NODENAME', '?')}: coordinator {coordinator or '(auto)'}, "
          f"{jax.local_device_count()} local / {jax.device_count()} global devices",
          file=sys.stderr, flush=True)


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        raise SystemExit(0 if argv else 2)
    initialize()
    if argv[0] == "-m":
        if len(argv) < 2:
            raise SystemExit("jax_dist_launch: -m needs a module name")
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())   # as `python -m` does
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    # This file's own folder must not shadow the entry point's imports.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    main(sys.argv[1:])
