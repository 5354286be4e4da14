"""Workload definitions: processes x threads x memory regions with an access pattern.

The registry maps a workload name to its builder ``fn(machine, variant, **params)``; every name
works as ``RunConfig(workload=name)`` (its documented defaults, sizes and thread counts derived
from the machine). ``make_workload(name, machine, variant, force_node, **params)`` builds one with
parameters; ``WORKLOADS[name].params`` lists them, and ``size_param`` / ``loops_param`` name the
parameters the CLI's ``workload.size_mib`` / ``workload.loops`` set.

- autonuma-benchmark (spec §10.1): numa01, numa01_THREAD_ALLOC, numa02, numa02_SMT
- stream (§10.4), specjbb (§10.2), kbuild (§10.3), numactl_bound and specjbb_2free_2bound
  (§10.4: free and numactl-bound instances side by side), parametric (your own studies)
- perf_bench_numa: Linux's ``perf bench numa mem`` and the cases of its ``-a`` suite
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError
from .autonuma_benchmark import BENCHMARKS as _AUTONUMA_BENCHMARK, BUILDS, VARIANTS, build_variant, numa01, numa02
from .base import Process, Thread, Workload, combine
from .common import MiB, check_params
from .kbuild import PARAMS as _KBUILD_PARAMS, kbuild
from .numactl_bound import bind_processes, numactl_bound, specjbb_2free_2bound
from .parametric import PARAMS as _PARAMETRIC_PARAMS, parametric
from .perf_bench_numa import CASES as PERF_CASES, PARAMS as _PERF_PARAMS, PerfBench, perf_bench_numa
from .specjbb import PARAMS as _SPECJBB_PARAMS, specjbb
from .stream import PARAMS as _STREAM_PARAMS, stream


@dataclass(frozen=True)
class Entry:
    build: Callable  # (machine, variant, force_node, **params) -> Workload
    params: tuple  # parameter names (None: any parameter of the base, for numactl_bound)
    size_param: str | None = None  # set (in MiB) by the CLI's workload.size_mib
    loops_param: str | None = None  # set by the CLI's workload.loops


def _ab(name):
    def build(m, v, fn, size_mib=None, loops=None):
        kw = {k: x for k, x in (("size", None if size_mib is None else size_mib * MiB), ("loops", loops))
              if x is not None}
        if name.startswith("numa01"):
            return numa01(m, v, thread_alloc=name == "numa01_THREAD_ALLOC", force_node=fn, **kw)
        return numa02(m, v, smt=name == "numa02_SMT", **kw)
    return build


def _plain(fn):
    return lambda m, v, force_node, **kw: fn(m, v, **kw)


WORKLOADS: dict = {
    **{name: Entry(_ab(name), ("size_mib", "loops"), "size_mib", "loops") for name in _AUTONUMA_BENCHMARK},
    "stream": Entry(_plain(stream), _STREAM_PARAMS, "mib", "passes"),
    "specjbb": Entry(_plain(specjbb), _SPECJBB_PARAMS, "heap_mib", "gc_cycles"),
    "kbuild": Entry(_plain(kbuild), _KBUILD_PARAMS, "mib", "passes"),
    "parametric": Entry(_plain(parametric), _PARAMETRIC_PARAMS, "mib", "passes"),
    "perf_bench_numa": Entry(_plain(perf_bench_numa), _PERF_PARAMS, "mb_proc", "nr_loops"),
    "numactl_bound": Entry(_plain(numactl_bound), None),
    "specjbb_2free_2bound": Entry(_plain(specjbb_2free_2bound), None),
}

# name -> (machine, variant, force_node) -> Workload with the defaults
BENCHMARKS = {name: (lambda m, v, fn, _e=e: _e.build(m, v, fn)) for name, e in WORKLOADS.items()}


def size_loops_params(name: str, params: dict) -> tuple:
    """The parameters that the CLI's workload.size_mib / workload.loops set for ``name`` (a mix sets
    its base's)."""
    e = WORKLOADS[name]
    if name in ("numactl_bound", "specjbb_2free_2bound"):
        base = "specjbb" if name == "specjbb_2free_2bound" else params.get("base", "specjbb")
        e = WORKLOADS.get(base, e)
    return e.size_param, e.loops_param


def make_workload(name: str, machine, variant: str = "default", force_node: int = 0, build: str = "latest",
                  **params) -> Workload:
    """Workload ``name`` on ``machine`` with ``params`` (see each module's docstring), validated.
    ``build``: the dated build of the autonuma-benchmark sources (``BUILDS``), which decides what
    the unbound run and inverse_bind compile to; other workloads ignore it."""
    if name not in WORKLOADS:
        raise ConfigError(f"workload={name!r}: must be one of {sorted(WORKLOADS)}")
    if variant not in VARIANTS:
        raise ConfigError(f"workload.variant={variant!r}: must be one of {list(VARIANTS)}")
    variant = build_variant(name, variant, build)
    e = WORKLOADS[name]
    if e.params is not None:
        check_params(name, params, e.params)
    params = {k: v for k, v in params.items() if v is not None}
    try:
        wl = e.build(machine, variant, force_node, **params)
    except TypeError as err:  # a parameter of a base that it does not know (numactl_bound)
        raise ConfigError(f"workload={name!r}: {err}") from None
    return wl.validate(machine.n_nodes)


def make_benchmark(name: str, machine, variant: str = "default", force_node: int = 0, build: str = "latest",
                   **params) -> Workload:
    """The registered workload ``name`` (kept under its historical name; same as make_workload)."""
    return make_workload(name, machine, variant, force_node, build, **params)


__all__ = ["Process", "Thread", "Workload", "BENCHMARKS", "BUILDS", "VARIANTS", "build_variant", "WORKLOADS", "Entry", "make_benchmark",
           "make_workload", "size_loops_params", "numa01", "numa02", "stream", "specjbb", "kbuild", "parametric",
           "perf_bench_numa", "PerfBench", "PERF_CASES",
           "numactl_bound",
           "specjbb_2free_2bound", "bind_processes", "combine", "MiB"]
