"""Helpers shared by the workload families: binding variants, slices, small ratios."""
from __future__ import annotations

from ..errors import ConfigError

MiB = 1 << 20
GiB = 1 << 30


def bind_masks(node: int, n_nodes: int, variant: str) -> tuple[int, int]:
    """(cpus_allowed, MPOL_BIND mask) of a process or thread placed on ``node`` by a binding variant.

    ``hard_bind``: CPUs and memory on ``node`` (numactl --cpunodebind=N --membind=N).
    ``inverse_bind``: CPUs on ``node``, memory on the node half the machine away,
    ``(node + n_nodes // 2) % n_nodes`` (the same node on a 1-node machine).
    Anything else: unbound (0, 0)."""
    node %= n_nodes
    if variant == "hard_bind":
        return 1 << node, 1 << node
    if variant == "inverse_bind":
        return 1 << node, 1 << ((node + n_nodes // 2) % n_nodes)
    return 0, 0


def slices(size: int, parts: int, start: int = 0) -> list[tuple[int, int]]:
    """``parts`` contiguous (offset, length) slices of [start, start + size); the last takes the rest."""
    step = size // parts
    return [(start + i * step, step if i < parts - 1 else size - i * step) for i in range(parts)]


def ratio(frac: float, limit: int = 32) -> tuple[int, int]:
    """(a, b) with a >= 1, a + b <= limit and b / (a + b) closest to ``frac`` (0 <= frac < 1)."""
    best = None
    for tot in range(1, limit + 1):
        b = min(tot - 1, max(0, round(frac * tot)))
        err = abs(b / tot - frac)
        if best is None or err < best[0] - 1e-12:
            best = (err, tot - b, b)
    return best[1], best[2]


def weighted_ratio(frac: float, len_a: int, len_b: int, limit: int = 64) -> tuple[int, int]:
    """(a, b): passes over region A (``len_a`` bytes) and region B per cycle such that the fraction
    of the *bytes* written to A, a len_a / (a len_a + b len_b), is closest to ``frac`` (0 < frac < 1)."""
    best = None
    for a in range(1, limit + 1):
        for b in range(1, limit + 1):
            err = abs(a * len_a / (a * len_a + b * len_b) - frac)
            if best is None or err < best[0] - 1e-12:
                best = (err, a, b)
    return best[1], best[2]


def check_params(family: str, given: dict, allowed) -> None:
    bad = sorted(set(given) - set(allowed))
    if bad:
        raise ConfigError(f"workload={family!r}: unknown parameter {bad[0]!r} (known: {', '.join(sorted(allowed))})")


def positive_int(family: str, name: str, v, minimum: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ConfigError(f"workload.{name}={v!r}: must be an integer >= {minimum} ({family})")
    return v


def fraction(family: str, name: str, v, lo_open: bool = False, hi_open: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (0 < v if lo_open else 0 <= v) and (
        v < 1 if hi_open else v <= 1)
    if not ok:
        rng = ("(" if lo_open else "[") + "0, 1" + (")" if hi_open else "]")
        raise ConfigError(f"workload.{name}={v!r}: must be a number in {rng} ({family})")
    return float(v)


__all__ = ["MiB", "GiB", "bind_masks", "slices", "ratio", "weighted_ratio", "check_params", "positive_int",
           "fraction"]
