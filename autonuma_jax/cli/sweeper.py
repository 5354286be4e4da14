"""A hydra callback: before a ``-m`` multirun launches its first job, every job is composed exactly
as the sweeper will compose it and its configuration is validated (``job.prepare``: types,
ranges; and, when the jobs run on this machine, ``job.check_memory``: every batch fits). One bad job stops the multirun with one line (exit 2) naming the job and its
overrides, instead of failing after the jobs before it ran (locally or on SLURM).

Configured in conf/config.yaml (``hydra.callbacks.check_jobs``); for hydra's basic sweeper, the one
this project uses (another sweeper's jobs are not known in advance and are checked as they run).
"""
from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError


def job_overrides(config: DictConfig) -> list[list[str]]:
    """The overrides of every job the basic sweeper will launch (all batches)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    params += list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
    batches = BasicSweeper.split_arguments(parser.parse_overrides(params), None)
    return [list(job) for b in batches for job in b]


class CheckJobs(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        target = str(config.hydra.sweeper.get("_target_", ""))
        if not target.endswith("BasicSweeper"):
            return
        from hydra.core.global_hydra import GlobalHydra

        from .job import check_memory, prepare
        from .preflight import one_line, user_error
        launcher = str(config.hydra.launcher.get("_target_", ""))
        same_host = launcher.endswith(("BasicLauncher", "LocalLauncher"))  # jobs run on this machine
        loader = GlobalHydra.instance().config_loader()
        try:
            jobs = job_overrides(config)
        except Exception as e:  # noqa: BLE001  (hydra's parser: one line, not a warning and a traceback)
            if not user_error(e):
                raise
            print(f"error: multirun: {one_line(e)}", file=sys.stderr, flush=True)
            sys.exit(2)
        for i, overrides in enumerate(jobs):
            try:
                cfg = loader.load_sweep_config(config, overrides)
                raw = OmegaConf.to_container(cfg, resolve=False)
                raw.pop("hydra", None)
                job_cfg = OmegaConf.to_container(OmegaConf.create(raw), resolve=True, enum_to_str=True)
                runs = prepare(job_cfg)
                if same_host:  # a SLURM job's memory is its allocation's, not this machine's
                    check_memory(runs, job_cfg.get("sim", {}))
            except Exception as e:  # noqa: BLE001
                if not (isinstance(e, ConfigError) or user_error(e)):
                    raise
                print(f"error: multirun job {i} ({' '.join(overrides)}): {one_line(e)}", file=sys.stderr, flush=True)
                sys.exit(2)
