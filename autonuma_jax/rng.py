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

from .pytree import pytree_dataclass

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
