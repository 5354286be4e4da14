"""Typed checks of user-facing values, whatever the entry point (Python API, CLI, sweeps).

Every check raises one ``ConfigError`` line naming the field, the value and what it must be,
before anything is built or compiled. Booleans are never numbers, NaN and infinities are never
numbers in a range, and a number that must be an integer must be one (2.0 is accepted as 2; 2.5
and "2" are not).
"""
from __future__ import annotations

import math
from numbers import Integral, Real

from .errors import ConfigError


def _fail(field: str, value, allowed: str):
    raise ConfigError(f"{field}={value!r}: must be {allowed}")


def is_int(v) -> bool:
    """An integer value: an int (not a bool), or a float/NumPy number with an integral value."""
    if isinstance(v, bool) or getattr(v, "dtype", None) is not None and v.dtype == bool:
        return False
    if isinstance(v, Integral):
        return True
    return isinstance(v, Real) and math.isfinite(float(v)) and float(v).is_integer()


def integer(field: str, v, lo=None, hi=None) -> int:
    rng = _range(lo, hi)
    if not is_int(v):
        _fail(field, v, "an integer" + rng)
    iv = int(v)
    if (lo is not None and iv < lo) or (hi is not None and iv > hi):
        _fail(field, v, "an integer" + rng)
    return iv


def number(field: str, v, lo=None, hi=None, lo_open=False) -> float:
    """A finite real number (not a bool) in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    rng = _range(lo, hi, lo_open)
    if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(float(v)):
        _fail(field, v, "a finite number" + rng)
    x = float(v)
    if lo is not None and (x < lo or (lo_open and x == lo)) or hi is not None and x > hi:
        _fail(field, v, "a number" + rng)
    return x


def flag(field: str, v) -> bool:
    """A boolean: True / False (or 0 / 1). Strings such as "no" are refused, not taken as true."""
    if isinstance(v, bool):
        return v
    if is_int(v) and int(v) in (0, 1):
        return bool(int(v))
    _fail(field, v, "true or false")


def choice(field: str, v, options) -> str:
    if not isinstance(v, str) or v not in options:
        _fail(field, v, f"one of {sorted(options)}")
    return v


def int_matrix(field: str, v, n: int) -> tuple:
    """An n x n matrix of integers (tuples or lists)."""
    rows = _matrix(field, v, n)
    for row in rows:
        for x in row:
            if not is_int(x):
                _fail(field, _plain(v), f"a {n}x{n} matrix of integers (SLIT distances are integers)")
    return tuple(tuple(int(x) for x in row) for row in rows)


def num_matrix(field: str, v, n: int) -> tuple:
    rows = _matrix(field, v, n)
    for row in rows:
        for x in row:
            if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(float(x)):
                _fail(field, _plain(v), f"a {n}x{n} matrix of finite numbers")
    return tuple(tuple(float(x) for x in row) for row in rows)


def _matrix(field, v, n):
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
        _fail(field, _plain(v), f"a {n}x{n} matrix")
    rows = list(v)
    if len(rows) != n or any(isinstance(r, (str, bytes)) or not hasattr(r, "__len__") or len(r) != n for r in rows):
        _fail(field, _plain(v), f"a {n}x{n} matrix (n_nodes = {n})")
    return rows


def _plain(v):
    try:
        import numpy as np
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:  # pragma: no cover
        pass
    return v


def _range(lo, hi, lo_open=False) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" {'>' if lo_open else '>='} {lo}"
    if lo is None:
        return f" <= {hi}"
    return f" in {'(' if lo_open else '['}{lo}, {hi}]"
