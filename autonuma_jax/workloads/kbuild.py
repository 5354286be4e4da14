"""A kernel build (``make -jN``, spec §10.3) [I]: a stream of short-lived processes.

A no-regression check: thousands of short processes (each exec resets the task and mm
statistics), small working sets, nothing long-lived to place; AutoNUMA must cost ~0 % against
the vanilla kernel, its costs being knuma_scand's scanning and the hinting faults. Model: ``jobs``
process *slots* (make's job slots, ``Process.respawns``); each runs its share of ``processes``
compiler processes one after the other, each a single thread writing its ``mib`` MiB working set
``passes`` times, exiting, and being replaced by a fresh exec in the same slot. The pass counts
differ by up to +-``spread`` between slots so that the slots do not exit in step. With the
default knobs a process lives a fraction of a second while knuma_scand visits a given mm about
once per ``scan_sleep_pass_millisecs``, so most processes exit before knuma_scand ever published
their statistics (``mm_numa_fault_tot == 0``: the balancer never acts on them).

Limitation [I]: the engine's threads only stream memory; a compiler's mostly in-cache CPU work is
modelled as streaming over a small working set.

Parameters (slot count from the machine):

- ``jobs``: slots, make's -j (default: one per CPU);
- ``processes``: compiler processes over the whole build (default 2000), spread evenly over the
  slots (the first ``processes mod jobs`` slots run one more);
- ``mib``: working set of one process (default 16);
- ``passes``: write passes over it per process (default 24, before the spread);
- ``spread``: relative spread of the pass counts between slots (default 0.25).

Work volume: sum over processes of passes x mib. Variants: ``hard_bind`` binds slot i (CPUs and
memory) to node i mod nodes; ``inverse_bind`` binds its memory half the machine away.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..machine import Machine
from .base import Process, Thread, Workload
from .common import MiB, bind_masks, fraction, positive_int

PARAMS = ("jobs", "processes", "mib", "passes", "spread")


def slot_passes(passes: int, jobs: int, spread: float) -> list[int]:
    """Pass count of each slot: ``passes`` scaled by 1 + spread x (a deterministic, evenly spread
    value in [-1, 1) per slot; slot order scrambled so that neighbours differ)."""
    out = []
    for i in range(jobs):
        u = ((i * 7919) % jobs) / jobs * 2 - 1 if jobs > 1 else 0.0
        out.append(max(1, round(passes * (1 + spread * u))))
    return out


def kbuild(machine: Machine, variant: str = "default", jobs: int | None = None, processes: int = 2000,
           mib: int = 16, passes: int = 24, spread: float = 0.25) -> Workload:
    n = machine.n_nodes
    jobs = positive_int("kbuild", "jobs", machine.n_cpus if jobs is None else jobs)
    processes = positive_int("kbuild", "processes", processes)
    mib = positive_int("kbuild", "mib", mib)
    passes = positive_int("kbuild", "passes", passes)
    spread = fraction("kbuild", "spread", spread, hi_open=True)
    if processes < jobs:
        raise ConfigError(f"workload.processes={processes}: must be >= workload.jobs ({jobs}) (kbuild)")
    size = mib * MiB
    per, extra = divmod(processes, jobs)
    procs, ths = [], []
    for i, p in enumerate(slot_passes(passes, jobs, spread)):
        count = per + (1 if i < extra else 0)
        procs.append(Process(mem_bytes=size, respawns=count - 1, name=f"make-slot[{i}]"))
        cpu, mem = bind_masks(i, n, variant)
        ths.append(Thread(mm=i, work_offset=0, work_len=size, work_passes=p, work_bind_mask=mem, cpus_allowed=cpu))
    return Workload(name="kbuild", processes=tuple(procs), threads=tuple(ths),
                    description=f"kbuild ({variant}): make -j{jobs}, {processes} processes x {mib} MiB, "
                                f"~{passes} passes each")
