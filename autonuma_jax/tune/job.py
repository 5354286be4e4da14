"""A tuning job: successive halving per cell (machine x workload), then the honest evaluation.

Stages, each one or more vmapped batches (``simulate.Bucket``):

1. **Search**, per cell. Rung 0 runs every candidate (``SearchSpace.sample``: the defaults and
   ``candidates - 1`` Latin-hypercube draws) on ``rungs[0].seeds`` seeds for the first
   ``rungs[0].fraction`` of the run; each later rung keeps the best ``ceil(n / eta)`` by mean
   objective over the rung's seeds and runs them on more seeds and longer. The last rung's
   fraction is 1 (the whole run, where no objective is projected). A shorter look is the prefix of
   the full run (``Bucket.run(max_reports=...)``), and every rung of a cell runs on the shapes of
   rung 0 (``Bucket.build(static=...)``), so a cell compiles once for its whole search. The best
   candidate is the last rung's lowest mean; ties go to the earlier candidate (the defaults first).
2. **Evaluation**, per cell, on ``fresh_seeds`` seeds no rung used: the defaults and the best
   knobs of every cell (with ``transfer``; else the cell's own best only), full length, one batch.
   The cell's own row is the fresh-seed comparison; the others are the transfer table
   (``evaluate.py``). Identical knob sets (cells that chose the same candidate, or a best that is
   the defaults) run once and are recorded under each name.

Seeds: rung seeds are ``seed .. seed + rungs[-1].seeds - 1`` (each rung's are a prefix of the
next's); fresh seeds are ``seed + FRESH_OFFSET + i``. Every configuration's result depends on its
own knobs and seed only (never on its batch), so the job is reproducible and a rerun of the best
knobs with ``autonuma-sim`` gives the very numbers of the evaluation.

Checkpoint and resume: each finished batch's records go into the store (``store.py``) at once, and
a rerun of the job with the same store skips every batch already there; inside a batch, the
engine's own checkpoint (``Bucket.run(checkpoint=...)``) is written when ``should_stop`` turns
true (SIGTERM / SIGUSR1 in the CLI), and resumed from.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..config import POLICIES, RunConfig, SimConfig, build_static, validate_run
from ..errors import ConfigError
from ..knobs import flatten
from ..workloads.from_dict import build_workload
from .objective import OBJECTIVES, measure
from .space import SearchSpace
from .store import Store

FRESH_OFFSET = 1_000_000
MAX_SEED = 2**31 - 1


class Stopped(RuntimeError):
    """``should_stop`` turned true: the batch in flight was checkpointed; rerun to resume."""


@dataclass(frozen=True)
class Rung:
    """One round of successive halving: ``seeds`` seeds, the first ``fraction`` of the run."""
    fraction: float
    seeds: int


DEFAULT_RUNGS = (Rung(0.25, 1), Rung(0.5, 2), Rung(1.0, 3))


@dataclass(frozen=True)
class TuneSpec:
    """Everything a tuning job does (and, hashed, what its store must belong to).

    Attributes:
        machines, workloads: the cells are their product. A machine is a preset name or a
            ``Machine``; a workload a benchmark name or a dict as the CLI's ``workload`` group
            writes it (``{"name": "numa01", "size_mib": 128, "loops": 100}``: ``build_workload``).
        policy: one of ``POLICIES`` with knobs to tune.
        space: the searched knobs (``SearchSpace``) and the fixed ones (its ``base``).
        objective: one of ``objective.OBJECTIVES``; ``overhead_weight`` for ``weighted``.
        candidates: rung 0's candidates, defaults included; ``eta``: the halving factor (>= 2).
        rungs: ``Rung``s, fractions increasing to 1, seeds non-decreasing.
        fresh_seeds: seeds of the evaluation (>= 2 for a confidence interval).
        transfer: evaluate every cell's best on every other cell too.
        seed: the first seed (candidates are drawn from it too).
        sim: the simulation settings of every run (``duration_s``: the full run's length).
        reports_per_chunk: report intervals per compiled call (rung budgets are rounded up to a
            multiple of it, so that every rung reuses the one compiled chunk).
        variant, build: the benchmark variant and build (``RunConfig``'s).
    """
    machines: tuple  # preset names or Machines
    workloads: tuple  # benchmark names or the CLI's workload dicts ({name, size_mib, loops, variant, build, params})
    policy: str
    space: SearchSpace
    objective: str = "runtime"
    overhead_weight: float = 1.0
    candidates: int = 27
    eta: int = 3
    rungs: tuple[Rung, ...] = DEFAULT_RUNGS
    fresh_seeds: int = 5
    transfer: bool = True
    seed: int = 0
    sim: SimConfig = field(default_factory=lambda: SimConfig(duration_s=600.0))
    reports_per_chunk: int = 10
    variant: str = "default"
    build: str = "latest"

    def validate(self) -> "TuneSpec":
        """One-line ``ConfigError`` naming the field and its allowed range, before any compile."""
        from .. import checks as K
        if not self.machines or not self.workloads:
            raise ConfigError("tune.machines / tune.workloads: name at least one of each")
        if self.policy not in POLICIES:
            raise ConfigError(f"tune.policy={self.policy!r}: must be one of {', '.join(POLICIES)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"tune.objective={self.objective!r}: must be one of {', '.join(OBJECTIVES)}")
        w = K.number("tune.overhead_weight", self.overhead_weight, 0, 1e6)
        n = K.integer("tune.candidates", self.candidates, 1, 100_000)
        eta = K.integer("tune.eta", self.eta, 2, 1000)
        fresh = K.integer("tune.fresh_seeds", self.fresh_seeds, 1, 10_000)
        seed = K.integer("seed", self.seed, 0, MAX_SEED - FRESH_OFFSET - fresh)
        rpc = K.integer("tune.reports_per_chunk", self.reports_per_chunk, 1, 10**6)
        if not self.rungs:
            raise ConfigError("tune.rungs: name at least one rung ({fraction: 1.0, seeds: 3})")
        rungs = []
        for i, r in enumerate(self.rungs):
            f = K.number(f"tune.rungs[{i}].fraction", r.fraction, 0, 1, lo_open=True)
            s = K.integer(f"tune.rungs[{i}].seeds", r.seeds, 1, 10_000)
            if rungs and (f < rungs[-1].fraction or s < rungs[-1].seeds):
                raise ConfigError(f"tune.rungs[{i}]: fraction ({f}) and seeds ({s}) must not decrease from "
                                  f"rung {i - 1}'s ({rungs[-1].fraction}, {rungs[-1].seeds})")
            rungs.append(Rung(f, s))
        if rungs[-1].fraction != 1.0:
            raise ConfigError(f"tune.rungs[{len(rungs) - 1}].fraction={rungs[-1].fraction}: the last rung must "
                              f"run the whole run (1.0), where nothing is projected")
        sim = self.sim.validate()
        spec = replace(self, overhead_weight=w, candidates=n, eta=eta, fresh_seeds=fresh, seed=seed,
                       reports_per_chunk=rpc, rungs=tuple(rungs), sim=sim,
                       machines=tuple(self.machines), workloads=tuple(self.workloads))
        names = [cell_name(m, wl) for m, wl in spec.cells]
        if len(set(names)) != len(names):
            raise ConfigError(f"tune.machines / tune.workloads: a cell is listed twice ({names})")
        for m in spec.machines:  # every cell's defaults run must be a valid configuration
            for wl in spec.workloads:
                validate_run(spec.config(m, wl, {}, seed))
        return spec

    @property
    def cells(self) -> list[tuple[Any, Any]]:
        return [(m, w) for m in self.machines for w in self.workloads]

    def config(self, machine, workload, cand: dict, seed: int) -> RunConfig:
        w = {"name": workload} if isinstance(workload, str) else dict(workload)
        w.setdefault("variant", self.variant)
        w.setdefault("build", self.build)
        sim = self.sim
        if w.get("duration_s") is not None:  # this workload's own run length (numa02 needs far less than numa01)
            sim = replace(sim, duration_s=w["duration_s"]).validate()
        built = build_workload(w, machine, self.policy, seed)
        return RunConfig(machine=machine, workload=built, policy=self.policy, knobs=self.space.knobs(cand),
                         sim=sim, seed=seed, variant=w["variant"], build=w["build"])

    def fingerprint(self) -> str:
        """What the job computes, hashed: a store written by another job is refused."""
        d = {"machines": [repr(m) for m in self.machines], "workloads": [repr(w) for w in self.workloads], "policy": self.policy,
             "space": [(x.path, x.lo, x.hi, x.log) for x in self.space.dims], "base": flatten(self.space.base),
             "objective": self.objective, "w": self.overhead_weight, "n": self.candidates, "eta": self.eta,
             "rungs": [(r.fraction, r.seeds) for r in self.rungs], "fresh": self.fresh_seeds,
             "transfer": self.transfer, "seed": self.seed, "sim": repr(self.sim), "rpc": self.reports_per_chunk,
             "variant": self.variant, "build": self.build}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        """What the outputs need to read the records: cells, searched dimensions, objective."""
        return {"policy": self.policy, "objective": self.objective, "overhead_weight": self.overhead_weight,
                "cells": [cell_name(m, w) for m, w in self.cells],
                "dims": [{"path": d.path, "lo": d.lo, "hi": d.hi, "log": d.log, "kind": d.kind} for d in self.space.dims],
                "defaults": self.space.defaults(), "candidates": self.candidates, "eta": self.eta,
                "rungs": [{"fraction": r.fraction, "seeds": r.seeds} for r in self.rungs],
                "fresh_seeds": self.fresh(), "transfer": self.transfer, "seed": self.seed}

    def budget_reports(self, fraction: float, sim: SimConfig | None = None) -> int:
        """Report intervals of a rung: the fraction of the run, rounded up to whole chunks."""
        total = (sim or self.sim).n_reports
        k = min(self.reports_per_chunk, total)
        return min(total, int(math.ceil(fraction * total / k)) * k)

    def search_seeds(self, rung: int) -> list[int]:
        return [self.seed + i for i in range(self.rungs[rung].seeds)]

    def fresh(self) -> list[int]:
        return [self.seed + FRESH_OFFSET + i for i in range(self.fresh_seeds)]


def cell_name(machine, workload) -> str:
    """``<machine>/<workload>``: the preset or Machine name and the benchmark name (with its size and
    passes when they are changed: ``numa01-128MiBx100``)."""
    m = machine if isinstance(machine, str) else machine.name
    if isinstance(workload, str):
        return f"{m}/{workload}"
    w = str(workload.get("name"))
    size, loops = workload.get("size_mib"), workload.get("loops")
    if size is not None or loops is not None:
        w += f"-{size if size is not None else ''}MiBx{loops if loops is not None else ''}"
    return f"{m}/{w}"


@dataclass
class Tuner:
    """Runs a ``TuneSpec`` against a ``Store``; ``run()`` returns the store's records.

    ``should_stop``: polled between chunks; when true the batch in flight is checkpointed under
    ``checkpoint_dir`` and ``Stopped`` is raised. ``on_batch(stage, cell, rung, n_configs)``: called
    before each batch (progress lines); ``on_chunk``: the engine's per-chunk hook.
    """
    spec: TuneSpec
    store: Store
    checkpoint_dir: str | None = None
    should_stop: Callable[[], bool] | None = None
    on_batch: Callable[[str, str, int, int], None] | None = None
    on_chunk: Callable[[Any], None] | None = None

    def run(self) -> list[dict]:
        spec = self.spec
        self.store.claim(spec.fingerprint(), spec.describe())
        best: dict[str, dict] = {}
        for m, w in spec.cells:
            best[cell_name(m, w)] = self.search(m, w)
        for m, w in spec.cells:
            self.evaluate(m, w, best)
        return self.store.records

    # ---- stage 1 ---------------------------------------------------------------------------
    def search(self, machine: str, workload: str) -> dict:
        """Successive halving on one cell; returns the best candidate (knob path -> value)."""
        spec = self.spec
        cell = cell_name(machine, workload)
        cands = spec.space.sample(spec.candidates, spec.seed)
        first = [validate_run(spec.config(machine, workload, c, spec.seed)) for c in cands]
        pinned = build_static(first)
        sim = first[0].sim
        alive = list(range(len(cands)))
        for r, rung in enumerate(spec.rungs):
            if r > 0:
                alive = survivors(self.store.select(stage="search", cell=cell, rung=r - 1), alive, spec.eta)
            seeds = spec.search_seeds(r)
            jobs = [(i, s) for i in alive for s in seeds]
            meta = [[{"candidate": i, "is_default": i == 0}] for i, _ in jobs]
            self._batch("search", cell, r, machine, workload, [cands[i] for i, _ in jobs], [s for _, s in jobs],
                        meta, spec.budget_reports(rung.fraction, sim), pinned)
        final = survivors(self.store.select(stage="search", cell=cell, rung=len(spec.rungs) - 1), alive, 1)
        return cands[final[0]]

    # ---- stage 2 ---------------------------------------------------------------------------
    def evaluate(self, machine: str, workload: str, best: dict[str, dict]) -> None:
        spec = self.spec
        cell = cell_name(machine, workload)
        sets: list[tuple[list[str], dict]] = [(["defaults"], spec.space.defaults())]
        for src, cand in best.items():
            if not (spec.transfer or src == cell):
                continue
            same = next((names for names, c in sets if c == cand), None)
            if same is not None:
                same.append(src)  # one run serves every name: a result depends on knobs and seed only
            else:
                sets.append(([src], cand))
        jobs = [(names, cand, s) for names, cand in sets for s in spec.fresh()]
        meta = [[{"knobs_from": n, "is_default": n == "defaults"} for n in names] for names, _, _ in jobs]
        sim = spec.config(machine, workload, {}, spec.seed).sim
        self._batch("evaluate", cell, 0, machine, workload, [c for _, c, _ in jobs], [s for _, _, s in jobs], meta,
                    sim.n_reports, None)

    # ---- one batch -------------------------------------------------------------------------
    def _batch(self, stage: str, cell: str, rung: int, machine: str, workload: str, cands: Sequence[dict],
               seeds: Sequence[int], meta: Sequence[list[dict]], budget: int, static) -> None:
        """Run one batch (unless the store has it) and record each run once per entry of its meta."""
        if self.store.has(stage, cell, rung):
            return
        from ..simulate import Bucket
        spec = self.spec
        configs = [validate_run(spec.config(machine, workload, c, s)) for c, s in zip(cands, seeds)]
        if self.on_batch is not None:
            self.on_batch(stage, cell, rung, len(configs))
        bucket = Bucket.build(configs, static=static)
        kw: dict[str, Any] = {}
        if self.checkpoint_dir:
            os.makedirs(self.checkpoint_dir, exist_ok=True)
            path = os.path.join(self.checkpoint_dir, f"{stage}_{_safe(cell)}_rung{rung}.npz")
            kw = {"checkpoint": path, "checkpoint_every": 0, "should_stop": self.should_stop}
        res = bucket.run(reports_per_chunk=spec.reports_per_chunk, stop_when_done=True, on_chunk=self.on_chunk,
                         max_reports=budget, **kw)
        if getattr(bucket, "stopped", False):
            raise Stopped(f"{stage} {cell} rung {rung}: checkpointed"
                          + (f" ({bucket.checkpoint_error})" if bucket.checkpoint_error else ""))
        budget_s = budget * bucket.static.report_ticks * bucket.static.tick_s
        recs = []
        for r, c, s, mts in zip(res, cands, seeds, meta):
            m = measure(r, spec.objective, spec.overhead_weight)
            mname, wname = cell.split("/", 1)
            for mt in mts:  # one record per name the run serves (the evaluation of identical knob sets)
                recs.append({"stage": stage, "cell": cell, "machine": mname, "workload": wname, "rung": rung,
                             "seed": s, "budget_s": budget_s, **mt, "knobs": dict(c), **_plain(m)})
        self.store.add(stage, cell, rung, recs)
        if kw:
            try:
                os.remove(kw["checkpoint"])  # spent: the records are in the store
            except OSError:
                pass


def survivors(records: list[dict], alive: list[int], eta: int) -> list[int]:
    """The best ``ceil(len(alive) / eta)`` candidates by mean objective (ties: lower index first)."""
    by: dict[int, list[float]] = {}
    for rec in records:
        by.setdefault(rec["candidate"], []).append(rec["objective"])
    ranked = sorted(alive, key=lambda i: (_mean(by.get(i, [])), i))
    return ranked[:max(1, math.ceil(len(alive) / eta))]


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else math.inf


def _plain(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)
