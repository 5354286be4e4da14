"""The `slurm_cluster` fixture and helpers for tests against the local one-node SLURM cluster that
scripts/slurm_cluster.sh starts (scripts/test.sh starts it before pytest and stops it after).

Tests that use it are skipped, with the reason, unless AUTONUMA_SLURM=1 is set and
`scripts/slurm_cluster.sh status` reports the cluster up. Use it as::

    from slurm_helpers import slurm_cluster  # noqa: F401  (the fixture)

    @pytest.mark.slurm
    def test_x(slurm_cluster, tmp_path):
        job = slurm_cluster.sbatch("--wrap", "echo hi", "-o", str(tmp_path / "out"))
        assert slurm_cluster.wait_gone(job) ...

While the fixture is active, SLURM_CONF points at the cluster's slurm.conf in os.environ, so that
sbatch/srun/hydra's submitit launcher in this process and its children find the cluster.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable

import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = REPO / "scripts" / "slurm_cluster.sh"

# Final job states (sacct / scontrol spelling).
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                "PREEMPTED", "BOOT_FAIL", "DEADLINE")


class SlurmError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class SlurmCluster:
    """What `scripts/slurm_cluster.sh status` reported, plus helpers to drive the cluster."""

    name: str
    state_dir: Path
    conf: Path
    partition: str
    account: str
    node: str
    cpus: int
    log_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM commands and anything that submits jobs to this cluster."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        return env

    # -- commands ---------------------------------------------------------------------------
    def run(self, *args: str, check: bool = True, timeout: float = 30,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})})
        if check and proc.returncode != 0:
            raise SlurmError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def sbatch(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Submit; return the job id (for an array, the array's job id)."""
        out = self.run("sbatch", "--parsable", *args, env=env).stdout.strip()
        return out.split(";")[0]

    def scontrol_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict ({} once the controller forgot the job)."""
        proc = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        if proc.returncode != 0:
            return {}
        fields: dict[str, str] = {}
        for line in proc.stdout.splitlines()[:1]:
            for word in line.split():
                key, sep, value = word.partition("=")
                if sep and key not in fields:
                    fields[key] = value
        return fields

    def squeue_ids(self, job_id: str) -> list[str]:
        """Ids (with array task suffix) still in the queue for a job or array."""
        proc = self.run("squeue", "-h", "-j", job_id, "-o", "%i %T", check=False)
        return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]

    def sacct(self, job_id: str, *, duplicates: bool = False) -> list[tuple[str, str, str]]:
        """(JobID, State, ExitCode) of the job allocations (not steps) that sacct knows."""
        args = ["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State,ExitCode"]
        if duplicates:
            args.insert(1, "-D")
        proc = self.run(*args, check=False)
        rows = []
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) == 3:
                rows.append((parts[0], parts[1].split()[0] if parts[1] else "", parts[2]))
        return rows

    # -- waiting ----------------------------------------------------------------------------
    @staticmethod
    def wait_for(what: str, predicate: Callable[[], object], timeout: float = 30,
                 interval: float = 0.2):
        """Poll `predicate` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def wait_state(self, job_id: str, states: Iterable[str], timeout: float = 30) -> dict[str, str]:
        states = tuple(states)

        def check():
            info = self.scontrol_job(job_id)
            return info if info.get("JobState") in states else None

        return self.wait_for(f"job {job_id} to be {'/'.join(states)}", check, timeout)

    def wait_gone(self, job_id: str, timeout: float = 30) -> None:
        """Wait until no part of the job is pending, running or completing."""
        self.wait_for(f"job {job_id} to leave the queue", lambda: not self.squeue_ids(job_id),
                      timeout)

    def wait_sacct(self, job_id: str, n: int = 1, timeout: float = 30,
                   duplicates: bool = False) -> list[tuple[str, str, str]]:
        """Wait until sacct has a final state for `n` allocations of the job; return the rows
        (accounting reaches slurmdbd a moment after the job ends)."""
        def check():
            rows = self.sacct(job_id, duplicates=duplicates)
            final = [r for r in rows if r[1] in FINAL_STATES]
            return rows if len(final) >= n else None

        return self.wait_for(f"sacct to report job {job_id} finished", check, timeout)

    def log_tail(self, n: int = 30) -> str:
        """The end of the daemons' logs, for assertion messages."""
        out = []
        for name in ("slurmctld", "slurmd"):
            f = self.log_dir / f"{name}.log"
            if f.exists():
                out.append(f"--- {f} ---\n" + "\n".join(f.read_text(errors="replace").splitlines()[-n:]))
        return "\n".join(out)


def cluster_status(env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit status, output) of `scripts/slurm_cluster.sh status`."""
    try:
        proc = subprocess.run(["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True,
                              text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, f"{type(e).__name__}: {e}"
    return proc.returncode, proc.stdout + proc.stderr


def parse_status(output: str) -> dict[str, str]:
    info = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper() and key.replace("_", "").isalnum():
            info[key] = value.strip()
    return info


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local SLURM cluster (session scope); skips unless AUTONUMA_SLURM=1 and it is up."""
    if os.environ.get("AUTONUMA_SLURM") != "1":
        pytest.skip("SLURM tests need AUTONUMA_SLURM=1 and a cluster started with "
                    "`scripts/slurm_cluster.sh install && scripts/slurm_cluster.sh start` "
                    "(scripts/test.sh does both)")
    rc, out = cluster_status()
    tail = " | ".join(out.strip().splitlines()[-8:])
    if rc != 0:
        pytest.skip(f"AUTONUMA_SLURM=1 but the local SLURM cluster is not up "
                    f"(scripts/slurm_cluster.sh status exited {rc}): {tail}")
    info = parse_status(out)
    try:
        cluster = SlurmCluster(name=info["CLUSTER_NAME"], state_dir=Path(info["STATE_DIR"]),
                               conf=Path(info["SLURM_CONF"]), partition=info["PARTITION"],
                               account=info["ACCOUNT"], node=info["NODE"],
                               cpus=int(info["NODE_CPUS"]), log_dir=Path(info["LOG_DIR"]))
    except (KeyError, ValueError) as e:
        pytest.skip(f"cannot parse `scripts/slurm_cluster.sh status` ({e!r}): {tail}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
