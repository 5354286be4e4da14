"""Per-tick random draws. One key per configuration, ``fold_in(key, tick)`` for each tick, so a
configuration's draws do not depend on its batch, on chunking or on resume (modelling notes).

A thread's speed is an AR(1) process around its nominal speed (per mille, clamped to
[600, 1400]): its stationary spread is ``sched.speed_jitter_permille`` and its correlation time
``sched.speed_correlation_ms``. Persistent speed differences make threads that stream the same
memory drift apart, so which of them first touches an armed unit is decided by noise, never by
thread order (spec §10.1). The NumPy reference calls these same functions, so both engines
consume identical draws.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .pytree import pytree_dataclass

SPEED_MIN, SPEED_MAX = 600, 1400
INIT_STREAM = 0x7FFFFFFF  # fold_in index of the boot-time draws


@pytree_dataclass
class Draws:
    speed_pm: jnp.ndarray  # [T] i32 speed of each thread this tick, per mille of nominal
    phase_ns: jnp.ndarray  # [T] i32 offset of each thread's accesses inside the tick
    noise: jnp.ndarray  # [3] i32 in [0, 2^24): event?, which task, which CPU


def _key(seed, i):
    return jax.random.fold_in(jax.random.wrap_key_data(seed), i)


def initial_speed(seed, n_tasks: int, jitter_permille):
    z = jax.random.normal(_key(seed, INIT_STREAM), (n_tasks,), jnp.float32)
    v = jnp.round(z * jitter_permille.astype(jnp.float32)).astype(jnp.int32)
    return jnp.clip(1000 + v, SPEED_MIN, SPEED_MAX)


def tick_draws(seed, tick, speed_prev, speed_a, speed_b, phase_jitter_ns) -> Draws:
    k1, k2, k3 = jax.random.split(_key(seed, tick), 3)
    n = speed_prev.shape[0]
    z = jax.random.normal(k1, (n,), jnp.float32)
    keep = jnp.round((speed_prev - 1000).astype(jnp.float32) * speed_a).astype(jnp.int32)
    kick = jnp.round(z * speed_b).astype(jnp.int32)
    speed = jnp.clip(1000 + keep + kick, SPEED_MIN, SPEED_MAX)
    phase = jax.random.randint(k2, (n,), 0, jnp.maximum(phase_jitter_ns, 1), jnp.int32)
    noise = jax.random.randint(k3, (3,), 0, 1 << 24, jnp.int32)
    return Draws(speed_pm=speed, phase_ns=phase, noise=noise)
