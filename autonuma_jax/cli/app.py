"""``autonuma-sim`` / ``python -m autonuma_jax``: the hydra entry point.

    autonuma-sim                                   # conf/config.yaml: numa01 on 2node_24cpu, autonuma24
    autonuma-sim experiment=quick                  # every policy on a tiny machine: seconds once compiled
    autonuma-sim machine=4node_32cpu workload=numa02 policy.autonuma.knuma_scand.pages_to_scan=65536
    autonuma-sim sweep=scan_rate sweep.seeds=4     # in-process sweep: one vmapped batch per shape
    autonuma-sim -m machine=2node_24cpu,4node_32cpu policy=autonuma24,none   # one job per combination
    autonuma-sim -m hydra/launcher=local ...       # submitit_local; hydra/launcher=slurm for SLURM
    autonuma-sim -cd sweeps -cn scan_rate          # a ready definition from sweeps/

The config lives in ``conf/`` at the top of the source tree; it is found through an absolute path
computed from this file, so the command works from any working directory of an editable (or
source-tree) install. ``--config-dir DIR`` adds more config folders (e.g. ``sweeps/``).

Exit status 2, with one line on stderr (``error: ...``), for anything the command line or the config
gets wrong: a value the core rejects (``ConfigError``), an existing results.parquet, and what hydra
refuses (an unknown key, a wrong type, a malformed YAML file, an unknown group option, an output
folder it cannot create); ``HYDRA_FULL_ERROR=1`` keeps hydra's own report and traceback instead.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from . import preempt, preflight, schema
from .job import EXIT_WRITE_FAILED, Preempted, WriteFailed
from .results import ResultsExistError
from .wandb_log import WandbWarning

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("autonuma_jax.cli")

schema.register()


def job_context() -> dict:
    """Output folder, job number, overrides, wandb group and run name of the current hydra job."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    out_dir = hc.runtime.output_dir
    num = hc.job.get("num", 0) if multirun else 0
    sweep_dir = hc.sweep.dir if multirun else None
    overrides = list(hc.overrides.task)
    return {"out_dir": out_dir, "multirun": multirun, "num": num, "sweep_dir": sweep_dir,
            "override_dirname": hc.job.override_dirname, "overrides": overrides, "job_id": hc.job.get("id")}


def wandb_names(cfg: DictConfig, ctx: dict) -> tuple[str, str]:
    lg = cfg.logger
    if lg.group:
        group = lg.group
    elif os.environ.get("WANDB_SWEEP_ID"):
        group = f"wandb-sweep-{os.environ['WANDB_SWEEP_ID']}"
    elif ctx["multirun"]:
        group = f"{cfg.name}/{os.path.basename(os.path.normpath(ctx['sweep_dir']))}"
    else:
        group = str(cfg.name)
    if lg.name:
        name = lg.name
    else:
        name = str(cfg.name) + (f"#{ctx['num']}" if ctx["multirun"] else "")
        if ctx["override_dirname"]:
            name += f" {ctx['override_dirname']}"
        name = name[:120]
    return group, name


def hydra_files(cfg: DictConfig) -> dict[str, str]:
    """What hydra writes into ``<job>/.hydra/`` (it is told not to, conf/config.yaml: the job writes
    them after locking its folder, so a refused job cannot replace a finished one's record)."""
    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    task = OmegaConf.to_container(hc.overrides.task, resolve=False)
    return {"config.yaml": OmegaConf.to_yaml(cfg), "hydra.yaml": OmegaConf.to_yaml({"hydra": hc}),
            "overrides.yaml": OmegaConf.to_yaml(task)}


def run(cfg: DictConfig) -> dict:
    warnings.simplefilter("ignore", WandbWarning)  # already in the job's log
    ctx = job_context()
    if cfg.get("dry_run", False):  # the callback (sweeper.py) stops hydra before this; kept for direct callers
        from .dryrun import report
        print(report([("0", OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))],
                     cfg.sim.get("throughput_log")))
        return {"out_dir": None, "n_configs": 0, "compiles": 0, "wandb_dir": None}
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    group, name = wandb_names(cfg, ctx)
    from .job import run_job
    job = {"num": ctx["num"], "overrides": " ".join(ctx["overrides"]), "multirun": ctx["multirun"],
           "id": ctx["job_id"]}
    from ..checkpoint import CheckpointError
    try:
        info = run_job(container, ctx["out_dir"], job=job, resolved_yaml=resolved, group=group, run_name=name,
                       hydra_files=hydra_files(cfg))
    except (ConfigError, ResultsExistError, CheckpointError) as e:
        msg = str(e)
        if isinstance(e, CheckpointError):
            msg += f"; remove {os.path.join(ctx['out_dir'], 'checkpoints')} to start afresh"
        print(f"error: {msg}", file=sys.stderr, flush=True)
        if ctx["multirun"]:
            e.autonuma_reported = True  # main() does not print it twice
            raise  # the launcher reports the failed job
        sys.exit(2)
    except WriteFailed as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        if ctx["multirun"]:
            e.autonuma_reported = True
            raise
        sys.exit(EXIT_WRITE_FAILED)
    except Preempted as e:
        log.warning(f"preempted: {e}")
        preempt.finish()
    if cfg.get("objective"):
        return info.objective  # a number: what hydra's Optuna sweeper minimises (sweeps/optuna_*.yaml)
    return {"out_dir": info.out_dir, "n_configs": info.n_configs, "compiles": info.compiles,
            "wandb_dir": info.wandb_dir}


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig):
    return run(cfg)


def check_primary_config(argv) -> str | None:
    return preflight.check_primary_config(argv, CONF_DIR)


check_output_writable = preflight.check_output_writable


def main() -> None:
    """Console-script entry point: one line and exit 2 for whatever hydra refuses (preflight.py)."""
    argv = sys.argv[1:]
    if "--dry-run" in argv:  # the plain flag users expect, as the hydra-style override it stands for
        argv = [a for a in argv if a != "--dry-run"] + ["dry_run=true"]
        sys.argv = sys.argv[:1] + argv
    if not os.path.isdir(CONF_DIR) and not any(a.startswith(("--config-path", "-cp", "--config-dir", "-cd"))
                                               for a in argv):
        print(f"error: the config folder {CONF_DIR} is missing (autonuma-sim runs from a source checkout: "
              f"pip install -e .), or pass --config-path", file=sys.stderr)
        sys.exit(2)
    bad = check_primary_config(argv) or check_output_writable(argv) or preflight.check_flag_overrides(argv)
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        sys.exit(2)
    preflight.run_compact(_hydra_main, lambda e: EXIT_WRITE_FAILED if isinstance(e, WriteFailed) else 2)


if __name__ == "__main__":
    main()
