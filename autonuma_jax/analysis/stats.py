"""Statistics over seeds: confidence intervals of a mean and of a difference of means.

numpy only (``validate`` runs on a bare GPU box). Student's t throughout: a handful of seeds is
the normal case, where the normal approximation would understate the uncertainty by 2-4x.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def t_two_sided_prob(t: float, df: float) -> float:
    """P(|T| <= t) for Student's t with ``df`` >= 1 degrees of freedom.

    Integer ``df``: closed form (Abramowitz & Stegun 26.7.3-4, a finite series in cos(theta),
    theta = atan(t / sqrt(df))). Fractional ``df`` (Welch's): the density integrated numerically.
    """
    if t <= 0:
        return 0.0
    if math.isinf(t):
        return 1.0
    if df != int(df):
        # fractional df: integrate the density (Simpson's rule, 4001 points: error < 1e-9)
        x = np.linspace(0.0, t, 4001)
        logc = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        f = np.exp(logc - (df + 1) / 2 * np.log1p(x * x / df))
        h = t / 4000
        return min(1.0, 2 * h / 3 * float(f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()))
    df = int(df)
    th = math.atan(t / math.sqrt(df))
    s, c = math.sin(th), math.cos(th)
    c2 = c * c
    if df % 2 == 1:
        total, term = 0.0, c  # cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ... up to cos^(df-2)
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        return min(1.0, 2 / math.pi * (th + s * total))  # df == 1: total == 0
    total, term = 0.0, 1.0  # 1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ... up to cos^(df-2)
    for k in range(1, df // 2 + 1):
        total += term
        term *= c2 * (2 * k - 1) / (2 * k)
    return min(1.0, s * total)


def t_quantile(level: float, df: float) -> float:
    """The two-sided critical value t with P(|T| <= t) = ``level`` (e.g. 0.95), by bisection."""
    if not (0 < level < 1) or not df >= 1:
        raise ValueError(f"t_quantile: level={level} must be in (0, 1) and df={df} >= 1")
    if df > 1000:  # the series above grows with df; the normal limit is exact enough here
        df = 1000
    lo, hi = 0.0, 1.0
    while t_two_sided_prob(hi, df) < level:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_two_sided_prob(mid, df) < level:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def finite(values: Iterable) -> np.ndarray:
    """The values as float64, None and NaN dropped."""
    out = []
    for v in values:
        if v is None:
            continue
        f = float(v)
        if not math.isnan(f):
            out.append(f)
    return np.asarray(out, dtype=np.float64)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the ``level`` confidence interval of the mean, n).

    Student's t with n - 1 degrees of freedom: t * sd / sqrt(n), sd with ddof = 1. NaN values are
    ignored. n == 0: (NaN, NaN, 0); n == 1: (value, NaN, 1), as no spread can be estimated.
    """
    x = finite(values)
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n == 1:
        return mean, float("nan"), 1
    sd = float(x.std(ddof=1))
    return mean, t_quantile(level, n - 1) * sd / math.sqrt(n), n


def nanmean(values) -> float:
    x = finite(values)
    return float(x.mean()) if len(x) else float("nan")


def nansd(values) -> float:
    """Sample standard deviation (ddof = 1); NaN with fewer than two values."""
    x = finite(values)
    return float(x.std(ddof=1)) if len(x) > 1 else float("nan")


def diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """mean(b) - mean(a) with Welch's confidence interval (unequal variances).

    Returns ``diff``, ``half`` (half-width), ``df``, ``n_a``, ``n_b``, ``mean_a``, ``mean_b`` and
    ``rel`` / ``rel_half``: the same as fractions of mean(a). The relative interval divides by
    mean(a) as if it were exact (its own uncertainty is second order for the spreads seen here).
    When both sides have no spread (a deterministic metric, e.g. zero migrations) the difference
    is exact: half = 0. With fewer than two values on a side, half is NaN.
    """
    x, y = finite(a), finite(b)
    out = {"n_a": len(x), "n_b": len(y), "mean_a": float("nan"), "mean_b": float("nan"), "diff": float("nan"),
           "half": float("nan"), "df": float("nan"), "rel": float("nan"), "rel_half": float("nan")}
    if len(x) == 0 or len(y) == 0:
        return out
    ma, mb = float(x.mean()), float(y.mean())
    va = float(x.var(ddof=1)) if len(x) > 1 else float("nan")
    vb = float(y.var(ddof=1)) if len(y) > 1 else float("nan")
    out.update(mean_a=ma, mean_b=mb, diff=mb - ma)
    if len(x) < 2 or len(y) < 2:
        pass  # no spread can be estimated on a side: the interval is unknown
    elif va == 0 and vb == 0:
        out.update(half=0.0, df=float("inf"))  # a deterministic metric: the difference is exact
    else:
        sa, sb = va / len(x), vb / len(y)
        df = (sa + sb) ** 2 / (sa ** 2 / (len(x) - 1) + sb ** 2 / (len(y) - 1))
        out.update(half=t_quantile(level, max(1.0, df)) * math.sqrt(sa + sb), df=df)
    if ma != 0:
        out.update(rel=out["diff"] / abs(ma), rel_half=out["half"] / abs(ma))
    return out


def significant(d: dict) -> bool:
    """Whether a ``diff_ci`` interval excludes zero."""
    h = d["half"]
    return not math.isnan(h) and not math.isnan(d["diff"]) and abs(d["diff"]) > h


def paired_diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """mean(b - a) over pairs (the same seeds on both sides: common random numbers) with Student's t
    interval on the n - 1 degrees of freedom of the differences. Same keys as ``diff_ci``; pairs
    with a NaN on either side are dropped. No spread in the differences: the difference is exact
    (half = 0); fewer than two pairs: half is NaN."""
    pairs = [(float(x), float(y)) for x, y in zip(a, b)
             if x is not None and y is not None and not math.isnan(float(x)) and not math.isnan(float(y))]
    x = np.asarray([p[0] for p in pairs], np.float64)
    y = np.asarray([p[1] for p in pairs], np.float64)
    out = {"n_a": len(x), "n_b": len(y), "mean_a": float("nan"), "mean_b": float("nan"), "diff": float("nan"),
           "half": float("nan"), "df": float("nan"), "rel": float("nan"), "rel_half": float("nan")}
    if len(x) == 0:
        return out
    d = y - x
    ma = float(x.mean())
    out.update(mean_a=ma, mean_b=float(y.mean()), diff=float(d.mean()))
    if len(d) >= 2:
        sd = float(d.std(ddof=1))
        out.update(half=0.0 if sd == 0 else t_quantile(level, len(d) - 1) * sd / math.sqrt(len(d)),
                   df=float(len(d) - 1) if sd else float("inf"))
    if ma != 0:
        out.update(rel=out["diff"] / abs(ma), rel_half=out["half"] / abs(ma))
    return out
