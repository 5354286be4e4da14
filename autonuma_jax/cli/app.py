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
    from ..checkpoint import CheckpointError
    from .job import EXIT_WRITE_FAILED, WriteFailed
    try:
        info = run_job(container, ctx["out_dir"], job=job, resolved_yaml=resolved, group=group, run_name=name)
    except (ConfigError, ResultsExistError, CheckpointError) as e:
        msg = str(e)
        if isinstance(e, CheckpointError):
            msg += f"; remove {os.path.join(ctx['out_dir'], 'checkpoints')} to start afresh"
        print(f"error: {msg}", file=sys.stderr, flush=True)
        if ctx["multirun"]:
            raise  # the launcher reports the failed job
        sys.exit(2)
    except WriteFailed as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        if ctx["multirun"]:
            raise
        sys.exit(EXIT_WRITE_FAILED)
    except Preempted as e:
        log.warning(f"preempted: {e}")
        preempt.finish()
    return {"out_dir": info.out_dir, "n_configs": info.n_configs, "compiles": info.compiles,
            "wandb_dir": info.wandb_dir}


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig):
    return run(cfg)


def _arg(argv, names):
    """The value of a hydra option given as ``-x V``, ``--long V`` or ``--long=V``."""
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a[len(n) + 1:]
    return None


def check_primary_config(argv) -> str | None:
    """One line for a primary config that hydra would fail on with a traceback: a malformed YAML file
    in the folder given with -cd / -cp and -cn, or an empty one. None when it looks loadable."""
    name = _arg(argv, ("-cn", "--config-name")) or "config"
    dirs = [d for d in (_arg(argv, ("-cd", "--config-dir")), _arg(argv, ("-cp", "--config-path"))) if d]
    for d in dirs + [CONF_DIR]:
        path = os.path.join(d, name if name.endswith(".yaml") else name + ".yaml")
        if not os.path.isfile(path):
            continue
        import yaml
        try:
            with open(path) as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            return f"{path}: not a readable YAML config{where}: {problem}"
        if not doc:
            return (f"{path}: the primary config is empty; start it with `defaults: [config, _self_]` (the "
                    f"package's conf/config.yaml) and add overrides below, as the files in sweeps/ do")
        if not isinstance(doc, dict):
            return f"{path}: the primary config must be a YAML mapping, not a {type(doc).__name__}"
        return None
    return None


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if not os.path.isdir(CONF_DIR) and not any(a.startswith(("--config-path", "-cp", "--config-dir", "-cd"))
                                               for a in argv):
        print(f"error: the config folder {CONF_DIR} is missing (autonuma-sim runs from a source checkout: "
              f"pip install -e .), or pass --config-path", file=sys.stderr)
        sys.exit(2)
    bad = check_primary_config(argv) or check_output_writable(argv)
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


def check_output_writable(argv) -> str | None:
    """hydra creates the job's output folder and its log file before any of our code runs, and fails
    with a traceback when it cannot: say it in one line instead. The folder is hydra.run.dir /
    hydra.sweep.dir when given (before interpolation), else under the working directory."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    target = next((a[len(key):] for a in argv if a.startswith(key)), None)
    if target is None or "${" in target:
        target = (target or "").split("${")[0] or os.getcwd()
    p = os.path.abspath(os.path.expanduser(target))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    import tempfile
    try:  # try it: permission bits do not stop root, a read-only mount does
        os.rmdir(tempfile.mkdtemp(prefix=".autonuma-write-test-", dir=p))
    except OSError as e:
        return (f"the output folder cannot be created under {p} ({e.strerror or e}): run from a writable folder "
                f"or pass {key}<a writable folder>")
    return None


if __name__ == "__main__":
    main()
