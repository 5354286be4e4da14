"""The per-tick draws (rng.py): the thread-speed AR(1) process and knuma_scand's boot phase."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from autonuma_jax.rng import SPEED_FRAC_BITS, SPEED_ONE, initial_scand_wake, initial_speed, tick_draws

T = 2000  # threads: an ensemble, so that a few thousand ticks give tight statistics


def _ar(jitter=100, corr_ms=2000, tick_ms=1.0):
    a = math.exp(-tick_ms / corr_ms)
    return np.float32(a), np.float32(jitter * math.sqrt(1 - a * a))


def _key(seed):
    return jnp.asarray(jax.random.key_data(jax.random.PRNGKey(seed)), jnp.uint32)


@jax.jit
def _run(seed, speed0, a, b, ticks_from):
    def body(s, t):
        d = tick_draws(seed, t, s, a, b, jnp.int32(1))
        return d.speed_q, d.speed_pm
    return jax.lax.scan(body, speed0, ticks_from + jnp.arange(6000, dtype=jnp.int32))


def test_speed_spread_is_the_stationary_one():
    a, b = _ar()
    s0 = initial_speed(_key(0), T, jnp.int32(100))
    _, pm = _run(_key(0), s0, a, b, jnp.int32(0))
    pm = np.asarray(pm, np.float64)
    assert abs(pm.mean() - 1000) < 5
    assert abs(pm[-1].std() - 100) < 8  # the knob's stationary spread (per mille), at the end and ...
    assert abs(pm[::500].std() - 100) < 8  # ... over the whole run (it neither collapses nor wanders off)


def test_speed_long_averages_concentrate():
    """60-s per-thread averages scatter as an AR(1) sample mean does (the defect: rounding to whole
    per mille froze the pull to nominal, so they ranged 734-1256 over 24 threads)."""
    a, b = _ar()
    n, threads = 60000, 256

    @jax.jit
    def run(seed, s0):
        def body(s, t):
            d = tick_draws(seed, t, s, a, b, jnp.int32(1))
            return d.speed_q, d.speed_pm
        _, pm = jax.lax.scan(body, s0, jnp.arange(n, dtype=jnp.int32))
        return pm.astype(jnp.float32).mean(axis=0)

    means = np.asarray(run(_key(4), initial_speed(_key(4), threads, jnp.int32(100))), np.float64)
    r = float(a)
    var = 100.0 ** 2 / n * ((1 + r) / (1 - r) - 2 * r * (1 - r ** n) / (n * (1 - r) ** 2))
    assert abs(means.std() / math.sqrt(var) - 1) < 0.2
    assert means.min() > 900 and means.max() < 1100


def test_speed_reverts_to_its_mean():
    """Started at 1300 per mille, the mean deviation decays as exp(-t / correlation)."""
    a, b = _ar()
    s0 = jnp.full(T, 1300 << SPEED_FRAC_BITS, jnp.int32)
    _, pm = _run(_key(1), s0, a, b, jnp.int32(0))
    dev = np.asarray(pm, np.float64).mean(axis=1) - 1000
    for t in (1000, 2000, 4000):
        want = 300 * math.exp(-t / 2000)
        assert abs(dev[t - 1] - want) < 0.1 * 300, (t, dev[t - 1], want)


def test_speed_autocorrelation_time():
    a, b = _ar()
    s0 = initial_speed(_key(2), T, jnp.int32(100))
    _, pm = _run(_key(2), s0, a, b, jnp.int32(0))
    x = np.asarray(pm, np.float64) - 1000
    lag = 2000
    c = (x[:-lag] * x[lag:]).mean() / (x * x).mean()
    assert abs(c - math.exp(-1)) < 0.08


def test_speed_state_is_q12():
    s0 = np.asarray(initial_speed(_key(3), 16, jnp.int32(100)))
    assert s0.dtype == np.int32 and (s0 > 500 * (1 << SPEED_FRAC_BITS)).all()
    assert abs(s0.mean() / SPEED_ONE - 1) < 0.1


def test_scand_boot_phase_is_seeded_and_uniform():
    wakes = np.array([int(initial_scand_wake(_key(s), jnp.int32(10000))) for s in range(400)])
    assert ((wakes >= 0) & (wakes < 10000)).all()
    assert len(set(wakes.tolist())) > 350
    assert abs(wakes.mean() - 5000) < 600  # uniform over the pass cycle
    assert int(initial_scand_wake(_key(7), jnp.int32(10000))) == int(initial_scand_wake(_key(7), jnp.int32(10000)))


def test_unrolled_threefry_gives_jaxs_own_bits():
    """rng.py replaces jax's CPU lowering of threefry (a rolled loop) by the same hash written out;
    the bits must be jax's. Values recorded with jax's own lowering (jax 0.10.2, CPU)."""
    from autonuma_jax import rng
    assert rng.UNROLLED_THREEFRY  # this jax has the public hooks: the faster lowering is active
    bits = jax.jit(lambda k: jax.random.bits(k, (6,)))(jax.random.PRNGKey(42))
    assert np.asarray(bits).tolist() == [2098992034, 2919706841, 2646866425, 2409546199, 1935504149, 2516274904]
    z = jax.jit(lambda k: jax.random.normal(jax.random.fold_in(k, 123), (3,)))(jax.random.PRNGKey(7))
    np.testing.assert_array_equal(np.asarray(z), np.asarray([0.8367496, 1.021099, -0.74730515], np.float32))
    k1, k2, x1, x2 = (jnp.asarray(v, jnp.uint32) for v in ([0x13198A2E], [0x03707344], [0x243F6A88], [0x85A308D3]))
    out = rng._threefry2x32_unrolled(k1, k2, x1, x2)  # Random123's known-answer test (20 rounds)
    assert [int(o[0]) for o in out] == [0xC4923A9C, 0x483DF7A0]
