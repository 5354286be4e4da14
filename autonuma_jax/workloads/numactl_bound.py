"""Mixes of free and ``numactl``-bound processes (spec §10.4: SPECjbb with 2 instances under
AutoNUMA + 2 numactl-bound - AutoNUMA must coexist with hard bindings).

``bind_processes(workload, machine, procs, nodes)`` binds the given processes of any workload, as
``numactl --cpunodebind=N --membind=N`` does: every thread of such a process gets cpus_allowed =
node N and a task mempolicy MPOL_BIND to node N (in its init and work phases; a task mempolicy
also keeps AutoNUMA's hinting-fault statistics off for the task, spec §4.2). The other processes
run free.

``numactl_bound(machine, base=..., free=..., bound=...)`` builds the workload ``base`` with
``free + bound`` processes (its instance / job / process count) and binds the last ``bound`` of
them; for a base with a fixed process count (numa01, ...) ``free`` must be left unset and the last
``bound`` processes are bound. By default the k-th of B bound processes goes to node
(nodes - B + k) mod nodes: the bound ones fill the last nodes, the free ones have the first.

Parameters: ``base`` (default specjbb), ``free`` (default 2 for a base with a process count),
``bound`` (default 2), ``nodes`` (a
list, one node per bound process; default as above), and any parameter of the base workload.
The workload ``specjbb_2free_2bound`` is this with its defaults: the cover letter's run.
Variants apply to the base first (``hard_bind`` binds every process), then the numactl bindings.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from ..errors import ConfigError
from ..machine import Machine
from .base import Workload

# the parameter of each base that sets its number of processes
COUNT_PARAM = {"stream": "instances", "specjbb": "instances", "kbuild": "jobs", "parametric": "processes"}


def default_nodes(n_bound: int, n_nodes: int) -> list[int]:
    return [(n_nodes - n_bound + k) % n_nodes for k in range(n_bound)]


def bind_processes(workload: Workload, machine: Machine, procs: Sequence[int],
                   nodes: Sequence[int] | None = None) -> Workload:
    """``workload`` with each process of ``procs`` bound (CPUs and memory) to one node."""
    n = machine.n_nodes
    procs = list(procs)
    nodes = default_nodes(len(procs), n) if nodes is None else list(nodes)
    if len(nodes) != len(procs):
        raise ConfigError(f"workload.nodes={nodes}: needs one node per bound process ({len(procs)})")
    for p in procs:
        if not 0 <= p < workload.n_mms:
            raise ConfigError(f"workload.bound: process {p} not in [0, {workload.n_mms - 1}]")
    for x in nodes:
        if not isinstance(x, int) or not 0 <= x < n:
            raise ConfigError(f"workload.nodes={nodes}: each must be a node in [0, {n - 1}]")
    node_of = dict(zip(procs, nodes))
    threads = []
    for t in workload.threads:
        if t.mm in node_of:
            m = 1 << node_of[t.mm]
            t = dataclasses.replace(t, cpus_allowed=m, work_bind_mask=m if t.work_passes else 0,
                                    init_bind_mask=m if t.init_passes else 0, init_bind_by_slice=False)
        threads.append(t)
    desc = ", ".join(f"{p}->node{node_of[p]}" for p in procs)
    return dataclasses.replace(workload, threads=tuple(threads),
                               description=f"{workload.description}; numactl-bound: {desc}")


def numactl_bound(machine: Machine, variant: str = "default", base: str = "specjbb", free: int | None = None,
                  bound: int = 2, nodes: Sequence[int] | None = None, **base_params) -> Workload:
    from . import make_workload  # the registry (avoids an import cycle)
    if base in ("numactl_bound", "specjbb_2free_2bound"):
        raise ConfigError(f"workload.base={base!r}: must be a plain workload")
    if not isinstance(bound, int) or isinstance(bound, bool) or bound < 0:
        raise ConfigError(f"workload.bound={bound!r}: must be an integer >= 0 (numactl_bound)")
    count = COUNT_PARAM.get(base)
    if count is not None:
        free = 2 if free is None else free
        if not isinstance(free, int) or isinstance(free, bool) or free < 0 or free + bound < 1:
            raise ConfigError(f"workload.free={free!r}: must be an integer >= 0, free + bound >= 1 (numactl_bound)")
        if count in base_params:
            raise ConfigError(f"workload.{count}: set free and bound instead (numactl_bound)")
        base_params = {**base_params, count: free + bound}
    elif free is not None:
        raise ConfigError(f"workload.free={free!r}: {base} has a fixed number of processes; leave free unset "
                          f"(numactl_bound)")
    wl = make_workload(base, machine, variant, **base_params)
    if bound > wl.n_mms:
        raise ConfigError(f"workload.bound={bound}: {base} has only {wl.n_mms} processes (numactl_bound)")
    out = bind_processes(wl, machine, range(wl.n_mms - bound, wl.n_mms), nodes)
    return dataclasses.replace(out, name=f"numactl_bound[{base}]")


def specjbb_2free_2bound(machine: Machine, variant: str = "default", **params) -> Workload:
    """SPECjbb, 2 instances free + 2 numactl-bound (spec §10.4)."""
    out = numactl_bound(machine, variant, base="specjbb", **params)
    return dataclasses.replace(out, name="specjbb_2free_2bound")
