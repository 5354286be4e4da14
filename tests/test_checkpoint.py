"""Checkpoints: plain npz files, written atomically; resume is bit-identical; truncated or foreign
files give a one-line error; 1 device == 8 devices (sharded batch axis) is in test_devices.py."""
import os

import numpy as np
import pytest

from autonuma_jax.checkpoint import CheckpointError, read_header
from autonuma_jax.simulate import Bucket

from conftest import mini


@pytest.fixture(scope="module")
def cfgs():
    return [mini(policy=p, seed=s, duration_s=2.0) for p in ("autonuma24", "none") for s in (0, 1)]


def test_stop_and_resume_is_bit_identical(cfgs, tmp_path):
    ref = Bucket.build(cfgs).run(reports_per_chunk=2, stop_when_done=False)
    path = str(tmp_path / "ck.npz")
    b = Bucket.build(cfgs)
    calls = [0]

    def stop():
        calls[0] += 1
        return calls[0] == 2

    b.run(reports_per_chunk=2, stop_when_done=False, checkpoint=path, should_stop=stop)
    assert b.stopped and os.path.exists(path) and b.reports_done == 4
    hdr = read_header(path)
    assert hdr["reports_done"] == 4 and hdr["n_configs"] == 4
    with np.load(path, allow_pickle=False) as z:  # plain arrays, no pickle
        assert all(z[k].dtype != object for k in z.files)
    res = Bucket.build(cfgs).run(reports_per_chunk=2, stop_when_done=False, checkpoint=path)
    for a, r in zip(ref, res):
        for k in a.rows:
            assert np.array_equal(a.rows[k], r.rows[k]), k
        for k in a.final:
            assert np.array_equal(a.final[k], r.final[k]), k


def test_truncated_checkpoint_is_a_clear_error(cfgs, tmp_path):
    path = str(tmp_path / "ck.npz")
    b = Bucket.build(cfgs)
    b.run(reports_per_chunk=2, stop_when_done=False, checkpoint=path, should_stop=lambda: True)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        Bucket.build(cfgs).run(checkpoint=path)
    assert "truncated" in str(e.value) or "unreadable" in str(e.value)
    assert "\n" not in str(e.value)


def test_foreign_checkpoint_is_refused(cfgs, tmp_path):
    path = str(tmp_path / "ck.npz")
    Bucket.build(cfgs).run(reports_per_chunk=2, stop_when_done=False, checkpoint=path, should_stop=lambda: True)
    other = [mini(policy="autonuma24", seed=9, duration_s=2.0)] * 4
    with pytest.raises(CheckpointError) as e:
        Bucket.build(other).run(checkpoint=path)
    assert "other configurations" in str(e.value)
    open(path, "wb").write(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        Bucket.build(cfgs).run(checkpoint=path)
