"""Property-based fuzzing of configurations (hypothesis): every invalid configuration is refused with
one line naming the field; every valid one runs a few ticks with the invariants checked inside the
compiled code. Shapes are fixed per machine so that thousands of examples share two compiles."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from autonuma_jax import ConfigError, Knobs, with_overrides
from autonuma_jax import invariants
from autonuma_jax import params as P
from autonuma_jax.config import build_static, validate_run
from autonuma_jax.knobs import ORDERED, RANGES, flatten
from autonuma_jax.simulate import chunk_args, compiled_chunk, compiled_init

from conftest import FAST, TINY2, TINY4, mini

# knobs that size arrays: fuzzed inside the capacity the fixed Static was built for
CAPPED = {"autonuma.knuma_scand.pages_to_scan": 65536, "autonuma.knuma_migrated.pages_to_migrate": 65536}
TICKS = 40


def valid_value(path):
    lo, hi, kind = RANGES[path]
    hi = min(hi, CAPPED.get(path, hi))
    if kind == "flag":
        return st.integers(0, 1)
    if kind == "float":
        return st.floats(lo, min(hi, 1000.0), allow_nan=False)
    # bias towards small, realistic values but reach the ends of the range
    return st.one_of(st.integers(lo, min(hi, lo + 100)), st.integers(lo, hi), st.sampled_from([lo, hi]))


def invalid_value(path):
    lo, hi, kind = RANGES[path]
    bad = [st.integers(hi + 1, hi + 10**6), st.sampled_from(["1", None, 1.5 if kind != "float" else "x"])]
    if lo > -10**9:
        bad.append(st.integers(lo - 10**6, lo - 1))
    if kind == "float":
        bad.append(st.just(float("nan")))
    if kind == "flag":
        bad.append(st.just(True))
    return st.one_of(*bad)


PATHS = sorted(RANGES)


@st.composite
def knob_overrides(draw, allow_invalid):
    chosen = draw(st.lists(st.sampled_from(PATHS), min_size=0, max_size=8, unique=True))
    bad = draw(st.sampled_from(chosen)) if (allow_invalid and chosen and draw(st.booleans())) else None
    out = {}
    for p in chosen:
        out[p] = draw(invalid_value(p) if p == bad else valid_value(p))
    return out, bad


@st.composite
def machines(draw, base):
    n = base.n_nodes
    d = [[10 if i == j else draw(st.integers(11, 40)) for j in range(n)] for i in range(n)]
    lat = draw(st.floats(50.0, 200.0))
    off = [v for i, r in enumerate(d) for j, v in enumerate(r) if i != j]
    # the latency one SLIT step away, chosen so that the farthest distance stays <= 4000 ns
    top = lat + (4000.0 - lat) * (min(off) - 10) / (max(off) - 10)
    return dataclasses.replace(
        base, distance=tuple(tuple(r) for r in d), node_bw_gbs=draw(st.floats(2.0, 40.0)),
        link_bw_gbs=draw(st.floats(1.0, 20.0)), lat_local_ns=lat,
        lat_remote_ns=draw(st.floats(lat, max(lat, min(400.0, top)))),
        core_mlp=draw(st.floats(1.0, 16.0)), socket_mlp=draw(st.floats(1.0, 64.0)),
        bzero_traffic=draw(st.floats(1.0, 2.0)), mem_per_node_mib=draw(st.sampled_from([512, 1024, 2048])))


BAD_MACHINE = {
    "distance": lambda m: dataclasses.replace(m, distance=tuple(
        tuple(12 if (i == j == 0) else v for j, v in enumerate(r)) for i, r in enumerate(m.distance))),
    "node_bw_gbs": lambda m: dataclasses.replace(m, node_bw_gbs=-1.0),
    "core_mlp": lambda m: dataclasses.replace(m, core_mlp=0.0),
    "bzero_traffic": lambda m: dataclasses.replace(m, bzero_traffic=3.0),
    "mem_per_node_mib": lambda m: dataclasses.replace(m, mem_per_node_mib=1023),
}


@functools.lru_cache(maxsize=None)
def runner(base_name):
    """A fixed Static (room for the largest fuzzed capacities) and its compiled functions."""
    base = {"tiny2": TINY2, "tiny4": TINY4}[base_name]
    # the fastest machine the fuzzing draws (16 miss slots, 50 ns): the largest per-tick capacity
    cfg = mini(dataclasses.replace(base, core_mlp=16.0, lat_local_ns=50.0, lat_remote_ns=50.0), "numa01", size_mib=64, loops=4, duration_s=TICKS / 1000,
               report_ms=TICKS, check_invariants=True, knobs=CAPPED)
    static = build_static([cfg])
    return static


def run_few_ticks(cfg):
    static = runner(cfg.resolved_machine().name)
    p = P.stack([P.build_params(cfg, static)])
    p = jax.tree_util.tree_map(jnp.asarray, p)
    s = compiled_init(static)(p)
    s, rows = compiled_chunk(static, 1)(s, p, *chunk_args(static, 1))
    ok = np.asarray(rows.invariants_ok)[0, 0]
    return invariants.violations(ok), s


def check_example(base, machine, knobs, bad_knob, bad_machine):
    if bad_machine:
        machine = BAD_MACHINE[bad_machine](machine)
    try:
        with_overrides(Knobs(), {**FAST, **knobs})  # every generated knob path is a known one
    except ConfigError as e:  # unreachable: every path is known
        raise AssertionError(e)
    cfg = mini(machine, "numa01", size_mib=64, loops=4, duration_s=TICKS / 1000, report_ms=TICKS,
               check_invariants=True, knobs=knobs)
    if (bad_knob is None and knobs.get("autonuma.knuma_scand.pmd", 1) == 0
            and knobs.get("transparent_hugepage.enabled", 1) == 0):
        bad_knob = "autonuma.knuma_scand.pmd"  # pte-mode scanning needs 4 KiB units without THP
    if bad_knob is None and bad_machine is None:  # an ordered pair drawn (or left at its default) the
        eff = {**flatten(Knobs()), **knobs}        # wrong way round; a bad machine is reported first
        bad_knob = next((lo for lo, hi in ORDERED if eff[lo] > eff[hi]), None)
    invalid = bad_knob is not None or bad_machine is not None
    try:
        validate_run(cfg)
    except ConfigError as e:
        msg = str(e)
        assert invalid, f"a valid configuration was refused: {msg}"
        assert "\n" not in msg and ": must be" in msg
        field = bad_knob if bad_knob is not None else f"machine.{bad_machine}"
        assert field in msg or (bad_knob is None and "machine." in msg), (field, msg)
        return "refused"
    assert not invalid, f"invalid {bad_knob or bad_machine} accepted"
    bad, _ = run_few_ticks(cfg)
    assert not bad, f"invariants violated: {bad} for {knobs} on {machine}"
    return "ran"


def _fuzz(data):
    base = data.draw(st.sampled_from([TINY2, TINY4]))
    machine = data.draw(machines(base))
    knobs, bad = data.draw(knob_overrides(allow_invalid=True))
    bad_machine = None
    if bad is None and data.draw(st.integers(0, 9)) == 0:
        bad_machine = data.draw(st.sampled_from(sorted(BAD_MACHINE)))
    event(check_example(base, machine, knobs, bad, bad_machine))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.data())
def test_fuzz_configurations_quick(data):
    _fuzz(data)


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.data())
def test_fuzz_configurations_500(data):
    _fuzz(data)
