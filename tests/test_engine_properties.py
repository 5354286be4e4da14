"""Engine-level properties: determinism, independence from batch composition and order, jit vs
eager equivalence of ``tick.step``, and a recompile guard (knob values never recompile a bucket,
shapes do). Everything is compared bit for bit: every time-series row, every final counter and the
whole final state pytree.

One small configuration family (TINY2, numa01 with two 256 MiB processes, daemons sped up) is run
for 0.6 simulated seconds: long enough for passes, hinting faults, queueing, migrations and task
exchanges. Each distinct (Static, batch size) compiles once per session.
"""
from __future__ import annotations

import contextlib
import gc
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autonuma_jax import tick
from autonuma_jax.config import build_static
from autonuma_jax.simulate import Bucket, Row, chunk_args, compiled_chunk, compiled_init

from conftest import TINY2, mini

K = {
    "autonuma.knuma_scand.pages_to_scan": 16384,  # 32 pmds per call: scan_pmds_per_tick = 64 < 128 pmds per mm
    "autonuma.knuma_scand.scan_sleep_millisecs": 10,
    "autonuma.knuma_scand.scan_sleep_pass_millisecs": 200,
    "autonuma.balance_interval_millisecs": 20,
}
REPORT_MS = 4.0


def cfg(seed=1, policy="autonuma24", duration_s=0.6, **knobs):
    return mini(TINY2, "numa01", policy=policy, seed=seed, size_mib=256, loops=50, duration_s=duration_s,
                report_ms=REPORT_MS, knobs={**K, **{k.replace("__", "."): v for k, v in knobs.items()}})


A = cfg(seed=3)  # (its knuma_scand starts early enough for exchanges within 0.6 s)
# Same bucket as A (same Static): other seeds, policies, knob values.
OTHERS = [
    cfg(seed=2, autonuma__knuma_migrated__allow_first_fault=0),
    cfg(seed=1, policy="none"),
    cfg(seed=4, autonuma__knuma_scand__pages_to_scan=12000, autonuma__knuma_migrated__defer=1),
]
# A knob value that needs a larger capacity (scan_pmds_per_tick 256 instead of 64): another bucket.
BIG_SCAN = cfg(seed=5, autonuma__knuma_scand__pages_to_scan=65536)


# ------------------------------------------------------------------------------------------------
# compile counting
# ------------------------------------------------------------------------------------------------
_COMPILES = [0]
_EVENT = "/jax/core/compile/backend_compile_duration"


def _listener(event, duration, **kwargs):
    if event == _EVENT:
        _COMPILES[0] += 1


jax.monitoring.register_event_duration_secs_listener(_listener)


class Recompiled(AssertionError):
    pass


@contextlib.contextmanager
def no_recompile(*jitted):
    """Fails if XLA compiled anything inside the block, or if a jitted function's cache grew."""
    before = _COMPILES[0]
    sizes = [f._cache_size() for f in jitted]
    yield
    grown = [f._cache_size() - s for f, s in zip(jitted, sizes)]
    n = _COMPILES[0] - before
    if n or any(grown):
        raise Recompiled(f"recompiled: {n} XLA compilations, jit cache growth {grown}")


# ------------------------------------------------------------------------------------------------
# running buckets
# ------------------------------------------------------------------------------------------------
def to_np(tree):
    return jax.tree_util.tree_map(lambda x: np.array(x), tree)


def run(cfgs, capture=False):
    """Run a batch to the end (no early stop). Returns (bucket, results, states after each chunk)."""
    b = Bucket.build(cfgs)
    b.init()
    states = []
    res = b.run(reports_per_chunk=1, stop_when_done=False,
                on_chunk=(lambda bk: states.append(to_np(bk.state))) if capture else None)
    return b, res, states


def config_state(bucket, i):
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[i], bucket.state)


def assert_same_tree(a, b, what=""):
    pa = jax.tree_util.tree_leaves_with_path(a)
    lb = jax.tree_util.tree_leaves(b)
    assert len(pa) == len(lb)
    bad = [jax.tree_util.keystr(p) for (p, x), y in zip(pa, lb)
           if np.asarray(x).dtype != np.asarray(y).dtype or not np.array_equal(x, y)]
    assert not bad, f"{what}: differs in {bad}"


def assert_same_result(r1, r2, what=""):
    assert set(r1.rows) == set(r2.rows) == set(Row.__dataclass_fields__)
    bad = [k for k in r1.rows if not np.array_equal(r1.rows[k], r2.rows[k])]
    assert not bad, f"{what}: rows differ in {bad}"
    bad = [k for k in r1.final if not np.array_equal(r1.final[k], r2.final[k])]
    assert not bad, f"{what}: final values differ in {bad}"


@pytest.fixture(scope="module")
def alone():
    b, res, states = run([A], capture=True)
    return b, res[0], states


@pytest.fixture(scope="module")
def batch():
    """A inside a batch of four (same bucket). The run is watched by the recompile guard: the
    bucket's compiled chunk meets a new batch size (a shape), so the guard must fire."""
    static = build_static([A])
    fn, init = compiled_chunk(static, 1), compiled_init(static)
    cfgs = [OTHERS[0], A, OTHERS[1], OTHERS[2]]
    guard = None
    try:
        with no_recompile(fn, init):
            b, res, _ = run(cfgs)
    except Recompiled as e:
        guard = e
    return b, res, guard


# ------------------------------------------------------------------------------------------------
# determinism and batch composition
# ------------------------------------------------------------------------------------------------
def test_run_is_active(alone):
    """The configuration exercises every mechanism (otherwise the comparisons below prove little)."""
    _, r, _ = alone
    rows = r.rows
    assert rows["full_scans"][-1] >= 2
    for k in ("hinting_faults", "pages_queued", "pages_migrated", "exchanges"):
        assert rows[k].sum() > 0, k
    assert r.final["tot_queue_overflows"] == 0


def test_same_config_same_seed_is_bit_identical(alone):
    b1, r1, _ = alone
    b2, res, _ = run([A])
    assert_same_result(r1, res[0], "rerun")
    assert_same_tree(config_state(b1, 0), config_state(b2, 0), "final state")


def test_alone_equals_inside_a_batch_and_a_shuffled_batch(alone, batch):
    b1, r1, _ = alone
    bb, rb, _ = batch
    assert bb.static == b1.static  # one bucket: only traced values differ
    assert_same_result(r1, rb[1], "A alone vs A in batch")
    assert_same_tree(config_state(b1, 0), config_state(bb, 1), "A alone vs A in batch: final state")
    # the same batch in another order: every configuration's results follow it
    order = [2, 0, 3, 1]  # OTHERS[1], OTHERS[0], A, OTHERS[2]
    cfgs = [bb.configs[i] for i in order]
    bs, rs, _ = run(cfgs)
    for j, i in enumerate(order):
        assert_same_result(rb[i], rs[j], f"config {i} in shuffled batch")
        assert_same_tree(config_state(bb, i), config_state(bs, j), f"config {i} in shuffled batch: final state")
    ja = order.index(1)
    assert bs.configs[ja] is A
    assert_same_result(r1, rs[ja], "A alone vs A in shuffled batch")
    assert_same_tree(config_state(b1, 0), config_state(bs, ja), "A alone vs A in shuffled batch: final state")


def test_alone_equals_inside_a_batch_of_64_and_its_shuffle(alone):
    """A among 63 other configurations of its bucket (seeds, policies, knob values), then the same
    64 in a random order: A equals A alone, and every configuration equals itself across orders."""
    b1, r1, _ = alone
    policies = ("autonuma24", "none", "hard_bind", "inverse_bind")
    others = [cfg(seed=10 + i, policy=policies[i % 4],
                  autonuma__knuma_migrated__allow_first_fault=i % 2,
                  autonuma__knuma_scand__pages_to_scan=8192 + 512 * (i % 16)) for i in range(63)]
    cfgs = others[:37] + [A] + others[37:]
    bb, rb, _ = run(cfgs)
    assert bb.static == b1.static and len(rb) == 64
    assert_same_result(r1, rb[37], "A alone vs A at index 37 of 64")
    assert_same_tree(config_state(b1, 0), config_state(bb, 37), "A alone vs A in 64: final state")
    order = np.random.default_rng(7).permutation(64)
    bs, rs, _ = run([cfgs[i] for i in order])
    for j, i in enumerate(order):
        assert_same_result(rb[i], rs[j], f"config {i} at {j} in the shuffled 64")


def test_alone_equals_inside_a_batch_with_larger_capacities(alone):
    """A configuration whose neighbour needs larger capacities (another bucket Static) must still
    give the same results: capacities are array sizes, not behaviour."""
    b1, r1, _ = alone
    bb, rb, _ = run([A, BIG_SCAN])
    assert bb.static != b1.static and bb.static.scan_pmds_per_tick > b1.static.scan_pmds_per_tick
    assert_same_result(r1, rb[0], "A alone vs A next to a larger pages_to_scan")
    assert_same_tree(config_state(b1, 0), config_state(bb, 0), "final state")


# ------------------------------------------------------------------------------------------------
# jit vs eager, and the batched (gated) driver
# ------------------------------------------------------------------------------------------------
def _eventful_interval(rows):
    """The most eventful report interval after the first: faults, queueing, migration, exchanges."""
    kinds = ("hinting_faults", "pages_queued", "pages_migrated", "exchanges", "lb_moves", "noise_moves")
    score = sum((rows[k] > 0).astype(int) for k in kinds)
    score[0] = -1
    k = int(np.argmax(score))
    assert rows["hinting_faults"][k] > 0 and score[k] >= 3
    return k


def _slice(tree, i):
    return jax.tree_util.tree_map(lambda x: np.array(np.asarray(x)[i]), tree)


def _put(batch_tree, i, tree):
    """Copy of a batched tree with slot i replaced."""
    def f(big, small):
        big = np.array(big)
        big[i] = small
        return big
    return jax.tree_util.tree_map(f, batch_tree, tree)


def test_step_eager_equals_jit(alone):
    """tick.step run op by op (jax.disable_jit) from a mid-run state equals jit(tick.step), bit for
    bit; both agree with the interval counters of the production (compiled, batched) run."""
    b, r, states = alone
    rows = r.rows
    k = _eventful_interval(rows)
    s0 = jax.tree_util.tree_map(jnp.asarray, _slice(states[k - 1], 0))  # start of interval k
    params = jax.tree_util.tree_map(jnp.asarray, _slice(b.params, 0))
    jstep = jax.jit(tick.step, static_argnums=2)
    sj = s0
    for _ in range(b.static.report_ticks):
        sj = jstep(sj, params, b.static)
    se = s0
    with jax.disable_jit():
        for _ in range(b.static.report_ticks):
            se = tick.step(se, params, b.static)
    assert_same_tree(to_np(se), to_np(sj), "eager vs jit")
    acc = to_np(se).acc
    for f in ("local_kib", "total_kib", "hinting_faults", "fault_pages", "pages_queued", "pages_migrated",
              "exchanges", "noise_moves", "lb_moves", "overhead_us"):
        assert np.array_equal(getattr(acc, f), rows[f][k]), f


def test_skipped_phase_leaves_no_trace_of_the_batch(alone, batch):
    """A's state, with an exchange flag left from its last tick and no balance timer due, steps
    identically alone and inside a batch whose other configuration's balance timer fires."""
    b1, _, states = alone
    bb, _, _ = batch
    assert bb.static == b1.static and bb.configs[1] is A
    sA = _slice(states[-1], 0)
    sA.sched.pending[0] = True
    sA.sched.next_balance[:] = int(sA.tick) + 1000  # none of A's CPUs balances in this interval
    fn = compiled_chunk(b1.static, 1)
    out1, _ = fn(jax.tree_util.tree_map(lambda x: jnp.asarray(x[None]), sA), b1.params, *chunk_args(b1.static, 1))
    sb = _put(to_np(bb.state), 1, sA)
    assert int(sb.tick[0]) == int(sA.tick)
    sb.sched.next_balance[0, 0] = sb.tick[0]  # configuration 0's CPU 0 balances now
    out4, _ = fn(jax.tree_util.tree_map(jnp.asarray, sb), bb.params, *chunk_args(bb.static, 1))
    assert_same_tree(_slice(out1, 0), _slice(out4, 1), "A alone vs A in a batch")


# ------------------------------------------------------------------------------------------------
# recompile guard
# ------------------------------------------------------------------------------------------------
def test_knob_values_do_not_recompile(alone):
    b, _, _ = alone
    fn = compiled_chunk(b.static, 1)
    init = compiled_init(b.static)
    other = cfg(seed=11, autonuma__enabled=0, autonuma__knuma_scand__pages_to_scan=10000,
                autonuma__knuma_scand__mm_working_set=0, autonuma__knuma_migrated__allow_first_fault=0,
                autonuma__knuma_migrated__migrate_sleep_millisecs=37, costs__migrate_per_page_ns=1234,
                sched__noise_migrations_per_sec=3.5, transparent_hugepage__enabled=0,
                autonuma__knuma_scand__pmd=1)
    assert build_static([other]) == b.static
    with no_recompile(fn, init):
        b2, res, _ = run([other])
    assert b2.static == b.static and len(res[0].rows["tick"]) == A.sim.n_reports


def test_a_shorter_last_chunk_and_other_durations_compile_nothing(alone):
    """A chunk's interval count and the report interval are trip counts, not shapes: a run whose
    last chunk is shorter (150 intervals, 7 a chunk) compiles one chunk program, gives what one
    interval a chunk gave, and a run of another duration or report interval compiles nothing more."""
    from dataclasses import replace
    b1, r1, _ = alone
    fn, init = compiled_chunk(b1.static, 7), compiled_init(b1.static)
    before = _COMPILES[0]
    b = Bucket.build([A])
    r7 = b.run(reports_per_chunk=7, stop_when_done=False)[0]
    assert A.sim.n_reports % 7 and fn._cache_size() == 1
    assert _COMPILES[0] - before <= 1  # the 7-interval program (init is shared with `alone`'s)
    assert_same_result(r1, r7, "7 intervals a chunk vs 1")
    shorter = replace(A, sim=replace(A.sim, duration_s=0.3))
    coarser = replace(A, sim=replace(A.sim, report_interval_ms=6.0))
    with no_recompile(fn, init):
        rs = Bucket.build([shorter]).run(reports_per_chunk=7, stop_when_done=False)[0]
        rc = Bucket.build([coarser]).run(reports_per_chunk=7, stop_when_done=False)[0]
    assert len(rs.rows["tick"]) == shorter.sim.n_reports == 75 and len(rc.rows["tick"]) == 100
    assert all(np.array_equal(rs.rows[k], r1.rows[k][:75]) for k in rs.rows)  # a prefix of the longer run
    assert np.array_equal(rc.rows["tick"], 6 * np.arange(1, 101))
    for k in ("hinting_faults", "total_kib", "local_kib"):  # the same ticks, counted in coarser rows
        assert rc.rows[k][:50].sum() == r1.rows[k][:75].sum() and r1.rows[k][:75].sum() > 0, k


def test_recompile_guard_detects_a_shape_change(batch):
    """The guard can fail: running the same bucket (same Static, same compiled function) with a
    batch of four instead of one is a new input shape; the guard watching that run fired."""
    bb, _, guard = batch
    assert bb.static == build_static([A])
    assert isinstance(guard, Recompiled), "a new batch size compiled nothing?"
    assert "XLA compilations" in str(guard) and "jit cache growth [1, 1]" in str(guard)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc/self/maps")
def test_release_compiled_unmaps_the_machine_code():
    """A compiled bucket holds thousands of memory mappings on the CPU backend; release_compiled
    must give them back (the suite once aborted at vm.max_map_count), and the compile caches are
    bounded so that an in-process sweep over many shapes cannot grow without limit."""
    from autonuma_jax.simulate import COMPILED_CACHE_SIZE, release_compiled, simulate

    def maps():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)

    release_compiled()
    gc.collect()
    before = maps()
    simulate([mini(policy="autonuma24", duration_s=0.5, seed=3)])
    compiled = maps()
    assert compiled - before > 200, (before, compiled)
    release_compiled()
    gc.collect()
    after = maps()
    assert after < before + (compiled - before) // 4, (before, compiled, after)
    assert compiled_chunk.cache_info().maxsize == COMPILED_CACHE_SIZE
    assert compiled_init.cache_info().maxsize == COMPILED_CACHE_SIZE


# ------------------------------------------------------------------------------------------------
# every summary is defined at the configuration's own end, whatever shares its batch
# ------------------------------------------------------------------------------------------------
def test_summaries_stop_at_the_configurations_own_end():
    """A short run alone and beside a long one (early stop on: the batch runs until the long one is
    done): every row and every summary value of the short one are identical, including the
    simulated time, the knuma_scand passes and the kernel CPU overhead that kept counting before."""
    from autonuma_jax.simulate import simulate
    short = mini(TINY2, "numa01", seed=5, size_mib=64, loops=4, duration_s=6.0, report_ms=100.0, knobs=K)
    long_ = mini(TINY2, "numa01", seed=6, size_mib=64, loops=30, duration_s=6.0, report_ms=100.0, knobs=K)
    alone = simulate([short], reports_per_chunk=5)[0]
    both = simulate([long_, short], reports_per_chunk=5)
    with_long = both[1]
    assert alone.summary()["finished"] and both[0].summary()["sim_s"] > alone.summary()["sim_s"] + 0.5
    assert_same_result(alone, with_long, "short alone vs beside a long run")
    a, b = alone.summary(), with_long.summary()
    assert a.keys() == b.keys()
    bad = [k for k in a if not (a[k] == b[k] or (isinstance(a[k], float) and np.isnan(a[k]) and np.isnan(b[k])))]
    assert not bad, bad
    # its rows end at its own end: the last row reached it, no row repeats the frozen state
    assert len(alone.rows["tick"]) == len(set(alone.rows["tick"].tolist()))
    assert a["sim_s"] <= a["runtime_s"] + 0.1 + 2e-3


def test_compact_access_path_equals_the_whole_array_path():
    """mm/memory.access on the interesting entries only (the batched driver's usual path) changes
    the state exactly as the whole-array path, tick after tick of a run with first touches, hinting
    faults and queueing; the ticks it is tried on must include such events."""
    from autonuma_jax.mm import memory
    b = Bucket.build([A])
    b.init()
    st = b.static
    f = tick._phase_fns(st)
    s0 = jax.tree_util.tree_map(lambda x: x[0], b.state)
    p0 = jax.tree_util.tree_map(lambda x: x[0], b.params)

    def body(s, _):
        s1, draws = f["_draws"](s, p0)
        s2, stm = f["_stream"](s1, p0, draws)
        n = jnp.sum(memory.interesting(s2.pages, st, stm).astype(jnp.int32))
        on = tick.POLICY_AUTONUMA24 == p0.policy
        absent = jnp.sum(memory.absent_touched(s2.pages, st, stm).astype(jnp.int32))
        full = memory.access(s2, p0, st, stm, on)
        small = memory.access(s2, p0, st, stm, on, capacity=st.access_compact)
        faults_only = memory.access(s2, p0, st, stm, on, capacity=st.access_compact, first_touch=False)

        def equal(a, b):
            return jnp.all(jnp.stack([jnp.array_equal(x, y) for x, y in
                                      zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))]))
        return tick.step(s, p0, st), (n, absent, equal(full, small), equal(full, faults_only),
                                      full[2]["hinting_faults"], full[2]["alloc_ns"].sum())

    _, out = jax.jit(lambda s: jax.lax.scan(body, s, None, length=600))(s0)
    n, absent, same, same_faults, faults, alloc = map(np.asarray, out)
    fits = (n > 0) & (n <= st.access_compact)
    assert fits.sum() > 20 and faults[fits].sum() > 0, "the run must exercise the compact path"
    assert alloc[fits].sum() > 0, "the run must exercise first touch on the compact path"
    assert same[fits].all(), f"compact path differs at ticks {np.nonzero(fits & ~same)[0][:10]}"
    steady = fits & (absent == 0)
    assert steady.sum() > 20 and faults[steady].sum() > 0, "the run must exercise the fault-only path"
    assert same_faults[steady].all(), f"fault-only path differs at ticks {np.nonzero(steady & ~same_faults)[0][:10]}"
