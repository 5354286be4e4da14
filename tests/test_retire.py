"""Finished configurations leave the compiled batch (``Bucket.run(retire_done=True)``): the results
are those of the whole batch run to its end, bit for bit, and a checkpoint taken after the batch
shrank resumes to the same numbers."""
from __future__ import annotations

import numpy as np
import pytest

from autonuma_jax import simulate as S
from autonuma_jax.simulate import Bucket

from conftest import TINY2, mini

# one shape, four run lengths: numa02's loops are a value, not a shape
CFGS = [mini(TINY2, "numa02", loops=loops, seed=i, duration_s=6.0, report_ms=100.0)
        for i, loops in enumerate((600, 100, 200, 400))]


def same(r1, r2):
    bad = [k for k in r1.rows if not np.array_equal(r1.rows[k], r2.rows[k])]
    bad += [k for k in r1.final if not np.array_equal(r1.final[k], r2.final[k])]
    return bad


@pytest.fixture(scope="module")
def whole():
    b = Bucket.build(CFGS)
    res = b.run(reports_per_chunk=2)
    ends = [int(r.final["tick"]) for r in res]
    assert len(set(ends)) == 4 and max(ends) < b.static.n_ticks, ends  # four different ends, all reached
    return res


@pytest.fixture
def always_retire(monkeypatch):
    monkeypatch.setattr(S, "RETIRE_PAYBACK", 0.0)  # shrink whenever half the batch is done


def test_retired_configurations_give_the_whole_batchs_results(whole, always_retire):
    b = Bucket.build(CFGS)
    widths = []
    res = b.run(reports_per_chunk=2, retire_done=True,
                on_chunk=lambda bk: widths.append(len(CFGS) if bk.live_rows is None else len(bk.live_rows)))
    assert widths[0] == 4 and min(widths) == 1, widths  # it shrank, down to the slowest configuration
    assert int(np.asarray(b.state.tick).shape[0]) == 4  # the bucket's state is the whole batch again
    for i, (r1, r2) in enumerate(zip(whole, res)):
        assert not same(r1, r2), (i, same(r1, r2))


def test_a_checkpoint_after_shrinking_resumes_to_the_same_results(whole, always_retire, tmp_path):
    path = str(tmp_path / "b.npz")
    b = Bucket.build(CFGS)
    b.run(reports_per_chunk=2, retire_done=True, checkpoint=path, checkpoint_every=0,
          should_stop=lambda: b.live_rows is not None)
    assert b.stopped and b.reports_done < b.static.n_reports
    b2 = Bucket.build(CFGS)
    res = b2.run(reports_per_chunk=2, retire_done=True, checkpoint=path, checkpoint_every=0)
    for i, (r1, r2) in enumerate(zip(whole, res)):
        assert not same(r1, r2), (i, same(r1, r2))


def test_without_the_saving_nothing_retires(whole):
    """With the default payback rule a short run is not worth a compile: the batch keeps its width
    (a tiny run's chunks take far less than a compile)."""
    b = Bucket.build(CFGS)
    res = b.run(reports_per_chunk=2, retire_done=True)
    assert b.live_rows is None
    assert all(not same(r1, r2) for r1, r2 in zip(whole, res))


def test_simulate_retires_by_default_and_changes_no_result(whole, always_retire):
    """simulate() (and so the CLI job, sim.retire_done) retires finished configurations unless told
    not to; either way the results are the whole batch's."""
    seen = []
    res = S.simulate(CFGS, reports_per_chunk=2, progress=False,
                     on_chunk=lambda bk: seen.append(bk.live_rows is not None))
    assert any(seen)  # it did shrink
    kept = []
    res2 = S.simulate(CFGS, reports_per_chunk=2, progress=False, retire_done=False,
                      on_chunk=lambda bk: kept.append(bk.live_rows is not None))
    assert not any(kept)
    for i, (r0, r1, r2) in enumerate(zip(whole, res, res2)):
        assert not same(r0, r1) and not same(r0, r2), i
