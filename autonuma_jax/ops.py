"""Small integer helpers shared by the engine (and mirrored, line for line, by the NumPy reference).

All state-changing arithmetic is integer; floats appear only in isolated products/quotients that
are floored at once, so XLA and NumPy agree bit for bit.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

i32 = jnp.int32
f32 = jnp.float32
AUTONUMA_BALANCE_SCALE = 1000
PERMILLE_EXACT_BITS = 21  # f * 1000 stays below 2^31 while the total is below 2^21 pages


def bitlen(x):
    """Number of significant bits of a non-negative int32."""
    return (32 - jax.lax.clz(x.astype(i32))).astype(i32)


def permille(f, tot):
    """floor(1000 * f / tot) as the kernel computes it (unsigned long arithmetic).

    Exact while ``tot`` < 2^21 pages (8 GiB of faulting memory); above that both operands are
    shifted right together so int32 does not overflow (an error below 1 per mille).
    """
    tot = jnp.maximum(tot, f)  # "if a per-node value exceeds the total due to a race, raise the total"
    k = jnp.maximum(bitlen(tot) - PERMILLE_EXACT_BITS, 0)
    fs = jnp.right_shift(f, k)
    ts = jnp.right_shift(tot, k)
    return jnp.where(ts > 0, (fs * AUTONUMA_BALANCE_SCALE) // jnp.maximum(ts, 1), 0).astype(i32)


def first_argmax(x, axis=-1):
    """Index of the first maximum (the kernel's strict `>` scan keeps the first)."""
    return jnp.argmax(x, axis=axis).astype(i32)


def udiv(a, b):
    """``a // b`` for a >= 0, b > 0: the truncating division (one operation). ``//`` on integers is
    floor division, which XLA builds from a division, a remainder and sign fix-ups that do not fuse
    into one kernel; for non-negative operands both give the same number."""
    return jax.lax.div(a, b)


def urem(a, b):
    """``a % b`` for a >= 0, b > 0 (one operation; see ``udiv``)."""
    return jax.lax.rem(a, b)


def udivmod(x, d, inv=None):
    """Exact ``(x // d, x % d)`` for int32 0 <= x < 2^31 and 1 <= d < 2^31, from float32 products.

    The CPU has no vector integer division: one ``x // d`` per element is a scalar instruction of
    tens of cycles, and ``physics.locate`` needs three per candidate. Here a quotient estimate from
    the reciprocal (``inv``: 1/d in float32, pass it when d is shared along an axis) is off by at
    most ~384/d + 1; one correction from the remainder, computed exactly in integers (wrapping
    int32 arithmetic is exact for remainders that fit), brings it within one, and a last compare
    makes it exact. Every step is elementwise, so it fuses with its neighbours."""
    if inv is None:
        inv = f32(1.0) / d.astype(f32)
    q = floor_i32(x.astype(f32) * inv)
    q = q + floor_i32((x - q * d).astype(f32) * inv)
    r = x - q * d
    q = jnp.where(r < 0, q - 1, jnp.where(r >= d, q + 1, q))
    return q, x - q * d


def materialize(go, fn, *args):
    """``fn(*args)``, computed once into buffers of its own: inside a while loop that runs once when
    ``go`` (a traced bool, not batched: ``jnp.any(live)`` of the batch), else not at all (zeros).

    XLA:CPU fuses a cheap elementwise producer into every consumer and recomputes it there; for
    long chains (``physics.locate``: three exact divisions per candidate) read by many consumers
    (the stream's costs, the access phase, the tick's accounting) it was computed again in each
    (and the tick's threefry hash in each of the solver's 14 halvings). A loop's results are
    buffers, so the chain runs once. (``optimization_barrier`` would say the
    same, but XLA:CPU removes barriers before fusion.) ``go`` None: plain ``fn(*args)``; likewise on
    other backends, where a loop's predicate is read back by the host on every trip (a GPU has the
    arithmetic to spare for the recomputation, not the round trips). The values are the same either
    way: only where they are computed changes."""
    if go is None or jax.default_backend() != "cpu":
        return fn(*args)
    out = jax.eval_shape(fn, *args)
    zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), out)
    return jax.lax.while_loop(lambda c: c[0], lambda c: (jnp.bool_(False), fn(*args)), (go, zeros))[1]


def floor_i32(x):
    return jnp.floor(x).astype(i32)


def q16_part(ns, q):
    """floor(ns * q / 65536): time of the part q/65536 of a unit that takes ns."""
    return floor_i32(ns.astype(f32) * q.astype(f32) * f32(1.0 / 65536.0))


def bit(mask, n):
    return (jnp.right_shift(mask, n) & 1).astype(bool)


def exclusive_cumsum(x, axis=-1):
    return jnp.cumsum(x, axis=axis) - x


def rank_by_key(key, n_keys: int):
    """[n] how many earlier entries share each entry's key (keys in [0, n_keys]; any value is a key).

    Two exact ways, chosen by shape: a running count per key (a cumulative sum over [n, n_keys + 1],
    which XLA:CPU runs as a blocked reduce-window) when the keys are few, else a comparison with
    every earlier entry ([n, n], one fused reduction) when n is small next to the keys."""
    n = key.shape[0]
    if n <= 8 * (n_keys + 1):
        earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]  # [i, j]: j before i
        return jnp.sum((earlier & (key[None, :] == key[:, None])).astype(i32), axis=1)
    onehot = (key[:, None] == jnp.arange(n_keys + 1, dtype=key.dtype)[None, :]).astype(i32)
    run = jnp.cumsum(onehot, axis=0) - onehot
    return jnp.take_along_axis(run, jnp.clip(key, 0, n_keys)[:, None].astype(i32), axis=1)[:, 0]


def add_us(us, rem_ns, ns):
    """Accumulate ns into (us, rem_ns) without losing sub-microsecond parts."""
    total = rem_ns + ns
    return us + total // 1000, total % 1000


def sort_perm(keys, n: int):
    """Permutation that sorts n items by the lexicographic `keys` [(array, bits), ...], then by index.

    Every key must be a non-negative int32 below 2**bits. When all keys and the index fit in 31
    bits they are packed into one int32 and sorted as one array (a multi-operand sort is several
    times slower on XLA:CPU); otherwise a multi-operand sort is used. The order is the same.
    """
    idx = jnp.arange(n, dtype=i32)
    idx_bits = max(1, (n - 1).bit_length())
    total = sum(b for _, b in keys) + idx_bits
    if total <= 31:
        packed = jnp.zeros(n, i32)
        for k, b in keys:
            packed = jnp.left_shift(packed, b) | k.astype(i32)
        packed = jnp.left_shift(packed, idx_bits) | idx
        return jax.lax.sort(packed) & ((1 << idx_bits) - 1)
    ops = tuple(k.astype(i32) for k, _ in keys) + (idx,)
    return jax.lax.sort(ops, num_keys=len(ops))[-1]


def segment_first_min(a, b, seg, n: int):
    """Within contiguous segments `seg` (sorted), flag the first element with the minimum (a, b)."""
    big = jnp.iinfo(i32).max
    ma = jax.ops.segment_min(a, seg, num_segments=n, indices_are_sorted=True)[seg]
    c1 = a == ma
    mb = jax.ops.segment_min(jnp.where(c1, b, big), seg, num_segments=n, indices_are_sorted=True)[seg]
    c2 = c1 & (b == mb)
    pos = jnp.arange(a.shape[0], dtype=i32)
    first = jax.ops.segment_min(jnp.where(c2, pos, big), seg, num_segments=n, indices_are_sorted=True)[seg]
    return c2 & (first == pos)
