"""``autonuma-sim`` / ``python -m autonuma_jax``: the hydra entry point.

    autonuma-sim                                   # conf/config.yaml: numa01 on 2node_24cpu, autonuma24
    autonuma-sim experiment=quick                  # a tiny CPU run in well under a minute
    autonuma-sim machine=4node_32cpu workload=numa02 policy.autonuma.knuma_scand.pages_to_scan=65536
    autonuma-sim sweep=scan_rate sweep.seeds=4     # in-process sweep: one vmapped batch per shape
    autonuma-sim -m machine=2node_24cpu,4node_32cpu policy=autonuma24,none   # one job per combination
    autonuma-sim -m hydra/launcher=local ...       # submitit_local; hydra/launcher=slurm for SLURM
    autonuma-sim -cd sweeps -cn scan_rate          # a ready definition from sweeps/

The config lives in ``conf/`` at the top of the source tree; it is found through an absolute path
computed from this file, so the command works from any working directory of an editable (or
source-tree) install. ``--config-dir DIR`` adds more config folders (e.g. ``sweeps/``).

Exit status 2, with one line on stderr, for a value the core rejects (``ConfigError``) or an
existing results.parquet; hydra's own message (status 1) for an unknown key or a wrong type.
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
from . import preempt, schema
from .job import Preempted
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


def run(cfg: DictConfig) -> dict:
    warnings.simplefilter("ignore", WandbWarning)  # already in the job's log
    ctx = job_context()
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    group, name = wandb_names(cfg, ctx)
    from .job import run_job
    job = {"num": ctx["num"], "overrides": " ".join(ctx["overrides"]), "multirun": ctx["multirun"],
           "id": ctx["job_id"]}
    try:
        info = run_job(container, ctx["out_dir"], job=job, resolved_yaml=resolved, group=group, run_name=name)
    except (ConfigError, ResultsExistError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        if ctx["multirun"]:
            raise  # the launcher reports the failed job
        sys.exit(2)
    except Preempted as e:
        log.warning(f"preempted: {e}")
        preempt.finish()
    return {"out_dir": info.out_dir, "n_configs": info.n_configs, "compiles": info.compiles,
            "wandb_dir": info.wandb_dir}


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig):
    return run(cfg)


def main() -> None:
    """Console-script entry point."""
    if not os.path.isdir(CONF_DIR) and not any(a.startswith(("--config-path", "-cp", "--config-dir", "-cd"))
                                               for a in sys.argv[1:]):
        print(f"error: the config folder {CONF_DIR} is missing (autonuma-sim runs from a source checkout: "
              f"pip install -e .), or pass --config-path", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
