"""Workloads as processes (mm) x threads (tasks) x memory regions with a streaming access pattern.

A thread first runs an optional *init* phase (``init_passes`` sequential write passes over its init
region, possibly under a task mempolicy MPOL_BIND), then a *work* phase (``work_passes`` passes
over its work region). All patterns here are ``bzero``-style sequential write streams, as in the
autonuma-benchmark sources (spec §10.1). Offsets and lengths are in bytes inside the process's
anonymous region; the engine rounds them to whole page units.

Two-region cycles (``alt_*``): in its work phase a thread may alternate between its work region
(``cycle_work`` passes) and an alternate region (``cycle_alt`` passes), repeated until
``work_passes`` passes (of both kinds together) are done. This expresses private/shared mixes
(private slice / the process's shared region), hot sets (hot sub-region / the rest) and a JVM's
periodic GC sweeps (the thread's own objects / the whole heap). ``cycle_alt = 0``: no cycle.

Process slots (``respawns``): a process with ``respawns = k`` is a *slot* that runs k + 1 processes
one after the other, each a fresh exec of the same layout: when the current one exits (all its
threads finished), its memory is freed and its mm and task statistics are reset, and the next
one starts with the same threads (a ``make -j`` job slot running compiler after compiler).
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
    # The slot runs this many more processes after the first (see the module docstring).
    respawns: int = 0


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
    # Work-phase cycle: cycle_work passes over the work region, then cycle_alt passes over the
    # alternate region [alt_offset, alt_offset + alt_len), repeated (cycle_alt = 0: no cycle).
    alt_offset: int = 0
    alt_len: int = 0
    cycle_work: int = 1
    cycle_alt: int = 0


@dataclass(frozen=True)
class Workload:
    name: str
    processes: tuple
    threads: tuple
    description: str = ""
    # a benchmark's own parameters that its figures need (perf_bench_numa.PerfBench), else None
    bench: object = None

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
            require(isinstance(p.respawns, int) and 0 <= p.respawns < 2**30,
                    f"workload[{self.name}].processes[{i}].respawns", p.respawns, "an integer in [0, 2^30)")
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
            require(isinstance(t.cycle_work, int) and 1 <= t.cycle_work < 2**20, f + ".cycle_work", t.cycle_work,
                    "an integer in [1, 2^20)")
            require(isinstance(t.cycle_alt, int) and 0 <= t.cycle_alt < 2**20, f + ".cycle_alt", t.cycle_alt,
                    "an integer in [0, 2^20)")
            if t.cycle_alt and t.work_passes:
                require(0 <= t.alt_offset and t.alt_len > 0 and t.alt_offset + t.alt_len <= size,
                        f + ".alt_offset/alt_len", (t.alt_offset, t.alt_len), f"a non-empty range inside [0, {size})")
                # one cycle, in 4 KiB pages, must stay far below 2^31 (int32 positions in the engine)
                cyc = (t.cycle_work * -(-t.work_len // 4096) + t.cycle_alt * -(-t.alt_len // 4096))
                require(cyc < 2**30, f + ".cycle_work/cycle_alt", (t.cycle_work, t.cycle_alt),
                        "a cycle (passes x region pages) below 2^30 pages")
            for name in ("init_bind_mask", "work_bind_mask", "cpus_allowed"):
                v = getattr(t, name)
                require(0 <= v <= full, f"{f}.{name}", v, f"a node mask in [0, {full}]")
            require(-1 <= t.start_after < len(self.threads) and t.start_after != i, f + ".start_after",
                    t.start_after, f"-1 or another thread index in [0, {len(self.threads) - 1}]")
        return self


def combine(name: str, *workloads: Workload) -> Workload:
    """Several workloads side by side on one machine (e.g. a kernel build next to STREAM): their
    processes and threads concatenated, thread references renumbered."""
    import dataclasses
    procs, threads = [], []
    for wl in workloads:
        m0, t0 = len(procs), len(threads)
        procs.extend(wl.processes)
        threads.extend(dataclasses.replace(t, mm=t.mm + m0,
                                           start_after=t.start_after + t0 if t.start_after >= 0 else -1)
                       for t in wl.threads)
    return Workload(name=name, processes=tuple(procs), threads=tuple(threads),
                    description=" + ".join(wl.description or wl.name for wl in workloads))
