"""STREAM instances (spec §10.4; John McCalpin's STREAM benchmark).

Andrea ran 1/4/8/16/32 STREAM instances on a 4-node machine (PASS if within -10 % / +5 % of the
hard bindings); Peter Zijlstra's example ran 48 copies of ~230 MB. Each instance is one process
with its own arrays (``mib`` MiB), run by ``threads`` threads (1 = the serial STREAM; more = the
OpenMP build, each thread streaming its own contiguous slice under ``schedule(static)``). Every
thread first initialises its slice (one write pass: STREAM's init loop runs in the same parallel
schedule, so each slice is first-touched by the thread that later streams it), then makes
``passes`` write passes over it. One STREAM iteration (Copy, Scale, Add, Triad) moves 10 array
sizes, i.e. 10/3 of the instance's memory, so the default 100 passes are ~30 iterations (NTIMES).

Parameters (all documented defaults; sizes and thread counts from the machine):

- ``instances``: processes (default: one per CPU, as Peter's 48 copies on 48 CPUs);
- ``threads``: threads per instance (default 1);
- ``mib``: MiB of arrays per instance (default 230);
- ``passes``: write passes over each thread's slice after the init pass (default 100).

Work volume per thread: (1 + passes) x mib / threads MiB. Variants: ``hard_bind`` binds instance i
(CPUs and memory) to node i mod nodes; ``inverse_bind`` keeps its CPUs there and binds its memory
to the node half the machine away (``common.bind_masks``).
"""
from __future__ import annotations

from ..machine import Machine
from .base import Process, Thread, Workload
from .common import MiB, bind_masks, positive_int, slices

PARAMS = ("instances", "threads", "mib", "passes")


def stream(machine: Machine, variant: str = "default", instances: int | None = None, threads: int = 1,
           mib: int = 230, passes: int = 100) -> Workload:
    n = machine.n_nodes
    threads = positive_int("stream", "threads", threads)
    if instances is None:
        instances = max(1, machine.n_cpus // threads)
    instances = positive_int("stream", "instances", instances)
    mib = positive_int("stream", "mib", mib)
    passes = positive_int("stream", "passes", passes)
    size = mib * MiB
    procs, ths = [], []
    for i in range(instances):
        procs.append(Process(mem_bytes=size, name=f"stream[{i}]"))
        cpu, mem = bind_masks(i, n, variant)
        for off, ln in slices(size, threads):
            ths.append(Thread(mm=i, init_offset=off, init_len=ln, init_passes=1, init_bind_mask=mem,
                              work_offset=off, work_len=ln, work_passes=passes, work_bind_mask=mem,
                              cpus_allowed=cpu))
    return Workload(name="stream", processes=tuple(procs), threads=tuple(ths),
                    description=f"stream ({variant}): {instances} instances x {threads} threads x {mib} MiB, "
                                f"1 + {passes} passes")
