"""The simulator itself on the real local SLURM cluster: hydra --multirun through the submitit SLURM
launcher, the job-array template running real sweep points, and a job signalled mid-run (as before
its time limit) that checkpoints, is requeued and resumes with bit-identical results."""
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cli_helpers import REPO, cli_env
from slurm_helpers import slurm_cluster  # noqa: F401  (the fixture)
from test_slurm_basic import _start_requeued_now, _submit, _wait_requeued_then_completed

TINY = ["experiment=quick", "sweep=none", "policy=autonuma24", "sim.duration_s=4", "workload.loops=20",
        "logger=disabled", "results.plots=false", "progress.mode=lines"]
# the real numa01 on the 2-node 24-CPU machine: ~10-20 s of wall time, so the signal lands mid-run
LONG = ["machine=2node_24cpu", "workload=numa01", "sweep=none", "policy=autonuma24", "sim.duration_s=150",
        "sim.reports_per_chunk=1", "sim.report_interval_ms=1000", "sim.stop_when_done=false", "progress.mode=lines",
        "progress.interval_s=0", "logger=disabled", "results.plots=false"]
CMD = f"{sys.executable} -m autonuma_jax"


def _env(tmp_path, cluster):
    env = cli_env(tmp_path / "xla", str(tmp_path))
    env.update(cluster.env)
    return env


def _template_env(tmp_path, cluster):
    """For the slurm/ templates: job folders under tmp_path, this interpreter, this checkout."""
    return {**_env(tmp_path, cluster), "AUTONUMA_JOB_ROOT": str(tmp_path / "jobs"), "AUTONUMA_CMD": CMD,
            "AUTONUMA_REPO": str(REPO)}


def _results(d):
    df = pd.read_parquet(Path(d) / "results.parquet")
    return df[[c for c in df.columns if c not in ("wall_s", "job_id", "job_wall_s", "job_num", "job_overrides",
                                                   "job_multirun")]].reset_index(drop=True)


@pytest.mark.slurm
def test_hydra_multirun_with_the_submitit_slurm_launcher(slurm_cluster, tmp_path):
    env = _env(tmp_path, slurm_cluster)
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "autonuma_jax", "-m", "hydra/launcher=slurm",
                        "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                        "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={tmp_path / 'sweep'}", *TINY, "seed=0,1"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for i, seed in enumerate((0, 1)):
        df = pd.read_parquet(tmp_path / "sweep" / str(i) / "results.parquet")
        assert df["seed"].tolist() == [seed] and df["runtime_s"].notna().all()
    logs = list((tmp_path / "sweep" / ".submitit").rglob("*_log.out"))
    assert len(logs) >= 2, logs
    print(f"submitit_slurm multirun: 2 jobs in {time.time() - t0:.1f} s; logs {[l.name for l in logs]}")


@pytest.mark.slurm
def test_array_template_runs_real_sweep_points(slurm_cluster, tmp_path):
    env = _template_env(tmp_path, slurm_cluster)
    points = tmp_path / "points.txt"
    points.write_text("seed=0\nseed=1\n")
    t0 = time.time()
    job, job_dir = _submit(slurm_cluster, "array", str(points), "--cpus-per-task=1", "--mem=1G", "--", *TINY, env=env)
    slurm_cluster.wait_gone(job, timeout=300)
    for i in (0, 1):
        log = (job_dir / f"autonuma-array-{job}_{i}.out").read_text()
        df = pd.read_parquet(job_dir / str(i) / "results.parquet")
        assert df["seed"].tolist() == [i], log[-2000:]
    rows = slurm_cluster.wait_sacct(job, n=2)
    assert {r[1] for r in rows} == {"COMPLETED"}, rows
    print(f"array job {job}: 2 tasks in {time.time() - t0:.1f} s")


@pytest.mark.slurm
def test_signalled_job_checkpoints_requeues_and_resumes_identically(slurm_cluster, tmp_path):
    env = _template_env(tmp_path, slurm_cluster)
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, "-m", "autonuma_jax", *LONG, f"hydra.run.dir={ref}"], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=400)
    t0 = time.time()
    job, job_dir = _submit(slurm_cluster, "gpu", "--gpus-per-node=0", "--cpus-per-task=1", "--mem=1G", "--", *LONG,
                           env=env)
    log_path = job_dir / f"autonuma-gpu-{job}.out"

    def running_chunks():
        text = log_path.read_text() if log_path.exists() else ""
        return text.count("progress:") >= 2

    slurm_cluster.wait_for("the job to run a few chunks", running_chunks, timeout=240, interval=0.5)
    slurm_cluster.run("scancel", "--signal=USR1", "--batch", job)
    _start_requeued_now(slurm_cluster, job)
    slurm_cluster.wait_gone(job, timeout=300)
    log = log_path.read_text()
    assert "saving a checkpoint" in log and "requeueing job" in log and "resuming batch 1" in log, log[-4000:]
    _wait_requeued_then_completed(slurm_cluster, job)
    pd.testing.assert_frame_equal(_results(ref), _results(job_dir / "run"))
    pd.testing.assert_frame_equal(pd.read_parquet(ref / "timeseries.parquet"),
                                  pd.read_parquet(job_dir / "run" / "timeseries.parquet"))
    print(f"job {job}: signalled, requeued and resumed in {time.time() - t0:.1f} s")
