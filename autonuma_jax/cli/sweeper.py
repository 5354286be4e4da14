"""A hydra callback around runs and multiruns (conf/config.yaml ``hydra.callbacks.check_jobs``).

- Before a ``-m`` multirun launches its first job, every job is composed exactly as the sweeper
  will compose it and its configuration is validated (``job.prepare``: types, ranges; and, when
  the jobs run on this machine, ``job.check_memory``: every batch fits). One bad job stops the
  multirun with one line (exit 2) naming the job and its overrides, instead of failing after the
  jobs before it ran (locally or on SLURM). For hydra's basic sweeper, the one this project uses
  (another sweeper's jobs are not known in advance and are checked as they run).
- ``dry_run=true`` (``--dry-run``): the plan of the run or of every job of the multirun is printed
  (``dryrun.py``) and hydra stops before it creates any folder.
- After a multirun: ``<sweep dir>/README.md`` names each job's overrides, folder and state, and a
  summary is printed (where each job's results are, the command that merges them).
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


def _job_dict(cfg: DictConfig) -> dict:
    raw = OmegaConf.to_container(cfg, resolve=False)
    raw.pop("hydra", None)
    return OmegaConf.to_container(OmegaConf.create(raw), resolve=True, enum_to_str=True)


def _dry_run(jobs: list) -> None:
    """Print the plan of ``jobs`` = [(name, job config dict)] and stop (exit 0), or one line (exit 2)."""
    from .dryrun import report
    from .job import cli_names
    from .preflight import one_line, user_error
    try:
        text = report(jobs, (jobs[0][1].get("sim") or {}).get("throughput_log"))
    except Exception as e:  # noqa: BLE001
        if not (isinstance(e, ConfigError) or user_error(e)):
            raise
        print(f"error: {cli_names(one_line(e))}", file=sys.stderr, flush=True)
        sys.exit(2)
    print(text, flush=True)
    sys.exit(0)


class CheckJobs(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("dry_run", False):
            _dry_run([("0", _job_dict(config))])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from .multirun_index import write_index
        try:
            print(write_index(config), flush=True)
        except OSError as e:  # an index is a convenience: the jobs' results are written already
            print(f"warning: multirun index not written: {e}", file=sys.stderr, flush=True)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        target = str(config.hydra.sweeper.get("_target_", ""))
        if not target.endswith("BasicSweeper"):
            if config.get("dry_run", False):
                print(f"error: --dry-run: the jobs of {target} are not known before it runs them", file=sys.stderr)
                sys.exit(2)
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
        dry = []
        for i, overrides in enumerate(jobs):
            try:
                cfg = loader.load_sweep_config(config, overrides)
                job_cfg = _job_dict(cfg)
                if config.get("dry_run", False):
                    shown = [o for o in overrides if not o.startswith(("dry_run=", "+dry_run="))]
                    dry.append((f"{i} ({' '.join(shown)})", job_cfg))
                    continue
                runs = prepare(job_cfg)
                if same_host:  # a SLURM job's memory is its allocation's, not this machine's
                    check_memory(runs, job_cfg.get("sim", {}))
            except Exception as e:  # noqa: BLE001
                if not (isinstance(e, ConfigError) or user_error(e)):
                    raise
                print(f"error: multirun job {i} ({' '.join(overrides)}): {one_line(e)}", file=sys.stderr, flush=True)
                sys.exit(2)
        if dry:
            _dry_run(dry)
