"""Helpers of the CLI tests: run ``autonuma-sim`` in a subprocess, read an offline wandb run back,
compose configs with hydra's compose API."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
SWEEPS = REPO / "sweeps"

# A shrunken numa01 on the 2-node test machine that finishes in ~2 simulated seconds: every CLI
# subprocess test uses this one shape (1 configuration), so the persistent compilation cache
# shared by the session compiles it once.
TINY = ["experiment=quick", "sweep=none", "sim.duration_s=4", "workload.loops=20", "progress.mode=lines"]


def cli_env(cache_dir: str, home: str) -> dict:
    env = dict(os.environ)
    env.update({
        "JAX_PLATFORMS": "cpu",
        # the session's one cache (conftest.pytest_configure) when there is one
        "AUTONUMA_JAX_CACHE_DIR": os.environ.get("AUTONUMA_TEST_XLA_DIR") or str(cache_dir),
        "WANDB_MODE": "offline",
        "WANDB_CONFIG_DIR": os.path.join(home, "wandb-config"),
        "WANDB_CACHE_DIR": os.path.join(home, "wandb-cache"),
        "WANDB_DATA_DIR": os.path.join(home, "wandb-data"),
        "WANDB_SILENT": "true",
        "PYTHONWARNINGS": "ignore",
        "AUTONUMA_JAX_THROUGHPUT_LOG": os.path.join(home, "throughput.jsonl"),
    })
    env.pop("HYDRA_FULL_ERROR", None)
    # scripts/test.sh compiles the in-process tests at LLVM -O0; a CLI job compiles as a user's does
    if "AUTONUMA_TEST_CLI_XLA_FLAGS" in os.environ:
        env["XLA_FLAGS"] = os.environ["AUTONUMA_TEST_CLI_XLA_FLAGS"]
    return env


def run_cli(args, cwd, env, timeout=240, check=True) -> subprocess.CompletedProcess:
    """``python -m autonuma_jax ARGS`` from ``cwd``."""
    p = subprocess.run([sys.executable, "-m", "autonuma_jax", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"autonuma-sim {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n"
                             f"{p.stderr[-4000:]}")
    return p


def wandb_cli() -> str:
    exe = Path(sys.executable).parent / "wandb"
    return str(exe) if exe.exists() else "wandb"


def wandb_run_dir(job_dir) -> Path:
    runs = sorted(Path(job_dir, "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"expected one offline wandb run in {job_dir}, found {runs}"
    return runs[0]


def wandb_runs(job_dir) -> dict:
    """Every offline wandb run of a job, read back: {display name: read_wandb(...)}, plus the
    job-level run under the key "job" (job_type other than "combination")."""
    out = {}
    for d in sorted(Path(job_dir, "wandb").glob("offline-run-*")):
        wb = read_wandb(d)
        out[wb["run"].get("display_name")] = wb
        if wb["run"].get("job_type") != "combination":
            assert "job" not in out, "two job-level runs"
            out["job"] = wb
    return out


def read_wandb(run_dir) -> dict:
    """{'history': [rows], 'summary': {...}, 'run': {...}} of an offline run, through
    ``wandb leet inspect --json`` (wandb==0.31.0, pinned in pyproject)."""
    env = dict(os.environ, WANDB_SILENT="true")
    out = subprocess.run([wandb_cli(), "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    history, run, metrics = [], {}, []
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") == "history":
            history.append(rec["history"]["item"])
        elif rec.get("type") == "run":
            run = rec["run"]
        elif rec.get("type") == "metric":
            metrics.append(rec["metric"])
    summ = subprocess.run([wandb_cli(), "leet", "inspect", "--summary", "--json", str(run_dir)], capture_output=True,
                          text=True, timeout=60, env=env)
    assert summ.returncode == 0, summ.stderr
    return {"history": history, "run": run, "metrics": metrics, "summary": json.loads(summ.stdout)}


def same_number(a, b, rel=1e-9) -> bool:
    """Equal numbers, NaN equal to NaN (wandb stores NaN as the string "NaN" or drops it)."""
    def f(x):
        if x is None or x == "NaN":
            return float("nan")
        return float(x)
    x, y = f(a), f(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=rel, abs_tol=1e-12)


def compose(overrides=(), config_name="config", config_dir=CONF, return_hydra_config=False, extra_search=None):
    """Compose a config with hydra's compose API (the same schemas the CLI registers)."""
    from hydra import compose as hcompose, initialize_config_dir
    from autonuma_jax.cli import schema
    schema.register()
    ov = list(overrides)
    if extra_search:
        ov.append(f"hydra.searchpath=[file://{extra_search}]")
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3", job_name="test"):
        return hcompose(config_name=config_name, overrides=ov, return_hydra_config=return_hydra_config)


def to_dict(cfg) -> dict:
    from omegaconf import OmegaConf, open_dict
    if "hydra" in cfg:
        cfg = cfg.copy()
        with open_dict(cfg):
            del cfg["hydra"]
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
