"""Workloads as processes (mm) x threads (tasks) x memory regions with a streaming access pattern.

A thread first runs an optional *init* phase (``init_passes`` sequential write passes over its init
region, possibly under a task mempolicy MPOL_BIND), then a *work* phase (``work_passes`` passes
over its work region). All patterns here are ``bzero``-style sequential write streams, as in the
autonuma-benchmark sources (spec §10.1). Offsets and lengths are in bytes inside the process's
anonymous region; the engine rounds them to whole page units.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, require


@dataclass(frozen=True)
class Process:
    mem_bytes: int
    # An explicit VMA policy (mbind) on the region: knuma_scand skips such VMAs (spec §3.3).
    vma_bind_mask: int = 0
    name: str = ""


@dataclass(frozen=True)
class Thread:
    mm: int
    work_offset: int
    work_len: int
    work_passes: int
    init_offset: int = 0
    init_len: int = 0
    init_passes: int = 0
    # Task mempolicy MPOL_BIND node mask during init (0 = MPOL_DEFAULT). A task mempolicy also
    # gates AutoNUMA's hinting-fault accounting off for that task (spec §4.2).
    init_bind_mask: int = 0
    # numa02's BINDMAP: the init region is zeroed in n_nodes equal slices, slice j bound to node j.
    init_bind_by_slice: bool = False
    # Task mempolicy during the work phase (0 = MPOL_DEFAULT).
    work_bind_mask: int = 0
    # sched_setaffinity as a node mask (0 = all nodes).
    cpus_allowed: int = 0
    # The thread is created once thread ``start_after`` has finished its init phase (-1: at start).
    start_after: int = -1
    # A thread with work_passes == 0 sleeps (e.g. in pthread_join) after its init phase.


@dataclass(frozen=True)
class Workload:
    name: str
    processes: tuple
    threads: tuple
    description: str = ""

    @property
    def n_mms(self) -> int:
        return len(self.processes)

    @property
    def n_tasks(self) -> int:
        return len(self.threads)

    def total_bytes(self) -> int:
        return sum(p.mem_bytes for p in self.processes)

    def validate(self, n_nodes: int) -> "Workload":
        require(len(self.processes) >= 1, f"workload[{self.name}].processes", len(self.processes), ">= 1 process")
        require(len(self.threads) >= 1, f"workload[{self.name}].threads", len(self.threads), ">= 1 thread")
        full = (1 << n_nodes) - 1
        for i, p in enumerate(self.processes):
            require(p.mem_bytes > 0, f"workload[{self.name}].processes[{i}].mem_bytes", p.mem_bytes, "> 0")
            require(0 <= p.vma_bind_mask <= full, f"workload[{self.name}].processes[{i}].vma_bind_mask",
                    p.vma_bind_mask, f"a node mask in [0, {full}]")
        for i, t in enumerate(self.threads):
            f = f"workload[{self.name}].threads[{i}]"
            require(0 <= t.mm < len(self.processes), f + ".mm", t.mm, f"in [0, {len(self.processes) - 1}]")
            size = self.processes[t.mm].mem_bytes
            require(t.work_passes >= 0, f + ".work_passes", t.work_passes, ">= 0")
            require(t.init_passes >= 0, f + ".init_passes", t.init_passes, ">= 0")
            require(t.work_passes + t.init_passes > 0, f + ".passes", 0, "> 0 in init or work")
            if t.work_passes:
                require(0 <= t.work_offset and t.work_len > 0 and t.work_offset + t.work_len <= size,
                        f + ".work_offset/work_len", (t.work_offset, t.work_len), f"a non-empty range inside [0, {size})")
            if t.init_passes:
                require(0 <= t.init_offset and t.init_len > 0 and t.init_offset + t.init_len <= size,
                        f + ".init_offset/init_len", (t.init_offset, t.init_len), f"a non-empty range inside [0, {size})")
            for name in ("init_bind_mask", "work_bind_mask", "cpus_allowed"):
                v = getattr(t, name)
                require(0 <= v <= full, f"{f}.{name}", v, f"a node mask in [0, {full}]")
            require(-1 <= t.start_after < len(self.threads) and t.start_after != i, f + ".start_after",
                    t.start_after, f"-1 or another thread index in [0, {len(self.threads) - 1}]")
        return self
