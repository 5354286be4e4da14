"""A parametric workload for your own studies: processes x threads, private/shared mix, hot set.

Each process has ``mib`` MiB and ``threads`` threads. Its memory is laid out as a *shared region*
(the first ``shared_size`` of it) followed by one *private slice* per thread (the rest, split
evenly). Every thread writes in passes (``bzero`` streams, as everywhere in this simulator):

- ``shared`` = 0: only its private slice (numa02 / numa01_THREAD_ALLOC-like; the whole process
  memory is private slices);
- ``shared`` = 1: only the shared region, which is then the whole process memory (numa01-like);
- 0 < ``shared`` < 1: it alternates, ``a`` passes over its private slice then ``b`` passes over the
  shared region, with b / (a + b) the closest fraction to ``shared`` with a + b <= 32: ``shared``
  is the fraction of *passes* that go to the shared region.

Hot set (``hot`` > 0, only with ``shared`` 0 or 1): the thread's region (its slice, or the shared
region) has a hot sub-region, its first ``hot_size`` fraction; the thread alternates a passes over
the hot part and b passes over the cold rest, with a, b <= 64 chosen so that the fraction of
*bytes written* that go to the hot part is closest to ``hot``. (A thread cycles between two
regions, so a hot set and a private/shared mix cannot be combined in one process.)

Volume: each thread writes ``passes`` x (mib / threads) MiB in all, whatever the mix, so runs with
different ``shared`` / ``hot`` do the same work (a pass over the shared region counts for
``threads`` slice passes).

Start: ``init`` = ``first_touch`` (default: no init phase; each page lands where its first writer
runs) or ``main``: thread 0 of each process first writes the whole process memory once (numa02's
main thread: it all starts on one node), the other threads start after it.

Parameters: ``processes`` (default 2), ``threads`` (per process; default CPUs / processes),
``mib`` (per process; default 512), ``passes`` (default 100), ``shared`` (default 0.0),
``shared_size`` (default 0.5; only used when 0 < shared < 1), ``hot`` (default 0.0), ``hot_size``
(default 0.1), ``init`` (default first_touch).
Variants: ``hard_bind`` puts the threads, in process order, in equal blocks on the nodes (thread
g of P x T on node g x nodes / (P x T); CPUs and memory bound there); ``inverse_bind`` binds each
one's memory half the machine away.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..machine import Machine
from .base import Process, Thread, Workload
from .common import MiB, bind_masks, fraction, positive_int, ratio, slices, weighted_ratio

PARAMS = ("processes", "threads", "mib", "passes", "shared", "shared_size", "hot", "hot_size", "init")
F = "parametric"


def parametric(machine: Machine, variant: str = "default", processes: int = 2, threads: int | None = None,
               mib: int = 512, passes: int = 100, shared: float = 0.0, shared_size: float = 0.5, hot: float = 0.0,
               hot_size: float = 0.1, init: str = "first_touch") -> Workload:
    n = machine.n_nodes
    processes = positive_int(F, "processes", processes)
    threads = positive_int(F, "threads", max(1, machine.n_cpus // processes) if threads is None else threads)
    mib = positive_int(F, "mib", mib)
    passes = positive_int(F, "passes", passes)
    shared = fraction(F, "shared", shared)
    shared_size = fraction(F, "shared_size", shared_size, lo_open=True, hi_open=True)
    hot = fraction(F, "hot", hot, hi_open=True)
    hot_size = fraction(F, "hot_size", hot_size, lo_open=True, hi_open=True)
    if init not in ("first_touch", "main"):
        raise ConfigError(f"workload.init={init!r}: must be first_touch or main ({F})")
    if hot > 0 and 0 < shared < 1:
        raise ConfigError(f"workload.hot={hot}: a hot set needs workload.shared 0 or 1, not {shared} "
                          f"(a thread cycles between two regions) ({F})")
    size = mib * MiB
    page = 4096
    if size // page < 2 * threads:
        raise ConfigError(f"workload.mib={mib}: too small for {threads} threads ({F})")
    volume = passes * (size // threads)  # bytes per thread
    if shared == 1:
        shared_len = size
    elif shared == 0:
        shared_len = 0
    else:
        shared_len = max(page, int(size * shared_size) // page * page)
    priv = slices(size - shared_len, threads, start=shared_len) if shared < 1 else [(0, size)] * threads
    procs, ths = [], []
    total = processes * threads
    for p in range(processes):
        procs.append(Process(mem_bytes=size, name=f"parametric[{p}]"))
        for i in range(threads):
            g = p * threads + i
            cpu, mem = bind_masks(g * n // total, n, variant)
            if 0 < shared < 1:
                (w_off, w_len), (b_off, b_len) = priv[i], (0, shared_len)
                a, b = ratio(shared)
            elif hot > 0:
                r_off, r_len = priv[i] if shared == 0 else (0, size)
                h_len = max(1, int(r_len * hot_size))
                if r_len - h_len < 1:
                    raise ConfigError(f"workload.hot_size={hot_size}: leaves no cold part ({F})")
                (w_off, w_len), (b_off, b_len) = (r_off, h_len), (r_off + h_len, r_len - h_len)
                a, b = weighted_ratio(hot, h_len, b_len)
            else:
                (w_off, w_len), (b_off, b_len), a, b = priv[i], (0, 0), 1, 0
            cycle_bytes = a * w_len + b * b_len
            n_pass = max(1, round(volume * (a + b) / cycle_bytes))
            main = init == "main" and i == 0
            ths.append(Thread(mm=p, work_offset=w_off, work_len=w_len, work_passes=n_pass, work_bind_mask=mem,
                              alt_offset=b_off, alt_len=b_len, cycle_work=a, cycle_alt=b, cpus_allowed=cpu,
                              init_offset=0, init_len=size if main else 0, init_passes=1 if main else 0,
                              init_bind_mask=mem if main else 0,
                              start_after=p * threads if init == "main" and i > 0 else -1))
    return Workload(name="parametric", processes=tuple(procs), threads=tuple(ths),
                    description=f"parametric ({variant}): {processes} x {threads} threads x {mib} MiB, "
                                f"shared={shared:g}, hot={hot:g}/{hot_size:g}, {passes} slice passes, init={init}")
