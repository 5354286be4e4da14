"""The tuner's core (autonuma_jax.tune): search space, objective, successive halving, store and
resume, fresh-seed comparison and transfer; and the two engine features it stands on (a prefix run
with Bucket.run(max_reports=...), a batch on given shapes with Bucket.build(static=...))."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from autonuma_jax import simulate
from autonuma_jax.analysis.stats import paired_diff_ci
from autonuma_jax.config import SimConfig, build_static, validate_run
from autonuma_jax.errors import ConfigError
from autonuma_jax.knobs import RANGES
from autonuma_jax.simulate import Bucket
from autonuma_jax.tune import (FRESH_OFFSET, Rung, SearchSpace, Stopped, Store, Tuner, TuneSpec, cell_name, compare,
                               measure, transfer_table, tune, workload_mib)
from autonuma_jax.tune.evaluate import verdict
from autonuma_jax.tune.job import survivors

from conftest import TINY2, mini

SCAND = "autonuma.knuma_scand."
SPACE = {SCAND + "pages_to_scan": {"lo": 1024, "hi": 65536},
         SCAND + "scan_sleep_pass_millisecs": {"lo": 100, "hi": 10000}}
WL = {"name": "numa01", "size_mib": 128, "loops": 40, "duration_s": 10.0}


def same_records(a, b) -> bool:
    """Records equal value for value, NaN equal to NaN (the kernel counters a policy's kernel did
    not have are NaN, and NaN != NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def tiny_spec(**kw) -> TuneSpec:
    base = dict(machines=(TINY2,), workloads=(WL,), policy="autonuma24", space=SearchSpace.build(SPACE, "autonuma24"),
                candidates=4, eta=2, rungs=(Rung(0.5, 1), Rung(1.0, 2)), fresh_seeds=2,
                sim=SimConfig(duration_s=10.0, report_interval_ms=250.0), reports_per_chunk=8)
    base.update(kw)
    return TuneSpec(**base)


# ---- search space --------------------------------------------------------------------------------
def test_candidates_start_with_the_defaults_and_stratify_every_dimension():
    space = SearchSpace.build(SPACE, "autonuma24")
    c = space.sample(9, seed=3)
    assert c[0] == {SCAND + "pages_to_scan": 32768, SCAND + "scan_sleep_pass_millisecs": 10000}
    assert c == space.sample(9, seed=3) and c != space.sample(9, seed=4)  # seeded
    for d in space.dims:  # Latin hypercube on the log scale: one draw per stratum of each dimension
        u = (np.log([x[d.path] for x in c[1:]]) - math.log(d.lo)) / (math.log(d.hi) - math.log(d.lo))
        assert sorted(np.minimum((u * 8).astype(int), 7)) == list(range(8))
        assert all(isinstance(x[d.path], int) and d.lo <= x[d.path] <= d.hi for x in c)


def test_default_ranges_scales_and_kinds():
    space = SearchSpace.build({SCAND + "scan_sleep_millisecs": None, SCAND + "pmd": {},
                               "sched.noise_migrations_per_sec": {"lo": 0.0, "hi": 2.0}}, "autonuma24")
    sleep, pmd, noise = space.dims
    assert sleep.log and sleep.lo == 1 and sleep.hi == RANGES[SCAND + "scan_sleep_millisecs"][1]  # log: lo raised to 1
    assert not pmd.log and pmd.kind == "flag" and {pmd.decode(0.2), pmd.decode(0.7)} == {0, 1}
    assert not noise.log and noise.kind == "float" and isinstance(noise.decode(0.5), float)


def test_ordered_pairs_stay_ordered():
    nb = "numa_balancing.numa_balancing_scan_period_"
    space = SearchSpace.build({nb + "min_ms": {"lo": 100, "hi": 100000}, nb + "max_ms": {"lo": 100, "hi": 100000}},
                              "numa_balancing")
    for c in space.sample(40, seed=0):
        assert c[nb + "min_ms"] <= c[nb + "max_ms"]
    one = SearchSpace.build({nb + "min_ms": {"lo": 100, "hi": 100000}}, "numa_balancing")
    assert all(c[nb + "min_ms"] <= 60000 for c in one.sample(40, seed=0))  # clipped to the fixed max


@pytest.mark.parametrize("space, msg", [
    ({SCAND + "pages_to_scn": {}}, "unknown knob"),
    ({"numa_balancing.numa_balancing_scan_size_mb": {}}, "does not read"),
    ({SCAND + "pages_to_scan": {"lo": 9, "hi": 3}}, "must be <="),
    ({SCAND + "scan_sleep_millisecs": {"lo": 0, "hi": 10}}, "> 0 on a log scale"),
    ({SCAND + "pages_to_scan": {"lo": 1, "hi": 1 << 30}}, "allowed range"),
    ({SCAND + "pages_to_scan": {"lo": 1, "hi": 9, "step": 2}}, "unknown key"),
    ({}, "empty"),
])
def test_bad_search_spaces_are_one_line_errors(space, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        SearchSpace.build(space, "autonuma24")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kw, field", [
    ({"candidates": 0}, "tune.candidates"), ({"eta": 1}, "tune.eta"), ({"objective": "speed"}, "tune.objective"),
    ({"rungs": (Rung(0.5, 1),)}, "must run the whole run"), ({"rungs": (Rung(0.5, 2), Rung(1.0, 1))}, "must not decrease"),
    ({"fresh_seeds": 0}, "tune.fresh_seeds"), ({"seed": -1}, "seed"),
    ({"workloads": ({"name": "numa01", "size_mib": 128, "loops": 40, "duration_s": 0.1},)}, "sim.duration_s"),
])
def test_bad_specs_are_refused_before_any_compile(kw, field):
    with pytest.raises(ConfigError, match=field):
        tiny_spec(**kw).validate()


# ---- engine: prefix runs, given shapes --------------------------------------------------------------
def test_a_prefix_run_is_the_first_rows_of_the_full_run_and_pinned_shapes_change_nothing():
    cfg = validate_run(mini(duration_s=4.0))
    full = simulate([cfg], progress=False)[0]
    big = build_static([cfg, validate_run(mini(duration_s=4.0, knobs={SCAND + "pages_to_scan": 1 << 20}))])
    assert big.covers(build_static([cfg])) is None and build_static([cfg]).covers(big) is not None
    b = Bucket.build([cfg], static=big)
    part = b.run(reports_per_chunk=4, max_reports=8)[0]
    assert b.reports_done == 8
    for k, v in part.rows.items():
        np.testing.assert_array_equal(v, full.rows[k][:8], err_msg=k)
    with pytest.raises(ValueError, match="does not cover"):
        Bucket.build([validate_run(mini(duration_s=4.0, knobs={SCAND + "pages_to_scan": 1 << 20}))],
                     static=build_static([cfg]))


def test_workload_mib_is_what_a_finished_run_wrote_and_projection_is_exact_on_the_rate():
    cfg = validate_run(mini(duration_s=8.0))
    res = simulate([cfg], progress=False)[0]
    assert (res.final["finish_tick"] >= 0).all()
    want = workload_mib(cfg.resolved_workload())
    assert abs(float(res.final["tot_total_mib"]) - want) <= 0.01 * want
    m = measure(res, "weighted", overhead_weight=10.0)
    assert m["progress"] == 1.0 and m["objective"] == pytest.approx(m["runtime_s"] + 10 * m["overhead_cpu_s"])
    b = Bucket.build([cfg])
    part = b.run(reports_per_chunk=4, max_reports=8)[0]  # 2 of the ~3 simulated seconds
    p = measure(part, "runtime")
    assert not p["finished"] and 0 < p["progress"] < 1
    assert p["objective"] == pytest.approx(p["sim_s"] / p["progress"])
    assert 0.5 * m["runtime_s"] < p["objective"] < 3 * m["runtime_s"]


# ---- the job -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def job():
    calls = []
    store = Store()
    recs = tune(tiny_spec(), store, on_batch=lambda *a: calls.append(a))
    return recs, store, calls


def test_halving_keeps_the_best_and_evaluates_on_fresh_seeds(job):
    recs, _, calls = job
    spec = tiny_spec().validate()
    cell = cell_name(TINY2, WL)
    assert [c[:3] for c in calls] == [("search", cell, 0), ("search", cell, 1), ("evaluate", cell, 0)]
    r0 = [r for r in recs if r["stage"] == "search" and r["rung"] == 0]
    r1 = [r for r in recs if r["stage"] == "search" and r["rung"] == 1]
    assert len(r0) == 4 and {r["seed"] for r in r0} == {0}
    assert len(r1) == 4 and {r["seed"] for r in r1} == {0, 1}  # 2 survivors x 2 seeds
    assert r0[0]["is_default"] and r0[0]["knobs"] == spec.space.defaults()
    assert max(r["sim_s"] for r in r0) <= 5.0 + 1e-9  # rung 0: half of the 10 s run
    best0 = sorted(r0, key=lambda r: (r["objective"], r["candidate"]))[:2]
    assert {r["candidate"] for r in r1} == {r["candidate"] for r in best0}
    ev = [r for r in recs if r["stage"] == "evaluate"]
    assert {r["seed"] for r in ev} == {FRESH_OFFSET, FRESH_OFFSET + 1}
    assert {r["knobs_from"] for r in ev} == {"defaults", cell} and len(ev) == 4
    distinct = {tuple(sorted(r["knobs"].items())) for r in ev}
    assert calls[-1][3] == 2 * len(distinct)  # identical knob sets (the best is the defaults) run once
    means = {}
    for r in r1:
        means.setdefault(r["candidate"], []).append(r["objective"])
    winner = min(means, key=lambda c: (np.mean(means[c]), c))
    own = [r for r in ev if r["knobs_from"] == cell]
    assert all(r["knobs"] == next(x for x in r1 if x["candidate"] == winner)["knobs"] for r in own)


def test_the_evaluation_is_what_autonuma_sim_gives_for_those_knobs(job):
    recs, _, _ = job
    spec = tiny_spec().validate()
    r = next(r for r in recs if r["stage"] == "evaluate" and r["knobs_from"] != "defaults")
    alone = simulate([spec.config(TINY2, WL, r["knobs"], r["seed"])], progress=False)[0].summary()
    assert alone["runtime_s"] == r["runtime_s"] and alone["pages_migrated"] == r["pages_migrated"]


def test_a_tuning_job_is_reproducible_and_resumes_without_simulating(job, tmp_path):
    recs, _, _ = job
    path = str(tmp_path / "store.json")
    calls = []
    tune(tiny_spec(), Store(path), on_batch=lambda *a: calls.append(a))
    assert same_records(Store(path).records, recs)  # same spec and seed: the same numbers
    again = []
    tune(tiny_spec(), Store(path), on_batch=lambda *a: again.append(a))
    assert again == [] and len(calls) == 3
    with pytest.raises(ConfigError, match="another tuning job"):
        tune(tiny_spec(seed=5), Store(path))


def test_an_interrupted_batch_is_checkpointed_and_resumed_to_the_same_records(job, tmp_path):
    recs, _, _ = job
    path, ck = str(tmp_path / "store.json"), str(tmp_path / "ck")
    n = {"chunks": 0}

    def stop():
        n["chunks"] += 1
        return n["chunks"] == 4  # inside rung 1 (rung 0: 5 s = 20 intervals, rounded up to 3 chunks of 8)
    with pytest.raises(Stopped):
        Tuner(tiny_spec().validate(), Store(path), checkpoint_dir=ck, should_stop=stop).run()
    st = Store(path)
    assert list(st.batches) == [Store.key("search", cell_name(TINY2, WL), 0)]
    import os
    assert len(os.listdir(ck)) == 1  # the batch in flight
    Tuner(tiny_spec().validate(), st, checkpoint_dir=ck).run()
    assert same_records(st.records, recs) and os.listdir(ck) == []


def test_survivors_rank_by_mean_then_index():
    recs = [{"candidate": 0, "objective": 2.0}, {"candidate": 1, "objective": 1.0}, {"candidate": 2, "objective": 2.0},
            {"candidate": 1, "objective": 5.0}, {"candidate": 3, "objective": math.nan}]
    assert survivors(recs, [0, 1, 2, 3], 2) == [0, 2]  # 1's mean is 3; NaN-only ranks last
    assert survivors(recs, [0, 1, 2, 3], 10) == [0]


# ---- the honest answer ----------------------------------------------------------------------------------
def test_paired_difference_interval():
    d = paired_diff_ci([10.0, 12.0, 11.0], [9.0, 11.5, 10.0])
    assert d["diff"] == pytest.approx(-5 / 6) and d["df"] == 2
    sd = np.std([-1.0, -0.5, -1.0], ddof=1)
    assert d["half"] == pytest.approx(4.302652729911275 * sd / math.sqrt(3), rel=1e-6)
    assert paired_diff_ci([1.0, 2.0], [1.5, 2.5])["half"] == 0.0  # a constant shift is exact


def _ev(cell, src, vals, seeds=(1, 2, 3)):
    return [{"stage": "evaluate", "cell": cell, "knobs_from": src, "seed": s, "objective": v} for s, v in zip(seeds, vals)]


def test_verdicts_and_transfer_table():
    recs = (_ev("A", "defaults", [10, 11, 12]) + _ev("A", "A", [8, 9.1, 10]) + _ev("A", "B", [10.2, 10.5, 12.9])
            + _ev("B", "defaults", [20, 21, 19]) + _ev("B", "B", [15, 16.2, 14]) + _ev("B", "A", [22, 23.1, 21]))
    assert compare(recs, "A", "A")["verdict"] == "better"
    assert compare(recs, "A", "B")["verdict"] == "within noise"
    assert compare(recs, "B", "A")["verdict"] == "worse"
    assert verdict({"diff": -1.0, "half": math.nan}) == "no interval (one seed)"
    t = {(r["tuned_on"], r["evaluated_on"]): r for r in transfer_table(recs, ["A", "B"])}
    assert t[("A", "A")]["kept"] == pytest.approx(1.0)
    assert t[("B", "A")]["gain"] == pytest.approx(-(np.mean([10.2, 10.5, 12.9]) - 11) / 11)
    assert t[("B", "A")]["kept"] == pytest.approx(t[("B", "A")]["gain"] / t[("A", "A")]["gain"])
