"""Integer helpers of the engine (ops.py) against Python's own integer arithmetic."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from autonuma_jax.ops import udiv, udivmod, urem


@pytest.mark.parametrize("dmax", [2, 7, 300, 70_000, 2**31 - 1])
def test_udivmod_is_exact_over_the_int32_range(dmax):
    rng = np.random.default_rng(dmax)
    x = np.concatenate([rng.integers(0, 2**31 - 1, 50_000), rng.integers(0, 1 << 20, 50_000),
                        (2**31 - 1) - rng.integers(0, 1000, 20_000), np.arange(0, 2000)])
    d = np.concatenate([rng.integers(1, dmax, x.size - 2000), np.full(2000, max(1, dmax // 3))])
    d[::7] = np.maximum(1, np.exp(rng.uniform(0, np.log(dmax), d[::7].size))).astype(np.int64)
    q, r = jax.jit(udivmod)(jnp.asarray(x, jnp.int32), jnp.asarray(d, jnp.int32))
    np.testing.assert_array_equal(np.asarray(q), x // d)
    np.testing.assert_array_equal(np.asarray(r), x % d)


def test_udiv_urem_match_floor_division_for_non_negative_operands():
    x = jnp.asarray([0, 1, 5, 99, 2**31 - 1], jnp.int32)
    d = jnp.asarray([1, 3, 5, 7, 2**30], jnp.int32)
    np.testing.assert_array_equal(np.asarray(udiv(x, d)), np.asarray(x) // np.asarray(d))
    np.testing.assert_array_equal(np.asarray(urem(x, d)), np.asarray(x) % np.asarray(d))
