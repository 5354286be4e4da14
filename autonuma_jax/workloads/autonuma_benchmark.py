"""The autonuma-benchmark family (Andrea Arcangeli + Petr Holasek, 2012), spec §10.1.

Thread counts come from the machine: NCPUS = number of CPUs; numa01 runs NCPUS/2 threads in each
of its two processes, numa02 NCPUS threads, numa02_SMT NCPUS/2. Work volumes per thread:
numa01 3 GiB init + 50 x 3 GiB; numa01_THREAD_ALLOC 3 GiB init + 1000 x (3 GiB / T);
numa02 / numa02_SMT 800 x (1 GiB / T) after the main thread's 1 GiB init.

Variants (``variant``), each a way the sources place memory and threads:
- ``default``: numa01 and numa01_THREAD_ALLOC with NO_BIND_FORCE_SAME_NODE: every thread zeroes its
  process's whole 3 GiB once under MPOL_BIND to one node (node 0 or 1 from "time parity", here
  from the seed), so both processes start on the same node; numa02: the main thread first-touches
  the whole 1 GiB from its own CPU, so all of it lands on its node.
- ``no_force``: numa01 / numa01_THREAD_ALLOC without FORCE_SAME_NODE (a first-touch init race).
- ``split_init``: numa02 as in its January 2012 source: the main thread first-touches slice j of
  the memory on node j (half on each node of a 2-node box) before starting the workers.
- ``hard_bind``: numa01: process 0 bound (CPUs + MPOL_BIND) to the first half of the nodes,
  process 1 to the second half; numa02: thread i and its slice bound to node i / (T / nodes).
- ``inverse_bind``: numa01: as hard_bind but process 0's memory bound to the second half; the
  preprocessed source (2012-06-06 on) flips only that direction (``if (nodemask == NODEMASK1)
  nodemask = NODEMASK2; else if (nodemask == NODEMASK1) ...``), so process 1 stays local;
  numa02: the slices placed as in hard_bind, thread i bound to node (T - 1 - i) / (T / nodes).
- ``inverse_bind_both``: numa01's original INVERSE_BIND (before 2012-06-06): both processes'
  memory on the other half, every thread remote (numa02: the same as inverse_bind).

Builds (``BUILDS``, ``RunConfig.build``): the benchmark's sources changed during 2012 and the
published runs used different builds. A build maps the policy's binding (or the unbound run) to
the variant that build compiled; the dates come from the benchmark's git history:
- ``2012-03``: the sources Andrea ran in March 2012 (before the public repository): numa01 run as
  NO_BIND_FORCE_SAME_NODE (named so in the posting), numa01_THREAD_ALLOC *not* forced, INVERSE_BIND
  swapping both processes, numa02 with its January 2012 split first touch.
- ``2012-06-06``: the first preprocessed source: one-directional INVERSE_BIND; numa01's default
  build not forced.
- ``2012-07-05``: numa01's default build becomes NO_BIND_FORCE_SAME_NODE (commit 2e33cc1).
- ``2012-07-15`` = ``latest``: numa01_THREAD_ALLOC forced too (commit 9529d89).
Known but not modelled (no published run used them): numa02's HARD/INVERSE_BIND before
2012-07-05 bound every thread to node 0 (``bind(i / NCPUS/NNODES)``), and numa02_SMT before
2012-07-05 halved each thread's slice (``#define THREADS NCPUS/2`` without parentheses).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..machine import Machine
from .base import Process, Thread, Workload

GiB = 1 << 30
VARIANTS = ("default", "no_force", "split_init", "hard_bind", "inverse_bind", "inverse_bind_both")


@dataclass(frozen=True)
class Build:
    date: str
    numa01_force: bool  # numa01 built with NO_BIND_FORCE_SAME_NODE
    thread_alloc_force: bool  # numa01_THREAD_ALLOC built with NO_BIND_FORCE_SAME_NODE
    inverse_both: bool  # numa01's INVERSE_BIND swaps both processes
    numa02_split_init: bool  # numa02's main thread first-touches slice j on node j without binding
    description: str


BUILDS = {
    "2012-03": Build("2012-03", True, False, True, True,
                     "March 2012 runs (before the public repository): numa01 forced, THREAD_ALLOC not, "
                     "INVERSE_BIND both ways, numa02 split first touch"),
    "2012-06-06": Build("2012-06-06", False, False, False, False,
                        "first preprocessed source: one-directional INVERSE_BIND, numa01 not forced"),
    "2012-07-05": Build("2012-07-05", True, False, False, False, "numa01 forced by default (2e33cc1)"),
    "2012-07-15": Build("2012-07-15", True, True, False, False, "THREAD_ALLOC forced too (9529d89)"),
}
BUILDS["latest"] = BUILDS["2012-07-15"]


def build_variant(name: str, variant: str, build: str = "latest") -> str:
    """The variant ``build`` of benchmark ``name`` compiled for a requested variant: the unbound run
    (``default``) and ``inverse_bind`` depend on the build; explicit variants pass through."""
    if build not in BUILDS:
        raise ConfigError(f"workload.build={build!r}: must be one of {sorted(BUILDS)}")
    b = BUILDS[build]
    if name in ("numa01", "numa01_THREAD_ALLOC"):
        if variant == "default":
            forced = b.thread_alloc_force if name == "numa01_THREAD_ALLOC" else b.numa01_force
            return "default" if forced else "no_force"
        if variant == "inverse_bind" and b.inverse_both:
            return "inverse_bind_both"
    elif name in ("numa02", "numa02_SMT"):
        if variant == "default" and b.numa02_split_init:
            return "split_init"
    return variant


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
        elif variant == "inverse_bind_both":
            mem_mask = m2 if cpu_mask == m1 else m1  # the original source swapped both processes
        for i in range(threads_per_proc):
            if thread_alloc:
                tsize = size // threads_per_proc
                w_off, w_len = tsize * i, tsize
            else:
                w_off, w_len = 0, size
            if variant in ("hard_bind", "inverse_bind", "inverse_bind_both"):
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
    bound = variant in ("hard_bind", "inverse_bind", "inverse_bind_both")
    # Thread 0 is main(): zeroes the whole 1 GiB node slice by node slice (BINDMAP; bound per slice
    # with HARD_BIND, and in the January 2012 source without it: split_init), creates the workers
    # and sleeps in pthread_join.
    threads = [Thread(mm=0, init_offset=0, init_len=size, init_passes=1,
                      init_bind_by_slice=bound or variant == "split_init",
                      work_offset=0, work_len=0, work_passes=0)]
    # HARD_BIND puts thread i on the node of the i-th share of the CPUs (i // threads-per-node on an
    # even machine; on an uneven one, the node that owns CPU i * n_cpus / nthreads, so no thread is
    # bound to a node without CPUs)
    cpu_node = machine.cpu_node()
    for i in range(nthreads):
        node = None
        if variant == "hard_bind":
            node = int(cpu_node[i * machine.n_cpus // nthreads]) if machine.uneven else min(n - 1, i // per_node)
        elif variant in ("inverse_bind", "inverse_bind_both"):
            j = nthreads - 1 - i
            node = int(cpu_node[j * machine.n_cpus // nthreads]) if machine.uneven else min(n - 1, j // per_node)
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


def make_benchmark(name: str, machine: Machine, variant: str = "default", force_node: int = 0,
                   build: str = "latest") -> Workload:
    if name not in BENCHMARKS:
        raise ConfigError(f"workload={name!r}: must be one of {sorted(BENCHMARKS)}")
    if variant not in VARIANTS:
        raise ConfigError(f"workload.variant={variant!r}: must be one of {list(VARIANTS)}")
    return BENCHMARKS[name](machine, build_variant(name, variant, build), force_node).validate(machine.n_nodes)
