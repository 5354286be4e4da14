"""The local SLURM cluster and the sbatch templates in slurm/ really work.

The tests marked `slurm` need a running cluster (scripts/slurm_cluster.sh start, AUTONUMA_SLURM=1;
scripts/test.sh does it) and are skipped with the reason otherwise. Each takes a few seconds.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slurm_helpers import FINAL_STATES, REPO, SlurmCluster, slurm_cluster  # noqa: F401  (fixture)

SLURM_DIR = REPO / "slurm"
TEMPLATES = ("array.sbatch", "gpu.sbatch")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _start_requeued_now(cluster: SlurmCluster, job: str) -> None:
    """SLURM holds a requeued job for ~2 minutes (BeginTime = requeue time + 121 s); a test
    cannot wait that long, so once the job is pending again, make it eligible soon - but not in the
    same second as the requeue: slurmd revokes the old run's credential with a one-second timestamp,
    and a relaunch within that second is killed as "Job credential revoked" (seen in slurmctld.log)."""
    pending_since = []

    def restarted():
        info = cluster.scontrol_job(job)
        if not info:
            # forgotten by the controller: done only if accounting shows a run after the requeue
            return len(cluster.sacct(job, duplicates=True)) >= 2
        if int(info.get("Restarts", "0")) < 1:
            return False  # the requeue has not happened yet
        state = info.get("JobState")
        if state == "PENDING":
            # the hold may be set a moment after the job turns PENDING: repeat until it runs
            if not pending_since:
                pending_since.append(time.monotonic())
            if info.get("Reason") in ("BeginTime", "None") and time.monotonic() - pending_since[0] >= 2.5:
                cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
            return False
        return state == "RUNNING" or state in FINAL_STATES   # not while still COMPLETING

    cluster.wait_for(f"job {job} to run again after its requeue", restarted, timeout=90, interval=0.3)


def _wait_requeued_then_completed(cluster: SlurmCluster, job: str) -> None:
    """sacct -D lists one row per run: the first REQUEUED, the last COMPLETED (the records reach
    slurmdbd a moment after the job ends, so wait for them)."""
    def ok():
        states = [r[1] for r in cluster.sacct(job, duplicates=True)]
        return len(states) >= 2 and "REQUEUED" in states[:-1] and states[-1] == "COMPLETED"

    try:
        cluster.wait_for(f"sacct to show job {job} requeued, then completed", ok, timeout=60)
    except TimeoutError:
        raise AssertionError(f"sacct -D -j {job}: {cluster.sacct(job, duplicates=True)}") from None


def _submit(cluster: SlurmCluster, kind: str, *args: str, env: dict[str, str]) -> tuple[str, Path]:
    proc = cluster.run("bash", str(SLURM_DIR / "submit.sh"), kind, *args, env=env)
    fields = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return fields["JOB_ID"], Path(fields["JOB_DIR"])


# ------------------------------------------------------------------------------------------------
# plain SLURM


@pytest.mark.slurm
def test_sbatch_wrap_output_comes_back(slurm_cluster, tmp_path):
    out = tmp_path / "wrap-%j.out"
    job = slurm_cluster.sbatch("-J", "wrap", "-o", str(out), "--wrap",
                               'echo "hello from job $SLURM_JOB_ID on $SLURMD_NODENAME"')
    slurm_cluster.wait_gone(job)
    text = _read(tmp_path / f"wrap-{job}.out")
    assert f"hello from job {job} on {slurm_cluster.node}" in text, slurm_cluster.log_tail()
    rows = slurm_cluster.wait_sacct(job)
    assert rows[0][1:] == ("COMPLETED", "0:0"), rows


@pytest.mark.slurm
def test_array_runs_every_task(slurm_cluster, tmp_path):
    job = slurm_cluster.sbatch(
        "-J", "array", "--array=0-2", "--cpus-per-task=1", "-o", str(tmp_path / "arr-%A_%a.out"),
        "--wrap", 'echo "task=$SLURM_ARRAY_TASK_ID count=$SLURM_ARRAY_TASK_COUNT array=$SLURM_ARRAY_JOB_ID"')
    slurm_cluster.wait_gone(job)
    for i in range(3):
        text = _read(tmp_path / f"arr-{job}_{i}.out")
        assert f"task={i} count=3 array={job}" in text, (i, text, slurm_cluster.log_tail())
    rows = slurm_cluster.wait_sacct(job, n=3)
    assert sorted((r[0], r[1]) for r in rows) == [(f"{job}_{i}", "COMPLETED") for i in range(3)], rows


@pytest.mark.slurm
def test_requeue_of_a_running_job_runs_it_again(slurm_cluster, tmp_path):
    out = tmp_path / "requeue.out"
    script = _script(tmp_path / "requeue.sh", """#!/bin/bash
echo "run restart=${SLURM_RESTART_COUNT:-0}"
if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then echo "finished after a requeue"; exit 0; fi
sleep 120
""")
    job = slurm_cluster.sbatch("-J", "requeue", "--requeue", "--open-mode=append", "-o", str(out),
                               str(script))
    slurm_cluster.wait_for("the first run", lambda: "run restart=0" in _read(out))
    slurm_cluster.run("scontrol", "requeue", job)
    _start_requeued_now(slurm_cluster, job)
    slurm_cluster.wait_gone(job)
    text = _read(out)
    assert "run restart=0" in text and "run restart=1" in text, text
    assert "finished after a requeue" in text, text
    _wait_requeued_then_completed(slurm_cluster, job)


@pytest.mark.slurm
def test_sacct_reports_a_cancelled_job(slurm_cluster, tmp_path):
    job = slurm_cluster.sbatch("-J", "cancel", "-o", str(tmp_path / "cancel.out"), "--wrap", "sleep 120")
    slurm_cluster.wait_state(job, ["RUNNING"])
    slurm_cluster.run("scancel", job)
    rows = slurm_cluster.wait_sacct(job)
    assert rows[0][1] in ("CANCELLED", "FAILED"), rows
    slurm_cluster.wait_gone(job)


# ------------------------------------------------------------------------------------------------
# the templates in slurm/, with a stand-in for the simulator command


@pytest.mark.slurm
def test_array_template_runs_one_sweep_point_per_task(slurm_cluster, tmp_path):
    points = tmp_path / "points.txt"
    points.write_text(subprocess.run(
        [sys.executable, str(SLURM_DIR / "expand_sweep.py"), "policy=autonuma24,numa_balancing",
         "seed=7"], capture_output=True, text=True, check=True).stdout)
    stub = _script(tmp_path / "stub.sh", """#!/bin/bash
printf '%s\\n' "$@" > "$AUTONUMA_RUN_DIR/args.txt"
""")
    env = {"AUTONUMA_JOB_ROOT": str(tmp_path / "jobs"), "AUTONUMA_CMD": str(stub)}
    job, job_dir = _submit(slurm_cluster, "array", str(points), "--cpus-per-task=1", "--",
                           "+extra=1", env=env)
    slurm_cluster.wait_gone(job)
    for i, policy in enumerate(("autonuma24", "numa_balancing")):
        args = _read(job_dir / str(i) / "args.txt").split()
        log = _read(job_dir / f"autonuma-array-{job}_{i}.out")
        assert args == [f"policy={policy}", "seed=7", "+extra=1", f"hydra.run.dir={job_dir / str(i)}",
                        f"hydra.job.num={i}"], (args, log)
    rows = slurm_cluster.wait_sacct(job, n=2)
    assert {r[1] for r in rows} == {"COMPLETED"}, rows


@pytest.mark.slurm
def test_template_checkpoints_and_requeues_on_usr1(slurm_cluster, tmp_path):
    """What --signal=B:USR1@120 does before the time limit, sent now with scancel."""
    stub = _script(tmp_path / "stub.sh", """#!/bin/bash
p="$AUTONUMA_RUN_DIR/progress.txt"
# the trap first: the test signals as soon as it reads the "start" line
trap 'echo "checkpoint saved" >> "$p"; exit 75' USR1
echo "start restart=${SLURM_RESTART_COUNT:-0} args=$*" >> "$p"
if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then echo "resumed and finished" >> "$p"; exit 0; fi
while true; do sleep 0.1; done
""")
    env = {"AUTONUMA_JOB_ROOT": str(tmp_path / "jobs"), "AUTONUMA_CMD": str(stub)}
    job, job_dir = _submit(slurm_cluster, "gpu", "--gpus-per-node=0", "--cpus-per-task=1", "--",
                           "sweep=x", env=env)
    progress = job_dir / "run" / "progress.txt"
    slurm_cluster.wait_for("the first run", lambda: "start restart=0" in _read(progress))
    slurm_cluster.run("scancel", "--signal=USR1", "--batch", job)
    _start_requeued_now(slurm_cluster, job)
    slurm_cluster.wait_gone(job)
    log = _read(job_dir / f"autonuma-gpu-{job}.out")
    assert _read(progress).splitlines() == [
        f"start restart=0 args=sweep=x hydra.run.dir={job_dir / 'run'}",
        "checkpoint saved",
        f"start restart=1 args=sweep=x hydra.run.dir={job_dir / 'run'}",
        "resumed and finished",
    ], log
    assert "requeueing job" in log, log
    _wait_requeued_then_completed(slurm_cluster, job)


# ------------------------------------------------------------------------------------------------
# no cluster needed


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_declare_requeue_on_preemption(name):
    text = (SLURM_DIR / name).read_text()
    directives = re.findall(r"^#SBATCH\s+(\S+)", text, re.M)
    assert "--requeue" in directives
    assert any(re.fullmatch(r"--signal=B:USR1@\d+", d) for d in directives), directives
    assert any(d.startswith("--output=") for d in directives), directives
    assert "python -m autonuma_jax" in (SLURM_DIR / "job_lib.sh").read_text()
    subprocess.run(["bash", "-n", str(SLURM_DIR / name)], check=True)


def test_shell_scripts_parse():
    for path in (SLURM_DIR / "job_lib.sh", SLURM_DIR / "submit.sh", REPO / "scripts" / "slurm_cluster.sh"):
        subprocess.run(["bash", "-n", str(path)], check=True)


def test_expand_sweep_lists_points_in_hydra_order():
    out = subprocess.run([sys.executable, str(SLURM_DIR / "expand_sweep.py"), "a=1,2", "b=x,y"],
                         capture_output=True, text=True, check=True, env=dict(os.environ)).stdout
    assert out.splitlines() == ["a=1 b=x", "a=1 b=y", "a=2 b=x", "a=2 b=y"]
