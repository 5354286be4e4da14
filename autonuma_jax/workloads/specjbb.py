"""SPECjbb2005-like multi-instance JVM runs (spec §10.2) [I: the access pattern].

The 27 cover letter ran several JVMs side by side on a 4-node machine: 4 instances (one per node)
and 8 (2x overcommitted), each ~3 GB resident; the metric is bops, higher is better, and the
per-node memory tables show each JVM's memory collecting on one node. Model: each instance is a
process whose heap (``heap_mib``) all its threads share; each thread (a warehouse) writes its own
slice of the heap (its objects and allocation buffers) ``gc_every`` times, then sweeps the whole
heap once (a garbage collection: the collector walks and compacts every live object of the
heap), and repeats that ``gc_cycles`` times. There is no sharing between instances. The heap is
first touched by the threads themselves (no pre-touch), so each JVM starts spread over the nodes
its threads were forked on.

Parameters (sizes and thread counts from the machine):

- ``instances``: JVMs (default: one per node);
- ``threads``: threads (warehouses) per JVM (default: CPUs / instances, at least 1);
- ``heap_mib``: heap per JVM (default 3072, the ~3 GB per instance of the cover letter's tables);
- ``gc_every``: passes over the thread's own slice between two whole-heap sweeps (default:
  ``threads``, so half of each thread's bytes go to heap-wide sweeps: a sweep is ``threads``
  slices long);
- ``gc_cycles``: sweeps per thread (default 10).

Fixed work volume: each thread writes gc_cycles x (gc_every x heap / threads + heap) bytes, so a
run measures the time to do a fixed amount of work: **runtime ~ 1 / throughput**, and bops of a
policy relative to another is the inverse ratio of their runtimes (SPECjbb fixes the time and
counts the work instead; with every thread doing the same work the two agree).
Variants: ``hard_bind`` binds JVM i (CPUs and memory) to node i mod nodes, as ``numactl`` does in
the published multi-instance runs; ``inverse_bind`` binds its memory to the node half the
machine away.
"""
from __future__ import annotations

from ..machine import Machine
from .base import Process, Thread, Workload
from .common import MiB, bind_masks, positive_int, slices

PARAMS = ("instances", "threads", "heap_mib", "gc_every", "gc_cycles")


def specjbb(machine: Machine, variant: str = "default", instances: int | None = None, threads: int | None = None,
            heap_mib: int = 3072, gc_every: int | None = None, gc_cycles: int = 10) -> Workload:
    n = machine.n_nodes
    instances = positive_int("specjbb", "instances", n if instances is None else instances)
    threads = positive_int("specjbb", "threads", max(1, machine.n_cpus // instances) if threads is None else threads)
    heap_mib = positive_int("specjbb", "heap_mib", heap_mib)
    gc_every = positive_int("specjbb", "gc_every", threads if gc_every is None else gc_every)
    gc_cycles = positive_int("specjbb", "gc_cycles", gc_cycles)
    heap = heap_mib * MiB
    procs, ths = [], []
    for i in range(instances):
        procs.append(Process(mem_bytes=heap, name=f"jvm[{i}]"))
        cpu, mem = bind_masks(i, n, variant)
        for off, ln in slices(heap, threads):
            ths.append(Thread(mm=i, work_offset=off, work_len=ln, work_passes=gc_cycles * (gc_every + 1),
                              alt_offset=0, alt_len=heap, cycle_work=gc_every, cycle_alt=1,
                              work_bind_mask=mem, cpus_allowed=cpu))
    return Workload(name="specjbb", processes=tuple(procs), threads=tuple(ths),
                    description=f"specjbb ({variant}): {instances} JVMs x {threads} threads x {heap_mib} MiB heap, "
                                f"{gc_cycles} x ({gc_every} slice passes + 1 heap sweep)")
