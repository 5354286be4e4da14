"""Preemption: SIGUSR1 (or SIGTERM) makes a running job save its checkpoint and exit with status 3;
the same command in the same output folder resumes, and the results are bit-identical to an
uninterrupted run. No SLURM needed (the SLURM requeue path is tested in test_slurm_jobs.py)."""
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cli_helpers import REPO, cli_env

ARGS = ["experiment=quick", "sweep=none", "policy=autonuma24", "sim.duration_s=6", "sim.reports_per_chunk=1",
        "sim.report_interval_ms=250", "sim.stop_when_done=false", "workload.loops=400", "progress.mode=lines",
        "progress.interval_s=0", "logger=disabled", "results.plots=false"]


def _cmd(out):
    return [sys.executable, "-m", "autonuma_jax", *ARGS, f"hydra.run.dir={out}"]


def _frame(out):
    df = pd.read_parquet(Path(out) / "results.parquet")
    return df[[c for c in df.columns if c not in ("wall_s", "job_id", "job_wall_s")]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same job run once without a signal (both signals are compared with it)."""
    home = tmp_path_factory.mktemp("home")
    env = cli_env(home / "xla", str(home))
    ref = home / "ref"
    subprocess.run(_cmd(ref), cwd=REPO, env=env, check=True, capture_output=True, timeout=400)
    return env, ref


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM], ids=["USR1", "TERM"])
def test_signal_checkpoints_and_rerun_resumes_identically(tmp_path, sig, uninterrupted):
    env, ref = uninterrupted
    out = tmp_path / "run"
    p = subprocess.Popen(_cmd(out), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in p.stdout:  # wait until a few chunks have run, then preempt
        seen.append(line)
        if "progress:" in line and "chunks" in line and "(0/" not in line and len(
                [s for s in seen if "progress:" in s]) >= 3:
            p.send_signal(sig)
            break
    rest, _ = p.communicate(timeout=300)
    log = "".join(seen) + rest
    assert p.returncode == 3, log[-3000:]
    assert (out / "checkpoints" / "batch0.npz").exists()
    assert not (out / "results.parquet").exists()
    again = subprocess.run(_cmd(out), cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming batch 1" in again.stdout + again.stderr
    assert not (out / "checkpoints").exists()  # spent once the results are written
    a, b = _frame(ref), _frame(out)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    ta = pd.read_parquet(ref / "timeseries.parquet")
    tb = pd.read_parquet(out / "timeseries.parquet")
    pd.testing.assert_frame_equal(ta, tb)
