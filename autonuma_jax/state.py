"""The machine state: one pytree of arrays per configuration (the kernel's data, spec §2).

Pages (per page unit, spec §2.1 page_autonuma + page tables), tasks (task_autonuma + scheduling),
mms (mm_autonuma), knuma_scand, the per-node knuma_migrated queues, the scheduler's per-CPU
timers, khugepaged, and the counters that feed the time series.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .pytree import pytree_dataclass
from .rng import initial_scand_wake, initial_speed
from .static import Static

i8, u8, i32 = jnp.int8, jnp.uint8, jnp.int32

# pmd_flags bits
PMD_NUMA = 1  # pmd_numa: armed NUMA hinting fault at pmd level
PMD_THP = 2  # the pmd maps a transparent huge page (2 MiB units only)

# task phases
T_NEW, T_INIT, T_WORK, T_DONE = 0, 1, 2, 3

# knuma_scand phases
SCAND_RUN, SCAND_SLEEP, SCAND_PASS_SLEEP1, SCAND_PASS_SLEEP2 = 0, 1, 2, 3


@pytree_dataclass
class Pages:
    node: jnp.ndarray  # [U] i8: node holding the unit, -1 = not present (never touched / freed)
    last_nid: jnp.ndarray  # [U] i8: autonuma_last_nid
    migrate_nid: jnp.ndarray  # [U] i8: autonuma_migrate_nid (-1 = not queued)
    migrate_seq: jnp.ndarray  # [U] i32: position of the live entry in its (dst, src) queue ring
    pte_numa: jnp.ndarray  # [U] u8 in 4 KiB pte mode, [0] otherwise
    pmd_flags: jnp.ndarray  # [P] u8: PMD_NUMA | PMD_THP


@pytree_dataclass
class Tasks:
    phase: jnp.ndarray  # [T] i32: T_NEW / T_INIT / T_WORK / T_DONE
    cpu: jnp.ndarray  # [T] i32, -1 when not running
    pos: jnp.ndarray  # [T] unit offset inside the current region
    frac: jnp.ndarray  # [T] Q16 fraction of unit `pos` already written
    passes: jnp.ndarray  # [T] passes completed in the current phase
    debt_ns: jnp.ndarray  # [T] CPU time owed to kernel work (faults, daemons, exchanges)
    exec_us: jnp.ndarray  # [T] CPU time received (CFS picks the smallest)
    speed_q: jnp.ndarray  # [T] current speed, per mille of nominal in Q12 (AR(1), see rng.py)
    finish_tick: jnp.ndarray  # [T] tick the task finished its work, -1 before
    task_numa_fault: jnp.ndarray  # [T, N]
    task_numa_fault_tot: jnp.ndarray  # [T]
    task_numa_fault_pass: jnp.ndarray  # [T]
    task_selected_nid: jnp.ndarray  # [T] -1 = none


@pytree_dataclass
class Mms:
    alive: jnp.ndarray  # [M] bool: on knuma_scand's list (created, not exited)
    exited: jnp.ndarray  # [M] bool
    mm_numa_fault: jnp.ndarray  # [M, N] snapshot of the last completed scan
    mm_numa_fault_tot: jnp.ndarray  # [M]
    mm_numa_fault_pass: jnp.ndarray  # [M]
    node_pages: jnp.ndarray  # [M, N] 4 KiB pages of each process on each node (the nmstat view)
    queued_pages: jnp.ndarray  # [M, N] pages of each process queued towards each node
    generation: jnp.ndarray  # [M] processes of the slot that exited and were replaced (respawns done)
    exits_with_stats: jnp.ndarray  # [M] processes of the slot that exited with mm_numa_fault_tot > 0


@pytree_dataclass
class Scand:
    phase: jnp.ndarray  # SCAND_*
    wake_tick: jnp.ndarray
    mm: jnp.ndarray  # current mm, -1 = between passes (knuma_scand_data.mm == NULL)
    addr: jnp.ndarray  # resume address: pmd offset inside the mm
    progress: jnp.ndarray  # main-loop progress since the last sleep
    pass_progress: jnp.ndarray
    call_progress: jnp.ndarray  # progress of the knumad_do_scan call in flight, 0 = none
    fault_tmp: jnp.ndarray  # [N] mm_numa_fault_tmp
    full_scans: jnp.ndarray
    pages_scanned: jnp.ndarray


@pytree_dataclass
class Migrated:
    nr_migrate_pages: jnp.ndarray  # [N] autonuma_nr_migrate_pages of each destination
    waiting: jnp.ndarray  # [N] bool: knuma_migrated<N> waits for a wake-up (queue was empty)
    wake_tick: jnp.ndarray  # [N] end of its sleep when not waiting
    ring: jnp.ndarray  # [R, cap] page unit of each entry, R = (dst, src) pairs
    head: jnp.ndarray  # [R] position of the oldest entry
    tail: jnp.ndarray  # [R] next position to fill
    pages_migrated: jnp.ndarray  # sysfs knuma_migrated/pages_migrated


@pytree_dataclass
class Sched:
    next_balance: jnp.ndarray  # [C] tick of each CPU's next sched_autonuma_balance
    pending: jnp.ndarray  # [C] bool: rq->autonuma_balance, an exchange decided this tick


@pytree_dataclass
class Memsys:
    """The memory system's utilisations at the end of the last tick (memsys.py): the warm start of
    this tick's fixed point, which is searched within ``memsys.WARM_WINDOW`` of them."""
    rho_mc: jnp.ndarray  # [N] Q16 utilisation of each memory controller
    rho_link: jnp.ndarray  # [N, N] Q16 utilisation of each link a -> b (diagonal unused)


@pytree_dataclass
class Khugepaged:
    cursor: jnp.ndarray  # next pmd to look at
    wake_tick: jnp.ndarray


@pytree_dataclass
class Numab:
    """Upstream NUMA balancing (balancenuma 3.8, numa_balancing 3.13): task-context scanning, fault
    statistics, preferred node and numa groups, migration rate limit (spec §12)."""
    scan_period: jnp.ndarray  # [T] numa_scan_period, ms
    node_stamp: jnp.ndarray  # [T] task runtime (us) when the scan period last elapsed
    scan_seq: jnp.ndarray  # [T] numa_scan_seq last seen by task_numa_placement
    faults: jnp.ndarray  # [T, N, 2] numa_faults[nid][private], decayed per scan sequence
    faults_buf: jnp.ndarray  # [T, N, 2] numa_faults_buffer: this sequence's faults
    locality: jnp.ndarray  # [T, 2] numa_faults_locality: remote, local faults this window
    preferred: jnp.ndarray  # [T] numa_preferred_nid (-1 = none)
    migrate_retry: jnp.ndarray  # [T] tick of the next task_numa_migrate attempt (0 = none)
    group: jnp.ndarray  # [T] numa_group, as the index of its first member (a task alone: itself)
    home_seq: jnp.ndarray  # [T] sched_numa: numa_migrate_seq, the scan sequence of the last home change
    shared: jnp.ndarray  # [T] numa_core: numa_shared, -1 non-NUMA, 0 private, 1 shared
    strength: jnp.ndarray  # [T] numa_core: convergence strength (1024 x max-node faults / faults)
    next_scan: jnp.ndarray  # [M] mm->numa_next_scan, tick
    scan_offset: jnp.ndarray  # [M] mm->numa_scan_offset, unit inside the mm
    mm_scan_seq: jnp.ndarray  # [M] mm->numa_scan_seq
    first_nid: jnp.ndarray  # [M] 3.8 mm->first_nid: -2 not yet run, node, -1 active
    next_reset: jnp.ndarray  # [M] 3.8 mm->numa_next_reset, tick
    rl_end: jnp.ndarray  # [N] end of the migration rate-limit window of each destination, tick
    rl_pages: jnp.ndarray  # [N] pages migrated into the node in the current window


@pytree_dataclass
class Counters:
    """Event counters. ``acc`` is reset at each report row; ``tot`` runs over the whole run."""
    local_kib: jnp.ndarray  # KiB written to the thread's own node (per interval; 0 in ``tot``)
    total_kib: jnp.ndarray
    local_mib: jnp.ndarray  # the same in MiB over the whole run (``tot`` only; int32 KiB would wrap)
    total_mib: jnp.ndarray
    kib_rem: jnp.ndarray  # [2] KiB not yet counted in local_mib / total_mib
    hinting_faults: jnp.ndarray  # fault events (pmd or pte)
    fault_pages: jnp.ndarray  # 4 KiB pages handled by numa_hinting_fault
    pages_queued: jnp.ndarray
    pages_migrated: jnp.ndarray
    exchanges: jnp.ndarray  # tasks moved by sched_autonuma_balance
    noise_moves: jnp.ndarray
    lb_moves: jnp.ndarray  # CFS idle/periodic balancing pulls
    queue_overflows: jnp.ndarray
    capped_ticks: jnp.ndarray  # a thread hit the units_per_tick capacity
    oom_pages: jnp.ndarray  # allocations that found no room (over-committed on the preferred node)
    overhead_us: jnp.ndarray  # [5] scan, fault, migrate, exchange, collapse (us)
    overhead_rem_ns: jnp.ndarray  # [5] sub-microsecond remainders
    first_touch_us: jnp.ndarray
    # the kernel's /proc/vmstat NUMA counters (vmstat.py: count_vm_numa_events; 4 KiB pages but the
    # fault counts): pages made pte_numa/pmd_numa (huge pmds count 512), huge pmds among them,
    # hinting faults on a page already on the faulting CPU's node, and the allocator's zone
    # statistics (first touch and migration targets: hit = on the preferred node, local = on the
    # allocating CPU's node)
    numa_pte_updates: jnp.ndarray
    numa_huge_pte_updates: jnp.ndarray
    numa_hint_faults_local: jnp.ndarray
    numa_hit: jnp.ndarray
    numa_miss: jnp.ndarray
    numa_local: jnp.ndarray
    numa_other: jnp.ndarray


VMSTAT_COUNTERS = ("numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults_local", "numa_hit", "numa_miss",
                   "numa_local", "numa_other")
N_OVERHEAD = 5
OV_SCAN, OV_FAULT, OV_MIGRATE, OV_EXCHANGE, OV_COLLAPSE = range(5)


@pytree_dataclass
class State:
    tick: jnp.ndarray
    free_pages: jnp.ndarray  # [N]
    pages: Pages
    tasks: Tasks
    mms: Mms
    scand: Scand
    migrated: Migrated
    sched: Sched
    khugepaged: Khugepaged
    memsys: Memsys
    numab: Numab
    acc: Counters
    tot: Counters


def zero_counters() -> Counters:
    z = jnp.zeros((), i32)
    return Counters(local_kib=z, total_kib=z, local_mib=z, total_mib=z, kib_rem=jnp.zeros(2, i32), hinting_faults=z, fault_pages=z, pages_queued=z, pages_migrated=z,
                    exchanges=z, noise_moves=z, lb_moves=z, queue_overflows=z, capped_ticks=z, oom_pages=z,
                    overhead_us=jnp.zeros(N_OVERHEAD, i32), overhead_rem_ns=jnp.zeros(N_OVERHEAD, i32),
                    first_touch_us=z, **{k: z for k in VMSTAT_COUNTERS})


def init_state(static: Static, params) -> State:
    """Boot: no memory touched, no task started, every daemon asleep or waiting (knuma_scand until a
    seeded point of its cycle). Pure and vmappable."""
    N, C, T, M, U = static.n_nodes, static.n_cpus, static.n_tasks, static.n_mms, static.n_units
    mp = params.machine
    z = jnp.zeros((), i32)
    pages = Pages(
        node=jnp.full(U, -1, i8), last_nid=jnp.full(U, -1, i8), migrate_nid=jnp.full(U, -1, i8),
        migrate_seq=jnp.full(U, -1, i32),  # also last_cpupid of the upstream policies: -1 = unset
        pte_numa=jnp.zeros(U if static.pte_faults else 0, u8),
        pmd_flags=jnp.zeros(static.n_pmds, u8),
    )
    tasks = Tasks(
        phase=jnp.zeros(T, i32), cpu=jnp.full(T, -1, i32), pos=jnp.zeros(T, i32), frac=jnp.zeros(T, i32),
        passes=jnp.zeros(T, i32), debt_ns=jnp.zeros(T, i32), exec_us=jnp.zeros(T, i32),
        speed_q=initial_speed(params.seed, T, params.knobs.sched.speed_jitter_permille),
        finish_tick=jnp.full(T, -1, i32), task_numa_fault=jnp.zeros((T, N), i32),
        task_numa_fault_tot=jnp.zeros(T, i32), task_numa_fault_pass=jnp.zeros(T, i32),
        task_selected_nid=jnp.full(T, -1, i32),
    )
    mms = Mms(
        alive=jnp.ones(M, bool), exited=jnp.zeros(M, bool), mm_numa_fault=jnp.zeros((M, N), i32),
        mm_numa_fault_tot=jnp.zeros(M, i32), mm_numa_fault_pass=jnp.zeros(M, i32),
        node_pages=jnp.zeros((M, N), i32), queued_pages=jnp.zeros((M, N), i32),
        generation=jnp.zeros(M, i32), exits_with_stats=jnp.zeros(M, i32),
    )
    # knuma_scand has been running since boot: it sleeps until a random point of its pass cycle
    scand_wake = initial_scand_wake(params.seed, 2 * params.derived.pass_sleep_half_ticks)
    scand = Scand(phase=jnp.asarray(SCAND_SLEEP, i32), wake_tick=scand_wake, mm=jnp.asarray(-1, i32), addr=z,
                  progress=z,
                  pass_progress=z, call_progress=z, fault_tmp=jnp.zeros(N, i32), full_scans=z, pages_scanned=z)
    migrated = Migrated(
        nr_migrate_pages=jnp.zeros(N, i32), waiting=jnp.ones(N, bool), wake_tick=jnp.zeros(N, i32),
        ring=jnp.zeros((static.n_rings, static.ring_capacity), i32), head=jnp.zeros(static.n_rings, i32),
        tail=jnp.zeros(static.n_rings, i32), pages_migrated=z,
    )
    bt = params.derived.balance_ticks
    # Stagger the CPUs' balance timers evenly over one interval, as their ticks are not aligned.
    next_balance = 1 + (jnp.arange(C, dtype=i32) * bt) // C
    sched = Sched(next_balance=next_balance.astype(i32), pending=jnp.zeros(C, bool))
    numab = Numab(
        scan_period=jnp.zeros(T, i32), node_stamp=jnp.zeros(T, i32), scan_seq=jnp.zeros(T, i32),
        faults=jnp.zeros((T, N, 2), i32), faults_buf=jnp.zeros((T, N, 2), i32), locality=jnp.zeros((T, 2), i32),
        preferred=jnp.full(T, -1, i32), migrate_retry=jnp.zeros(T, i32), group=jnp.arange(T, dtype=i32),
        home_seq=jnp.full(T, -1, i32), shared=jnp.full(T, -1, i32), strength=jnp.zeros(T, i32),
        next_scan=jnp.zeros(M, i32), scan_offset=jnp.zeros(M, i32), mm_scan_seq=jnp.zeros(M, i32),
        first_nid=jnp.full(M, -2, i32), next_reset=jnp.zeros(M, i32), rl_end=jnp.zeros(N, i32),
        rl_pages=jnp.zeros(N, i32))
    return State(tick=z, free_pages=mp.node_pages - 0, pages=pages, tasks=tasks, mms=mms, scand=scand,
                 migrated=migrated, sched=sched, khugepaged=Khugepaged(cursor=z, wake_tick=z),
                 memsys=Memsys(rho_mc=jnp.zeros(N, i32), rho_link=jnp.zeros((N, N), i32)), numab=numab,
                 acc=zero_counters(), tot=zero_counters())


def bytes_per_unit(static: Static) -> float:
    """Bytes of state per page unit (per-page arrays + the queue rings, amortised)."""
    per_unit = 1 + 1 + 1 + 4 + (1 if static.pte_faults else 0) + 1 / static.units_per_pmd
    rings = static.n_rings * static.ring_capacity * 4 / static.n_units
    return per_unit + rings
