"""Per-tick random draws. One key per configuration, ``fold_in(key, tick)`` for each tick, so a
configuration's draws do not depend on its batch, on chunking or on resume (modelling notes).

A thread's speed is an AR(1) process around its nominal speed: ``x' = a * x + b * z`` for the
deviation x from nominal, with stationary spread ``sched.speed_jitter_permille`` and correlation
time ``sched.speed_correlation_ms`` (a = exp(-tick / correlation), b = spread * sqrt(1 - a^2)),
clamped to [600, 1400] per mille. The state keeps the speed in Q12 per mille (``SPEED_FRAC_BITS``
fractional bits): with a = 0.9995 (1 ms ticks, 2 s correlation) a deviation must shrink by at least
half a unit per tick to revert, and in plain per mille that only happens beyond 1000 per mille, so
rounding froze the pull towards the mean and the speed random-walked over the whole clamp. In Q12
the pull is lost only within 0.25 per mille of nominal. Threads use the speed rounded to per mille.

Persistent speed differences make threads that stream the same memory drift apart, so which of
them first touches an armed unit is decided by noise, never by thread order (spec §10.1). The
NumPy reference calls these same functions, so both engines consume identical draws.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .pytree import pytree_dataclass


# ------------------------------------------------------------------------------------------------
# Threefry-2x32 (Salmon et al., SC'11: 20 rounds, key injection every 4), written out straight.
# jax lowers its threefry primitive on the CPU as a rolled 5-iteration loop (to keep compiles
# short); inside the tick that loop ran three times, each iteration a dozen separate kernels plus
# the copies of its loop state: a third of the kernels of a tick (BENCHMARKS.md, "Where the time
# goes"). Written out, the hash is one fused elementwise kernel. The bits are the same either way
# (tests/test_rng.py checks known values), so only the speed changes; other platforms keep jax's
# own lowering (already unrolled there).
# ------------------------------------------------------------------------------------------------
_ROT = ((13, 15, 26, 6), (17, 29, 16, 24))


def _threefry2x32_unrolled(k1, k2, x1, x2):
    u = np.uint32
    ks = (k1, k2, k1 ^ k2 ^ u(0x1BD11BDA))
    x = [x1 + ks[0], x2 + ks[1]]
    for i in range(5):
        for r in _ROT[i % 2]:
            x[0] = x[0] + x[1]
            x[1] = (x[1] << u(r)) | (x[1] >> u(32 - r))
            x[1] = x[0] ^ x[1]
        x = [x[0] + ks[(i + 1) % 3], x[1] + ks[(i + 2) % 3] + u(i + 1)]
    return tuple(x)


def _register_unrolled_threefry():
    try:
        from jax.extend.random import threefry2x32_p
        from jax.interpreters import mlir
    except ImportError:  # another jax: its own lowering stays (same bits, slower on the CPU)
        return False
    mlir.register_lowering(threefry2x32_p, mlir.lower_fun(_threefry2x32_unrolled, multiple_results=True),
                           platform="cpu")
    return True


UNROLLED_THREEFRY = _register_unrolled_threefry()

SPEED_MIN, SPEED_MAX = 600, 1400
SPEED_FRAC_BITS = 12
SPEED_ONE = 1000 << SPEED_FRAC_BITS  # nominal speed in the state's fixed point
INIT_STREAM = 0x7FFFFFFF  # fold_in index of the boot-time draws (thread speeds)
SCAND_STREAM = 0x7FFFFFFE  # fold_in index of knuma_scand's phase at the benchmark's start


@pytree_dataclass
class Draws:
    speed_q: jnp.ndarray  # [T] i32 speed of each thread this tick, per mille of nominal, Q12 (the state)
    speed_pm: jnp.ndarray  # [T] i32 the same rounded to per mille (what the physics uses)
    phase_ns: jnp.ndarray  # [T] i32 offset of each thread's accesses inside the tick
    noise: jnp.ndarray  # [3] i32 in [0, 2^24): event?, which task, which CPU


def _key(seed, i):
    return jax.random.fold_in(jax.random.wrap_key_data(seed), i)


def _clamp(q):
    return jnp.clip(q, SPEED_MIN << SPEED_FRAC_BITS, SPEED_MAX << SPEED_FRAC_BITS)


def speed_permille(speed_q):
    """Q12 speed -> per mille, rounded to nearest."""
    return jnp.right_shift(speed_q + (1 << (SPEED_FRAC_BITS - 1)), SPEED_FRAC_BITS)


def initial_speed(seed, n_tasks: int, jitter_permille):
    """[T] Q12 boot speeds: the stationary distribution, N(nominal, jitter^2), clamped."""
    z = jax.random.normal(_key(seed, INIT_STREAM), (n_tasks,), jnp.float32)
    v = jnp.round(z * (jitter_permille.astype(jnp.float32) * (1 << SPEED_FRAC_BITS))).astype(jnp.int32)
    return _clamp(SPEED_ONE + v)


def initial_scand_wake(seed, pass_ticks):
    """Tick of knuma_scand's first wake, uniform in [0, pass_ticks): the daemon has run since boot,
    so where it is in its cycle when the benchmark starts is random (a pass pause of
    scan_sleep_pass_millisecs, then a new pass over the mm list)."""
    return jax.random.randint(_key(seed, SCAND_STREAM), (), 0, jnp.maximum(pass_ticks, 1), jnp.int32)


def tick_draws(seed, tick, speed_prev, speed_a, speed_b, phase_jitter_ns) -> Draws:
    """``speed_prev``: [T] Q12 speeds of the previous tick."""
    k1, k2, k3 = jax.random.split(_key(seed, tick), 3)
    n = speed_prev.shape[0]
    z = jax.random.normal(k1, (n,), jnp.float32)
    keep = jnp.round((speed_prev - SPEED_ONE).astype(jnp.float32) * speed_a).astype(jnp.int32)
    kick = jnp.round(z * (speed_b * (1 << SPEED_FRAC_BITS))).astype(jnp.int32)
    speed = _clamp(SPEED_ONE + keep + kick)
    phase = jax.random.randint(k2, (n,), 0, jnp.maximum(phase_jitter_ns, 1), jnp.int32)
    noise = jax.random.randint(k3, (3,), 0, 1 << 24, jnp.int32)
    return Draws(speed_q=speed, speed_pm=speed_permille(speed), phase_ns=phase, noise=noise)
