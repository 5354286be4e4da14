"""``perf bench numa mem`` (tools/perf/bench/numa.c, Ingo Molnar, December 2012) as a workload family.

What perf runs (read in the 3.10-era source and today's; differences noted where they matter):

- ``nr_proc`` (-p) processes x ``nr_threads`` (-t) threads. Each process allocates ``mb_proc``
  (-P) MiB shared by its threads; each thread allocates ``mb_thread`` (-T) MiB of its own; one
  ``mb_global`` (-G) MiB buffer is shared by every process. Sizes are not divided: every process
  gets the whole -P, every thread the whole -T.
- Every buffer is filled when allocated (init_random is always on; ``-z`` has no effect), so the
  allocating task first-touches all of it: the process buffer by the process (before it creates
  its threads, under thread 0's binding), each thread buffer by its thread. With ``init_cpu0``
  (-0) every allocation runs bound to node 0, so all memory starts on node 0; afterwards the task
  mempolicy is reset to MPOL_DEFAULT (which also drops a -M binding, as perf does).
- One loop of a thread walks the global, the process and its thread buffer once each; loops repeat
  until ``nr_loops`` (-l, unlimited by default), until ``nr_secs`` (-s) have passed, or, with
  ``measure_convergence`` (-m), until the system converged. The ``-a`` suite uses ``-Z``: the walk
  is bzero() (8 KiB blocks at LFSR-random offsets; one sweep with --no-data_rand_walk).
- Bindings: ``cpus`` (-C) and ``memnodes`` (-M) bind the first tasks, in process-major order, to a
  CPU and an MPOL_BIND node (list syntax ``A``, ``A-B``, ``#step``, ``xN`` repeat, ``_len`` for CPUs);
  later tasks stay unbound; an id past the machine makes perf print "Test not applicable".
- Convergence (calc_convergence): once a second, from the CPU each thread last ran on, the system is
  converged when every process has all its threads on one node (several processes may share a
  node; where the memory is does not enter). The latency perf prints is the time from the start
  barrier to that check.

How it is modelled here (choices [I]):

- Each process is one mm: the process buffer at [0, mb_proc), thread i's buffer after it. A loop is
  one write pass over the thread's buffer and one over the process buffer (a two-region cycle,
  base.py), so a thread writes mb_proc + mb_thread MiB per loop, as perf counts it. The random
  8 KiB bzero()s are modelled as one sequential write stream over the buffer (the same bytes per
  loop, the same pages touched once per loop on average).
- The global buffer is not simulated: the engine's processes share no memory across mms. Every
  ``-a`` case leaves it at perf's default 1 MiB, 0.05-0.4 % of a loop's bytes; ``mb_global`` above
  1 MiB is refused.
- Threads start their loops when their own buffer is written (perf holds them at a barrier until
  every task is initialised): perf's figures are taken from the first report row at which every
  thread is past its initialisation (``tasks_working`` = all), which stands for the barrier.
- A CPU in -C binds the thread to that CPU's node (this model places threads on nodes); CPU
  numbers are the simulator's (node-major blocks, as perf 3.10's bind_to_node assumed).
- ``nr_secs`` and ``measure_convergence`` end perf's measurement, not the simulation: the threads'
  loops run until ``nr_loops`` (unlimited: 10^6) and the run until ``sim.duration_s``; the figures
  (``perf_figures``) cover the window [barrier, barrier + nr_secs], cut at the convergence check
  with -m. A simulation shorter than the window is flagged (``perf_cut_short``). After perf's stop
  flag each thread finishes its current loop; not modelled (runtime-min = runtime-max then).
- ``thp`` (--thp): 1 (MADV_HUGEPAGE) follows the machine's THP setting; -1 (MADV_NOHUGEPAGE, the
  ``-NOTHP`` cases) needs THP off for the whole run (``transparent_hugepage.enabled=0``, which
  ``validate_run`` checks): every buffer of these cases is private anonymous memory.

Variants (from the policy): ``hard_bind`` binds CPUs and memory from allocation on to perf's
converged layout: a process whose threads fit in a node stays on one node, the processes spread
evenly over the nodes (8x4 on 4 nodes: two per node); a larger process takes an equal block of
nodes (``_bind_node``); ``inverse_bind`` binds its memory half the machine away. Both replace the case's
-C, -M and -0 (a real ``numactl --membind`` would lose to perf's own -0 mempolicy: these are the
reference layouts, not a literal numactl run).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ..errors import ConfigError
from ..machine import Machine
from .base import Process, Thread, Workload
from .common import MiB, bind_masks

F = "perf_bench_numa"
UNLIMITED_LOOPS = 10**6  # perf's -l default is (u32)-1; the run stops at sim.duration_s long before

# the -a suite's option macros (numa.c)
_BW_RAM = "-s 20 -zZq --thp 1 --no-data_rand_walk"
_CONV = "-s 100 -zZ0qcm --thp 1"
_BW = "-s 20 -zZ0q --thp 1"
_NOTHP = " --thp -1"

# name -> perf arguments after "mem", in the suite's order (3.10's names; today's renames in ALIASES)
CASES: dict[str, str] = {
    "RAM-bw-local": "-p 1 -t 1 -P 1024 -C 0 -M 0 " + _BW_RAM,
    "RAM-bw-local-NOTHP": "-p 1 -t 1 -P 1024 -C 0 -M 0 " + _BW_RAM + _NOTHP,
    "RAM-bw-remote": "-p 1 -t 1 -P 1024 -C 0 -M 1 " + _BW_RAM,
    "RAM-bw-local-2x": "-p 2 -t 1 -P 1024 -C 0,2 -M 0x2 " + _BW_RAM,
    "RAM-bw-remote-2x": "-p 2 -t 1 -P 1024 -C 0,2 -M 1x2 " + _BW_RAM,
    "RAM-bw-cross": "-p 2 -t 1 -P 1024 -C 0,8 -M 1,0 " + _BW_RAM,
    "1x3-convergence": "-p 1 -t 3 -P 512 " + _CONV,
    "1x4-convergence": "-p 1 -t 4 -P 512 " + _CONV,
    "1x6-convergence": "-p 1 -t 6 -P 1020 " + _CONV,
    # 3.10 passed -p 3 here (a typo, fixed later): the name's 2 processes, as perf runs it today
    "2x3-convergence": "-p 2 -t 3 -P 1020 " + _CONV,
    "3x3-convergence": "-p 3 -t 3 -P 1020 " + _CONV,
    "4x4-convergence": "-p 4 -t 4 -P 512 " + _CONV,
    "4x4-convergence-NOTHP": "-p 4 -t 4 -P 512 " + _CONV + _NOTHP,
    "4x6-convergence": "-p 4 -t 6 -P 1020 " + _CONV,
    "4x8-convergence": "-p 4 -t 8 -P 512 " + _CONV,
    "8x4-convergence": "-p 8 -t 4 -P 512 " + _CONV,
    "8x4-convergence-NOTHP": "-p 8 -t 4 -P 512 " + _CONV + _NOTHP,
    "3x1-convergence": "-p 3 -t 1 -P 512 " + _CONV,
    "4x1-convergence": "-p 4 -t 1 -P 512 " + _CONV,
    "8x1-convergence": "-p 8 -t 1 -P 512 " + _CONV,
    "16x1-convergence": "-p 16 -t 1 -P 256 " + _CONV,
    "32x1-convergence": "-p 32 -t 1 -P 128 " + _CONV,
    "2x1-bw-process": "-p 2 -t 1 -P 1024 " + _BW,
    "3x1-bw-process": "-p 3 -t 1 -P 1024 " + _BW,
    "4x1-bw-process": "-p 4 -t 1 -P 1024 " + _BW,
    "8x1-bw-process": "-p 8 -t 1 -P 512 " + _BW,
    "8x1-bw-process-NOTHP": "-p 8 -t 1 -P 512 " + _BW + _NOTHP,
    "16x1-bw-process": "-p 16 -t 1 -P 256 " + _BW,
    "4x1-bw-thread": "-p 1 -t 4 -T 256 " + _BW,
    "8x1-bw-thread": "-p 1 -t 8 -T 256 " + _BW,
    "16x1-bw-thread": "-p 1 -t 16 -T 128 " + _BW,
    "32x1-bw-thread": "-p 1 -t 32 -T 64 " + _BW,
    "2x3-bw-thread": "-p 2 -t 3 -P 512 " + _BW,
    "4x4-bw-thread": "-p 4 -t 4 -P 512 " + _BW,
    "4x6-bw-thread": "-p 4 -t 6 -P 512 " + _BW,
    "4x8-bw-thread": "-p 4 -t 8 -P 512 " + _BW,
    "4x8-bw-thread-NOTHP": "-p 4 -t 8 -P 512 " + _BW + _NOTHP,
    "3x3-bw-thread": "-p 3 -t 3 -P 512 " + _BW,
    "5x5-bw-thread": "-p 5 -t 5 -P 512 " + _BW,
    "2x16-bw-thread": "-p 2 -t 16 -P 512 " + _BW,
    "1x32-bw-thread": "-p 1 -t 32 -P 2048 " + _BW,
    "numa02-bw": "-p 1 -t 32 -T 32 " + _BW,
    "numa02-bw-NOTHP": "-p 1 -t 32 -T 32 " + _BW + _NOTHP,
    "numa01-bw-thread": "-p 2 -t 16 -T 192 " + _BW,
    "numa01-bw-thread-NOTHP": "-p 2 -t 16 -T 192 " + _BW + _NOTHP,
}
# today's perf renamed the layout cases (same arguments); its "1x32-bw-thread" is 3.10's
# "32x1-bw-thread" (-T 64), while 3.10's "1x32-bw-thread" (-P 2048) is today's "1x32-bw-process":
# the names here are 3.10's
ALIASES = {
    "1x4-bw-thread": "4x1-bw-thread", "1x8-bw-thread": "8x1-bw-thread", "1x16-bw-thread": "16x1-bw-thread",
    "2x3-bw-process": "2x3-bw-thread", "4x4-bw-process": "4x4-bw-thread",
    "4x6-bw-process": "4x6-bw-thread", "4x8-bw-process": "4x8-bw-thread",
    "4x8-bw-process-NOTHP": "4x8-bw-thread-NOTHP", "3x3-bw-process": "3x3-bw-thread",
    "5x5-bw-process": "5x5-bw-thread", "2x16-bw-process": "2x16-bw-thread", "1x32-bw-process": "1x32-bw-thread",
}

PARAMS = ("case", "nr_proc", "nr_threads", "mb_global", "mb_proc", "mb_thread", "nr_loops", "nr_secs", "thp",
          "init_cpu0", "cpus", "memnodes", "measure_convergence", "data_rand_walk")


@dataclass(frozen=True)
class PerfBench:
    """perf's parameters as the figures need them (carried by the Workload: ``Workload.bench``)."""
    case: str
    nr_proc: int
    nr_threads: int
    mb_global: float
    mb_proc: float
    mb_thread: float
    nr_loops: int  # 0: unlimited
    nr_secs: int  # 0: no time limit
    thp: int
    init_cpu0: bool
    measure_convergence: bool
    data_rand_walk: bool


# perf options: short, long -> (parameter, kind)
_OPTS = {
    "-p": ("nr_proc", int), "--nr_proc": ("nr_proc", int), "-t": ("nr_threads", int),
    "--nr_threads": ("nr_threads", int), "-G": ("mb_global", float), "--mb_global": ("mb_global", float),
    "-P": ("mb_proc", float), "--mb_proc": ("mb_proc", float), "-T": ("mb_thread", float),
    "--mb_thread": ("mb_thread", float), "-l": ("nr_loops", int), "--nr_loops": ("nr_loops", int),
    "-s": ("nr_secs", int), "--nr_secs": ("nr_secs", int), "-H": ("thp", int), "--thp": ("thp", int),
    "-C": ("cpus", str), "--cpus": ("cpus", str), "-M": ("memnodes", str), "--memnodes": ("memnodes", str),
}
_FLAGS = {"z": None, "Z": None, "q": None, "c": None, "0": "init_cpu0", "m": "measure_convergence", "S": None,
          "I": None}
_LONG_FLAGS = {"--no-data_rand_walk": ("data_rand_walk", False), "--data_rand_walk": ("data_rand_walk", True),
               "--measure_convergence": ("measure_convergence", True), "--init_cpu0": ("init_cpu0", True)}
# options that change what perf does in ways this model does not have: refused by name
_REFUSED = {"-L": "mb_proc_locked (work under the process mutex)", "-u": "usleep (sleeps under the process lock)",
            "-x": "perturb_secs (forced migrations of thread 0)", "-R": "data_reads", "-W": "data_writes",
            "-B": "data_backwards", "-r": "data_rand_walk as a flag"}


def parse_args(args: str) -> dict:
    """perf bench numa mem's arguments (after "mem") -> this family's parameters."""
    out: dict = {}
    toks = shlex.split(args)
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok in _OPTS:
            name, kind = _OPTS[tok]
            if i + 1 >= len(toks):
                raise ConfigError(f"perf bench numa {tok}: needs a value ({F})")
            raw = toks[i + 1].strip()
            try:
                out[name] = kind(raw)
            except ValueError:
                raise ConfigError(f"perf bench numa {tok} {raw!r}: must be {kind.__name__} ({F})") from None
            i += 2
        elif tok in _LONG_FLAGS:
            k, v = _LONG_FLAGS[tok]
            out[k] = v
            i += 1
        elif tok[:2] in _REFUSED:
            raise ConfigError(f"perf bench numa {tok}: {_REFUSED[tok[:2]]} is not modelled ({F})")
        elif tok.startswith("-") and not tok.startswith("--") and all(c in _FLAGS for c in tok[1:]):
            for c in tok[1:]:
                if _FLAGS[c]:
                    out[_FLAGS[c]] = True
            i += 1
        else:
            raise ConfigError(f"perf bench numa {tok!r}: unknown option ({F}; known: "
                              f"{' '.join(sorted(set(_OPTS) | set(_LONG_FLAGS)))}, flags -{''.join(_FLAGS)})")
    return out


def parse_list(s: str, limit: int, what: str, lengths: bool) -> list[tuple[int, int]]:
    """perf's -C / -M list: comma-separated ``A[-B][#step][_len][xN]`` -> (first id, length) per
    task, in order. An id >= ``limit`` is perf's "Test not applicable"."""
    out = []
    for tok in str(s).split(","):
        tok = tok.strip()
        if not tok:
            continue
        # A, then markers in any order: -B (range end), #S (step), _L (CPUs each), xN (repeat)
        m = re.fullmatch(r"(\d+)((?:[-#_x]\d+)*)", tok)
        if not m:
            raise ConfigError(f"perf bench numa {what} {s!r}: {tok!r} is not A[-B][#step][_len][xN] ({F})")
        lo = int(m.group(1))
        marks = dict(re.findall(r"([-#_x])(\d+)", m.group(2)))
        hi, step, ln, rep = (int(marks.get(k, d)) for k, d in (("-", lo), ("#", 1), ("_", 1), ("x", 1)))
        if "_" in marks and not lengths:
            raise ConfigError(f"perf bench numa {what} {s!r}: '_len' is for CPU lists only ({F})")
        if hi < lo or step < 1 or ln < 1 or rep < 1:
            raise ConfigError(f"perf bench numa {what} {s!r}: a range must be A-B with A <= B, step, "
                              f"length and repeat >= 1 ({F})")
        for first in range(lo, hi + 1, step):
            if first + ln > limit:
                raise ConfigError(f"perf bench numa {what} {s!r}: Test not applicable, system has only "
                                  f"{limit} {'CPUs' if lengths else 'nodes'} ({F})")
            out.extend([(first, ln)] * rep)
    return out


def _resolve_case(case):
    if case in (None, "custom"):
        return None
    name = ALIASES.get(case, case)
    if name not in CASES:
        raise ConfigError(f"workload.case={case!r}: must be one of perf bench numa -a's cases "
                          f"({', '.join(CASES)}), an alias ({', '.join(ALIASES)}) or custom ({F})")
    return name


def perf_bench_numa(machine: Machine, variant: str = "default", case: str | None = "4x4-convergence",
                    nr_proc=None, nr_threads=None, mb_global=None, mb_proc=None, mb_thread=None, nr_loops=None,
                    nr_secs=None, thp=None, init_cpu0=None, cpus=None, memnodes=None, measure_convergence=None,
                    data_rand_walk=None) -> Workload:
    """A ``-a`` case by name (``case``), with any of perf's parameters changed, or (``case="custom"``)
    perf's own defaults (-p 1 -t 1 -G 1 -s 5) plus the parameters given."""
    name = _resolve_case(case)
    p = dict(nr_proc=1, nr_threads=1, mb_global=1.0, mb_proc=0.0, mb_thread=0.0, nr_loops=0, nr_secs=5, thp=0,
             init_cpu0=False, cpus=None, memnodes=None, measure_convergence=False, data_rand_walk=True)
    if name:
        p.update(parse_args(CASES[name]))
    given = dict(nr_proc=nr_proc, nr_threads=nr_threads, mb_global=mb_global, mb_proc=mb_proc, mb_thread=mb_thread,
                 nr_loops=nr_loops, nr_secs=nr_secs, thp=thp, init_cpu0=init_cpu0, cpus=cpus, memnodes=memnodes,
                 measure_convergence=measure_convergence, data_rand_walk=data_rand_walk)
    p.update({k: v for k, v in given.items() if v is not None})
    _check(p)
    n = machine.n_nodes
    node_of_cpu = machine.cpu_node()
    id_to_index = {nid: i for i, nid in enumerate(machine.node_ids or range(n))}
    cpu_bind = parse_list(p["cpus"], machine.n_cpus, "-C", True) if p["cpus"] else []
    mem_bind = []
    for first, _ in (parse_list(p["memnodes"], max(id_to_index) + 1, "-M", False) if p["memnodes"] else []):
        if first not in id_to_index:
            raise ConfigError(f"perf bench numa -M {p['memnodes']!r}: node {first} does not exist ({F})")
        mem_bind.append(id_to_index[first])
    P, T = p["nr_proc"], p["nr_threads"]
    proc_b, thr_b = int(round(p["mb_proc"] * MiB)), int(round(p["mb_thread"] * MiB))
    total = P * T
    procs, ths = [], []
    for pr in range(P):
        procs.append(Process(mem_bytes=proc_b + T * thr_b, name=f"process{pr}"))
        for t in range(T):
            g = pr * T + t
            cpu_mask = 0
            if g < len(cpu_bind):
                first, ln = cpu_bind[g]
                for c in range(first, first + ln):
                    cpu_mask |= 1 << int(node_of_cpu[c])
            mem_mask = 1 << mem_bind[g] if g < len(mem_bind) else 0
            # first touch: the process buffer by the process under thread 0's binding (here thread
            # 0 writes it before the others start), each thread buffer by its thread; -0 binds
            # every allocation to node 0 and resets the mempolicy to MPOL_DEFAULT after it
            init_mask = 1 if p["init_cpu0"] else mem_mask
            work_mask = 0 if p["init_cpu0"] else mem_mask
            if variant in ("hard_bind", "inverse_bind"):
                # the reference layouts from the start: CPUs and memory bound from allocation on,
                # replacing -C, -M and -0 (perf's -0 would override a numactl --membind)
                cpu_mask, mem_mask = bind_masks(_bind_node(pr, g, P, total, T, machine), n, variant)
                init_mask = work_mask = mem_mask
            own_off = proc_b + t * thr_b
            if t == 0:
                init_off, init_len = 0, proc_b + thr_b
            else:
                init_off, init_len = own_off, thr_b
            loops = p["nr_loops"] or UNLIMITED_LOOPS
            if thr_b and proc_b:  # one loop: the thread's buffer, then the process buffer
                work = dict(work_offset=own_off, work_len=thr_b, work_passes=2 * loops, alt_offset=0,
                            alt_len=proc_b, cycle_work=1, cycle_alt=1)
            elif thr_b:
                work = dict(work_offset=own_off, work_len=thr_b, work_passes=loops)
            else:
                work = dict(work_offset=0, work_len=proc_b, work_passes=loops)
            ths.append(Thread(mm=pr, **work, init_offset=init_off, init_len=init_len,
                              init_passes=1 if init_len else 0, init_bind_mask=init_mask if init_len else 0,
                              work_bind_mask=work_mask, cpus_allowed=cpu_mask,
                              start_after=pr * T if t > 0 and proc_b else -1))
    bench = PerfBench(case=name or "custom", nr_proc=P, nr_threads=T, mb_global=float(p["mb_global"]),
                      mb_proc=float(p["mb_proc"]), mb_thread=float(p["mb_thread"]), nr_loops=p["nr_loops"],
                      nr_secs=p["nr_secs"], thp=p["thp"], init_cpu0=bool(p["init_cpu0"]),
                      measure_convergence=bool(p["measure_convergence"]), data_rand_walk=bool(p["data_rand_walk"]))
    desc = (f"perf bench numa mem {name or 'custom'} ({variant}): {P} x {T} threads, -P {p['mb_proc']:g} "
            f"-T {p['mb_thread']:g} MiB, -s {p['nr_secs']}" + (" -m" if p["measure_convergence"] else "")
            + (" -0" if p["init_cpu0"] else ""))
    return Workload(name=f"{F}.{name or 'custom'}", processes=tuple(procs), threads=tuple(ths), description=desc,
                    bench=bench)


def _bind_node(pr: int, g: int, P: int, total: int, T: int, machine: Machine) -> int:
    """The node of thread g (of process pr) in the binding variants: perf's converged layout.
    A process whose threads fit in a node's CPUs stays on one node, the processes spread evenly
    over the nodes with CPUs (8x4 on 4 nodes: two per node); a larger process takes an equal block
    of nodes (2x16 on 4 nodes of 8 CPUs: two each)."""
    cpus = machine.cpus_of_nodes()
    nodes = [i for i, c in enumerate(cpus.tolist()) if c > 0]
    if T <= min(int(cpus[i]) for i in nodes):
        return nodes[pr * len(nodes) // P]
    return nodes[g * len(nodes) // total]


def _check(p: dict) -> None:
    for k in ("nr_proc", "nr_threads"):
        if not isinstance(p[k], int) or isinstance(p[k], bool) or not 1 <= p[k] <= 4096:
            raise ConfigError(f"workload.{k}={p[k]!r}: must be an integer in [1, 4096] ({F})")
    for k in ("nr_loops", "nr_secs"):
        if not isinstance(p[k], int) or isinstance(p[k], bool) or not 0 <= p[k] < 2**20:
            raise ConfigError(f"workload.{k}={p[k]!r}: must be an integer in [0, 2^20), 0 = no limit ({F})")
    for k in ("mb_proc", "mb_thread", "mb_global"):
        if not isinstance(p[k], (int, float)) or isinstance(p[k], bool) or not 0 <= p[k] <= 2**20:
            raise ConfigError(f"workload.{k}={p[k]!r}: must be a number of MiB in [0, 2^20] ({F})")
    if p["mb_global"] > 1:
        raise ConfigError(f"workload.mb_global={p['mb_global']!r}: must be in [0, 1] MiB (perf's default 1): "
                          f"memory shared across processes is not modelled ({F})")
    if p["mb_proc"] * MiB < 4096 and p["mb_thread"] * MiB < 4096:
        raise ConfigError(f"workload.mb_proc/mb_thread=({p['mb_proc']!r}, {p['mb_thread']!r}): one of them must "
                          f"be at least 4 KiB (-P or -T) ({F})")
    if p["thp"] not in (-1, 0, 1):
        raise ConfigError(f"workload.thp={p['thp']!r}: must be -1 (MADV_NOHUGEPAGE), 0 or 1 (MADV_HUGEPAGE) ({F})")
    if p["nr_loops"] == 0 and p["nr_secs"] == 0 and not p["measure_convergence"]:
        raise ConfigError(f"workload.nr_secs=0: with nr_loops=0 the run has no end; give one of them ({F})")


__all__ = ["CASES", "ALIASES", "PARAMS", "PerfBench", "parse_args", "parse_list", "perf_bench_numa"]
