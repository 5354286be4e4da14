"""The autonuma-benchmark family (Andrea Arcangeli + Petr Holasek, 2012), spec §10.1.

Thread counts come from the machine: NCPUS = number of CPUs; numa01 runs NCPUS/2 threads in each
of its two processes, numa02 NCPUS threads, numa02_SMT NCPUS/2. Work volumes per thread:
numa01 3 GiB init + 50 x 3 GiB; numa01_THREAD_ALLOC 3 GiB init + 1000 x (3 GiB / T);
numa02 / numa02_SMT 800 x (1 GiB / T) after the main thread's 1 GiB init.

Variants (``variant``):
- ``default``: as the author ran them. numa01 and numa01_THREAD_ALLOC use NO_BIND_FORCE_SAME_NODE:
  every thread zeroes its process's whole 3 GiB once under MPOL_BIND to one node (node 0 or 1
  from "time parity", here from the seed), so both processes start on the same node.
- ``no_force``: numa01 without FORCE_SAME_NODE (first-touch init).
- ``hard_bind``: numa01: process 0 bound (CPUs + MPOL_BIND) to the first half of the nodes,
  process 1 to the second half; numa02: thread i and its slice bound to node i / (T / nodes).
- ``inverse_bind``: numa01: as hard_bind but process 0's memory bound to the second half (the
  source's inversion only flips that direction: a quirk kept on purpose); numa02: the slices
  placed as in hard_bind, thread i bound to node (T - 1 - i) / (T / nodes).
"""
from __future__ import annotations

from ..errors import ConfigError
from ..machine import Machine
from .base import Process, Thread, Workload

GiB = 1 << 30
VARIANTS = ("default", "no_force", "hard_bind", "inverse_bind")


def _halves(n_nodes: int) -> tuple[int, int]:
    """NODEMASK1 = first half of the nodes, NODEMASK2 = second half (preproc.awk)."""
    if n_nodes < 2:
        return 1, 1
    h = n_nodes // 2
    return (1 << h) - 1, ((1 << n_nodes) - 1) & ~((1 << h) - 1)


def numa01(machine: Machine, variant: str = "default", thread_alloc: bool = False, force_node: int = 0,
           size: int = 3 * GiB, loops: int | None = None) -> Workload:
    """``size`` and ``loops`` default to the benchmark's (3 GiB, 50 or 1000); tests shrink them."""
    ncpus = machine.n_cpus
    threads_per_proc = max(1, ncpus // 2)
    nr = loops if loops is not None else (1000 if thread_alloc else 50)
    m1, m2 = _halves(machine.n_nodes)
    force_mask = 1 << (force_node % machine.n_nodes)
    procs, threads = [], []
    for p in range(2):
        procs.append(Process(mem_bytes=size, name=f"numa01[{p}]"))
        cpu_mask = m1 if p == 0 else m2
        mem_mask = cpu_mask
        if variant == "inverse_bind" and mem_mask == m1:
            mem_mask = m2  # `if (nodemask == NODEMASK1) nodemask = NODEMASK2;` (one direction only)
        for i in range(threads_per_proc):
            if thread_alloc:
                tsize = size // threads_per_proc
                w_off, w_len = tsize * i, tsize
            else:
                w_off, w_len = 0, size
            if variant in ("hard_bind", "inverse_bind"):
                t = Thread(mm=p, init_offset=0, init_len=size, init_passes=1, init_bind_mask=mem_mask,
                           work_offset=w_off, work_len=w_len, work_passes=nr, work_bind_mask=mem_mask,
                           cpus_allowed=cpu_mask)
            elif variant == "no_force":
                t = Thread(mm=p, init_offset=0, init_len=size, init_passes=1,
                           work_offset=w_off, work_len=w_len, work_passes=nr)
            else:
                t = Thread(mm=p, init_offset=0, init_len=size, init_passes=1, init_bind_mask=force_mask,
                           work_offset=w_off, work_len=w_len, work_passes=nr)
            threads.append(t)
    name = "numa01_THREAD_ALLOC" if thread_alloc else "numa01"
    return Workload(name=name, processes=tuple(procs), threads=tuple(threads),
                    description=f"{name} ({variant}): 2 processes x {threads_per_proc} threads x 3 GiB")


def numa02(machine: Machine, variant: str = "default", smt: bool = False, size: int = 1 * GiB,
           loops: int = 800) -> Workload:
    n = machine.n_nodes
    nthreads = max(1, machine.n_cpus // 2) if smt else machine.n_cpus
    per_node = max(1, nthreads // n)
    tsize = size // nthreads
    bound = variant in ("hard_bind", "inverse_bind")
    # Thread 0 is main(): zeroes the whole 1 GiB node slice by node slice (BINDMAP; bound per slice
    # only with HARD_BIND), creates the workers and sleeps in pthread_join.
    threads = [Thread(mm=0, init_offset=0, init_len=size, init_passes=1, init_bind_by_slice=bound,
                      work_offset=0, work_len=0, work_passes=0)]
    for i in range(nthreads):
        node = None
        if variant == "hard_bind":
            node = min(n - 1, i // per_node)
        elif variant == "inverse_bind":
            node = min(n - 1, (nthreads - 1 - i) // per_node)
        mask = 0 if node is None else 1 << node
        threads.append(Thread(mm=0, work_offset=tsize * i, work_len=tsize, work_passes=loops,
                              work_bind_mask=mask, cpus_allowed=mask, start_after=0))
    name = "numa02_SMT" if smt else "numa02"
    return Workload(name=name, processes=(Process(mem_bytes=size, name=name),), threads=tuple(threads),
                    description=f"{name} ({variant}): 1 process x {nthreads} threads x 1 GiB, {loops} passes")


BENCHMARKS = {
    "numa01": lambda m, v, fn: numa01(m, v, thread_alloc=False, force_node=fn),
    "numa01_THREAD_ALLOC": lambda m, v, fn: numa01(m, v, thread_alloc=True, force_node=fn),
    "numa02": lambda m, v, fn: numa02(m, v, smt=False),
    "numa02_SMT": lambda m, v, fn: numa02(m, v, smt=True),
}


def make_benchmark(name: str, machine: Machine, variant: str = "default", force_node: int = 0) -> Workload:
    if name not in BENCHMARKS:
        raise ConfigError(f"workload={name!r}: must be one of {sorted(BENCHMARKS)}")
    if variant not in VARIANTS:
        raise ConfigError(f"workload.variant={variant!r}: must be one of {list(VARIANTS)}")
    return BENCHMARKS[name](machine, variant, force_node).validate(machine.n_nodes)
