"""The search space of a tuning job: which knobs move, over what range, on what scale.

A dimension is one knob path (``knobs.RANGES``: ``autonuma.knuma_scand.pages_to_scan``). Its range
defaults to the knob's allowed range and its scale to logarithmic for sizes and intervals (a knob
whose name says milliseconds, pages or megabytes: doubling ``pages_to_scan`` is the same step at 4096
as at 262144), linear otherwise; integer knobs are rounded, 0/1 flags drawn as such. A log range
cannot include 0: its low end is raised to 1 (a 0 ms sleep is then reachable only from a linear
range, which the user states).

Candidates are a scrambled Latin hypercube (every dimension cut into n equal strata on its own
scale, one candidate per stratum, strata shuffled independently per dimension), drawn from the
job's seed: the same job draws the same candidates. Candidate 0 is always the kernel defaults
(``Knobs()`` plus the job's fixed overrides), so the search measures the reference too.

Knob pairs the kernel orders (``knobs.ORDERED``: a ``*_min_*`` <= its ``*_max_*``) are kept valid
by sorting the two drawn values when both are searched, and by clipping the searched one to the
fixed other otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..knobs import ORDERED, RANGES, Knobs, flatten, policy_reads, with_overrides

# Name fragments of the knobs searched on a log scale by default: intervals and sizes.
LOG_HINTS = ("_ms", "millisecs", "pages", "_mb", "_ns", "interval")


@dataclass(frozen=True)
class Dimension:
    """One searched knob: ``path`` in ``knobs.RANGES``, range [lo, hi] (inclusive), ``log`` scale,
    ``kind`` ``int`` / ``float`` / ``flag``."""
    path: str
    lo: float
    hi: float
    log: bool
    kind: str

    def decode(self, u: float) -> int | float:
        """The knob value at position ``u`` in [0, 1) of the range (on its own scale)."""
        if self.kind == "flag":
            return int(u >= 0.5) if self.lo != self.hi else int(self.lo)
        if self.log:
            v = math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        else:
            v = self.lo + u * (self.hi - self.lo)
        if self.kind == "int":
            return int(min(self.hi, max(self.lo, round(v))))
        return float(min(self.hi, max(self.lo, v)))


def default_log(path: str) -> bool:
    lo, hi, kind = RANGES[path]
    leaf = path.rsplit(".", 1)[-1]
    return kind != "flag" and any(h in leaf for h in LOG_HINTS)


def dimension(path: str, spec: Mapping[str, Any] | None, policy: str) -> Dimension:
    """Build and check one dimension; ``spec`` may give ``lo``, ``hi``, ``log`` (all optional)."""
    if path not in RANGES:
        close = [k for k in RANGES if k.endswith(path.rsplit(".", 1)[-1])]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"tune.space.{path}: unknown knob{hint}")
    if not policy_reads(policy, path):
        raise ConfigError(f"tune.space.{path}: policy {policy} does not read this knob (searching it would "
                          f"measure noise only)")
    spec = dict(spec or {})
    unknown = set(spec) - {"lo", "hi", "log"}
    if unknown:
        raise ConfigError(f"tune.space.{path}: unknown key(s) {', '.join(sorted(unknown))} (allowed: lo, hi, log)")
    alo, ahi, kind = RANGES[path]
    log = spec.get("log")
    log = default_log(path) if log is None else log
    if not isinstance(log, bool):
        raise ConfigError(f"tune.space.{path}.log={log!r}: must be true or false")
    if log and kind == "flag":
        raise ConfigError(f"tune.space.{path}.log=true: a 0/1 flag has no log scale")
    lo = spec.get("lo", max(alo, 1) if log else alo)
    hi = spec.get("hi", ahi)
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not alo <= v <= ahi:
            raise ConfigError(f"tune.space.{path}.{name}={v!r}: must be a number in the knob's allowed range "
                              f"[{alo}, {ahi}]")
        if kind != "float" and float(v) != int(v):
            raise ConfigError(f"tune.space.{path}.{name}={v!r}: must be an integer in [{alo}, {ahi}]")
    if lo > hi:
        raise ConfigError(f"tune.space.{path}.lo={lo!r}: must be <= tune.space.{path}.hi ({hi!r})")
    if log and lo <= 0:
        raise ConfigError(f"tune.space.{path}.lo={lo!r}: must be > 0 on a log scale (or set log: false)")
    return Dimension(path=path, lo=float(lo), hi=float(hi), log=bool(log), kind=kind)


@dataclass(frozen=True)
class SearchSpace:
    """The searched dimensions and the knobs every candidate starts from (``base``)."""
    dims: tuple[Dimension, ...]
    base: Knobs

    @classmethod
    def build(cls, space: Mapping[str, Any], policy: str, fixed: Mapping[str, Any] | None = None) -> "SearchSpace":
        """``space``: knob path -> None (the allowed range, default scale) or {lo, hi, log};
        ``fixed``: knob overrides every candidate (and the defaults) runs with."""
        if not space:
            raise ConfigError("tune.space: empty: name at least one knob to search (e.g. "
                              "autonuma.knuma_scand.pages_to_scan: {lo: 4096, hi: 262144})")
        dims = tuple(dimension(p, s, policy) for p, s in space.items())
        base = with_overrides(Knobs(), dict(fixed or {}))
        clash = sorted(set(fixed or {}) & set(space))
        if clash:
            raise ConfigError(f"tune.fixed.{clash[0]}: is also searched in tune.space (fix it or search it)")
        return cls(dims=dims, base=base)

    @property
    def paths(self) -> list[str]:
        return [d.path for d in self.dims]

    def defaults(self) -> dict[str, Any]:
        """The base knobs' values of the searched dimensions (the kernel defaults unless fixed)."""
        flat = flatten(self.base)
        return {p: flat[p] for p in self.paths}

    def sample(self, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` candidates (knob path -> value): the defaults first, then n - 1 Latin-hypercube
        draws from ``seed``; duplicates (a narrow integer range) are kept, they are real repeats."""
        if n < 1:
            raise ConfigError(f"tune.candidates={n!r}: must be an integer >= 1")
        out = [self.defaults()]
        m = n - 1
        if m:
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E5E]))
            u = (np.stack([rng.permutation(m) for _ in self.dims], axis=1) + rng.random((m, len(self.dims)))) / m
            for row in u:
                out.append(self.repair({d.path: d.decode(float(x)) for d, x in zip(self.dims, row)}))
        return out

    def repair(self, cand: dict[str, Any]) -> dict[str, Any]:
        """Keep ``knobs.ORDERED`` pairs ordered (module doc)."""
        flat = flatten(self.base)
        for a, b in ORDERED:
            if a in cand and b in cand and cand[a] > cand[b]:
                cand[a], cand[b] = cand[b], cand[a]
            elif a in cand and b not in cand:
                cand[a] = min(cand[a], flat[b])
            elif b in cand and a not in cand:
                cand[b] = max(cand[b], flat[a])
        return cand

    def knobs(self, cand: Mapping[str, Any]) -> Knobs:
        return with_overrides(self.base, dict(cand))


def overrides_text(cand: Mapping[str, Any], prefix: str = "policy.") -> str:
    """A candidate as command-line overrides (``policy.autonuma.knuma_scand.pages_to_scan=65536 ...``)."""
    return " ".join(f"{prefix}{k}={v}" for k, v in cand.items())

