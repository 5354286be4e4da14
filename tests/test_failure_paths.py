"""Failure paths that lose no work: checkpoints that are corrupt, foreign or edited; a full disk when
the results or a preemption checkpoint are written; file permissions of the outputs."""
from __future__ import annotations

import errno
import os
import stat
import warnings

import numpy as np
import pytest

pytest.importorskip("hydra")
pd = pytest.importorskip("pandas")

from autonuma_jax import checkpoint as ckpt  # noqa: E402
from autonuma_jax.cli import job as J  # noqa: E402
from autonuma_jax.cli import results as R  # noqa: E402
from autonuma_jax.simulate import Bucket  # noqa: E402

from cli_helpers import cli_env, compose, run_cli, to_dict  # noqa: E402
from conftest import mini  # noqa: E402

JOB = ["experiment=quick", "sweep=none", "sim.duration_s=2", "workload.loops=20", "progress.mode=off",
       "logger=disabled", "results.plots=false", "sim.compilation_cache_dir=null", "results.write_retry_s=0.01",
       "results.write_retries=2"]


def job(extra=()):
    return to_dict(compose(JOB + list(extra)))


def _bucket():
    b = Bucket.build([mini(duration_s=0.5, report_ms=100.0)])
    b.run(reports_per_chunk=2)
    return b


def test_checkpoint_checksum_refuses_an_edited_file(tmp_path):
    b = _bucket()
    path = str(tmp_path / "c.npz")
    ckpt.save(b, path)
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    key = next(k for k in data if k.endswith(".free_pages"))
    data[key] = data[key] + 1  # edited by hand
    np.savez(path, **data)
    b2 = Bucket.build(b.configs)
    with pytest.raises(ckpt.CheckpointError, match="fails its content checksum"):
        ckpt.load(b2, path)


def test_checkpoint_errors_are_one_line_on_the_command_line(tmp_path):
    out = tmp_path / "j"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "batch0.npz").write_bytes(b"not a checkpoint")
    env = cli_env(str(tmp_path / "cache"), str(tmp_path))
    p = run_cli(JOB + [f"hydra.run.dir={out}"], cwd=tmp_path, env=env, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: checkpoint ") and "remove" in last and "checkpoints to start afresh" in last
    assert "Traceback" not in p.stderr


def test_full_disk_keeps_the_results_and_a_rerun_writes_them_without_simulating(tmp_path, monkeypatch):
    out = str(tmp_path / "j")
    real = R.write_atomic

    def full(df, path, overwrite):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(R, "write_atomic", full)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(J.WriteFailed) as e:
            J.run_job(job(), out)
    msg = str(e.value)
    assert "No space left on device" in msg and "rerun the same command" in msg
    assert os.listdir(os.path.join(out, "checkpoints"))  # the final states are kept
    monkeypatch.setattr(R, "write_atomic", real)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = J.run_job(job(), out)
    assert info.compiles == 0  # rebuilt from the final checkpoints: nothing simulated again
    assert os.path.exists(os.path.join(out, R.RESULTS)) and not os.path.exists(os.path.join(out, "checkpoints"))
    fresh = str(tmp_path / "fresh")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        J.run_job(job(), fresh)
    a, b = pd.read_parquet(os.path.join(out, R.RESULTS)), pd.read_parquet(os.path.join(fresh, R.RESULTS))
    for c in ("runtime_s", "sim_s", "local_fraction_final", "pages_migrated", "overhead_cpu_s"):
        np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy())


def test_a_transient_full_disk_is_retried(tmp_path, monkeypatch):
    real, calls = R.write_atomic, []

    def flaky(df, path, overwrite):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(df, path, overwrite)

    monkeypatch.setattr(R, "write_atomic", flaky)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        J.run_job(job(), str(tmp_path / "j"))
    assert len(calls) >= 2 and os.path.exists(tmp_path / "j" / R.RESULTS)


def test_preemption_checkpoint_on_a_full_disk_still_stops_for_requeue(tmp_path, monkeypatch):
    def full(bucket, path, extra=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save", full)
    b = Bucket.build([mini(duration_s=1.0, report_ms=100.0)])
    b.run(reports_per_chunk=2, checkpoint=str(tmp_path / "c.npz"), should_stop=lambda: True)
    assert b.stopped and "No space left on device" in b.checkpoint_error


def test_outputs_get_the_umasks_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            J.run_job(job(), str(tmp_path / "j"))
        for name in (R.RESULTS, R.TIMESERIES):
            mode = stat.S_IMODE(os.stat(tmp_path / "j" / name).st_mode)
            assert mode == 0o644, (name, oct(mode))
    finally:
        os.umask(old)
