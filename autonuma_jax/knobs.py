"""Tuning knobs: a pytree of traced values (what ``vmap`` sweeps), defaults = kernel defaults.

Field names follow the sysfs paths of AutoNUMA24 (``/sys/kernel/mm/autonuma/...``, spec §7) and
the THP / khugepaged paths (``/sys/kernel/mm/transparent_hugepage/...``). Knobs the kernel does
not expose (event costs, scheduler noise, the balancer period) are modelling assumptions [I]
and say so. Changing a knob value never recompiles; only the static shapes (see ``static.py``)
do.

Every knob has an allowed range here (``RANGES``), checked before any compile (``validate``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from .errors import ConfigError

U32 = 2**31 - 1  # the kernel accepts 0..UINT_MAX; int32 arrays cap us at INT_MAX


@dataclass(frozen=True)
class KnumaScand:
    """/sys/kernel/mm/autonuma/knuma_scand/ (spec §3.1, §7).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``scan_sleep_millisecs``: ms knuma_scand sleeps between two chunks of ``pages_to_scan``;
      [0, 3600000].
    - ``scan_sleep_pass_millisecs``: ms it pauses after each full pass over every process;
      [0, 3600000].
    - ``pages_to_scan``: 4 KiB pages (progress units) scanned per chunk, between two sleeps (32768:
      128 MiB); [1, 16777216].
    - ``pmd``: flag: 1 arms NUMA hinting faults at pmd level (one fault per 2 MiB of page table, the
      x86 default), 0 pte by pte (needs ``sim.page_unit="4K"`` unless THP is on); 0 or 1.
    - ``mm_working_set``: flag, DEBUG_VM: working-set estimation of the per-process statistics;
      0 or 1.
    """
    scan_sleep_millisecs: int = 100
    scan_sleep_pass_millisecs: int = 10000
    pages_to_scan: int = 32768  # 128 MiB of 4 KiB pages per chunk
    pmd: int = 1  # arm at pmd level (x86 default)
    mm_working_set: int = 1  # DEBUG_VM only in the kernel


@dataclass(frozen=True)
class KnumaMigrated:
    """/sys/kernel/mm/autonuma/knuma_migrated/ (spec §5.1, §7).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``migrate_sleep_millisecs``: ms knuma_migrated sleeps between two batches; [0, 3600000].
    - ``pages_to_migrate``: 4 KiB pages: the batch size, and the queue length that wakes the daemon;
      [1, 16777216].
    - ``defer``: flag, DEBUG_VM: wake the daemons only at the end of a pass; 0 or 1.
    - ``allow_first_fault``: flag, DEBUG_VM: the first fault on a fresh page passes the ``last_nid``
      filter; 0 or 1.
    """
    migrate_sleep_millisecs: int = 100
    pages_to_migrate: int = 32768  # batch size and wake-up threshold
    defer: int = 0  # DEBUG_VM only
    allow_first_fault: int = 1  # DEBUG_VM only; code default 1 (spec §14.1)


@dataclass(frozen=True)
class Scheduler:
    """/sys/kernel/mm/autonuma/scheduler/ (DEBUG_VM only, spec §7).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``load_balance_strict``: flag: refuse non-idle CFS load balancing against the NUMA affinity;
      0 or 1.
    - ``reset``: flag: reset (1) or inherit (0) a task's NUMA statistics at fork/clone; 0 or 1.
    """
    load_balance_strict: int = 0
    reset: int = 1


@dataclass(frozen=True)
class Autonuma:
    """/sys/kernel/mm/autonuma/.

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``enabled``: flag, the master switch (0: knuma_scand sleeps, faults do nothing, the balancer
      clears ``task_selected_nid``); 0 or 1.
    - ``debug``: flag: printk verbosity in the kernel; no effect on the simulation; 0 or 1.
    - ``knuma_scand``: group ``KnumaScand``.
    - ``knuma_migrated``: group ``KnumaMigrated``.
    - ``scheduler``: group ``Scheduler``.
    - ``balance_interval_millisecs``: ms [I]: period of ``sched_autonuma_balance`` on a busy CPU
      (HZ/10); [1, 60000].
    """
    enabled: int = 1
    debug: int = 0  # printk verbosity in the kernel; no effect on the simulation
    knuma_scand: KnumaScand = field(default_factory=KnumaScand)
    knuma_migrated: KnumaMigrated = field(default_factory=KnumaMigrated)
    scheduler: Scheduler = field(default_factory=Scheduler)
    # [I] sched_autonuma_balance runs from SCHED_SOFTIRQ of each busy CPU; the busy balance
    # interval is clamped to max_load_balance_interval = HZ/10 (spec §6.1): 100 ms.
    balance_interval_millisecs: int = 100


@dataclass(frozen=True)
class Khugepaged:
    """/sys/kernel/mm/transparent_hugepage/khugepaged/ (AutoNUMA boosts it, spec §4.5).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``pages_to_scan``: 4 KiB pages khugepaged looks at per wake-up (HPAGE_PMD_NR * 8);
      [1, 16777216].
    - ``scan_sleep_millisecs``: ms it sleeps between two scans (AutoNUMA24 lowers it from 10000);
      [0, 3600000].
    - ``alloc_sleep_millisecs``: ms it sleeps after a failed huge page allocation; kept for its
      sysfs path, the engine does not read it; [0, 3600000].
    """
    pages_to_scan: int = 4096  # HPAGE_PMD_NR * 8
    scan_sleep_millisecs: int = 100  # 10000 upstream; AutoNUMA24 sets 100 when it is possible
    alloc_sleep_millisecs: int = 10000


@dataclass(frozen=True)
class TransparentHugepage:
    """/sys/kernel/mm/transparent_hugepage/ (only meaningful with 2 MiB page units).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``enabled``: flag: 1 = ``always``, anonymous memory is THP (2 MiB page units only); 0 = never;
      0 or 1.
    - ``khugepaged``: group ``Khugepaged``.
    """
    enabled: int = 1  # "always" (the Fedora/RHEL default of 2012) -> anonymous memory is THP
    khugepaged: Khugepaged = field(default_factory=Khugepaged)


@dataclass(frozen=True)
class Balancenuma:
    """Linux 3.8 "balancenuma" sysctls (/proc/sys/kernel/numa_balancing_*) and the migration rate
    limit of mm/migrate.c (spec §12.1).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``numa_balancing_scan_delay_ms``: ms of CPU time a new task runs before its first scan;
      [0, 3600000].
    - ``numa_balancing_scan_period_min_ms``: ms, the shortest period between two scans of a task (<=
      ``numa_balancing_scan_period_max_ms``); [1, 3600000].
    - ``numa_balancing_scan_period_max_ms``: ms, the longest one; [1, 3600000].
    - ``numa_balancing_scan_period_reset``: ms: the period returns to the minimum this often;
      [1, 3600000].
    - ``numa_balancing_scan_size_mb``: MiB of address space armed per scan; [1, 65536].
    - ``migrate_interval_millisecs``: ms, the migration rate-limit window; [1, 3600000].
    - ``ratelimit_pages``: 4 KiB pages migrated into one destination node per window (32768: 128
      MB); [0, 16777216].
    - ``numa_force``: flag, sched feature NUMA_FORCE: scan before the process left its first node;
      0 or 1.
    """
    numa_balancing_scan_delay_ms: int = 1000
    numa_balancing_scan_period_min_ms: int = 100
    numa_balancing_scan_period_max_ms: int = 5000
    numa_balancing_scan_period_reset: int = 60000
    numa_balancing_scan_size_mb: int = 256
    migrate_interval_millisecs: int = 100  # rate-limit window
    ratelimit_pages: int = 32768  # 128 MB per window per destination node
    numa_force: int = 0  # sched feature NUMA_FORCE: scan before the process left its first node


@dataclass(frozen=True)
class NumaBalancing:
    """Linux 3.13 automatic NUMA balancing sysctls and constants (spec §12.2). Not modelled:
    numa_balancing_settle_count and numa_balancing_migrate_deferred (3.13-only; removed in 3.14).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``numa_balancing``: flag, ``kernel.numa_balancing``; 0 or 1.
    - ``numa_balancing_scan_delay_ms``: ms of CPU time a new task runs before its first scan;
      [0, 3600000].
    - ``numa_balancing_scan_period_min_ms``: ms, the shortest period between two scans of a task (<=
      ``numa_balancing_scan_period_max_ms``); [1, 3600000].
    - ``numa_balancing_scan_period_max_ms``: ms, the longest one; [1, 3600000].
    - ``numa_balancing_scan_size_mb``: MiB of address space armed per scan; [1, 65536].
    - ``migrate_interval_millisecs``: ms, the migration rate-limit window; [1, 3600000].
    - ``ratelimit_pages``: 4 KiB pages migrated into one destination node per window (32768: 128
      MB); [0, 16777216].
    - ``period_threshold``: tenths (NUMA_PERIOD_THRESHOLD): at or above this many local faults in
      10, the scan period grows; below, it shrinks; [0, 10].
    - ``imbalance_pct``: percent: the load imbalance ``task_numa_migrate`` accepts for a move (100 +
      (sd_numa imbalance_pct - 100) / 2); [100, 1000].
    - ``migrate_retry_millisecs``: ms [I]: interval of ``numa_migrate_retry`` (HZ in 3.13);
      [1, 3600000].
    """
    numa_balancing: int = 1  # kernel.numa_balancing
    numa_balancing_scan_delay_ms: int = 1000
    numa_balancing_scan_period_min_ms: int = 1000
    numa_balancing_scan_period_max_ms: int = 60000
    numa_balancing_scan_size_mb: int = 256
    migrate_interval_millisecs: int = 100
    ratelimit_pages: int = 32768
    period_threshold: int = 3  # NUMA_PERIOD_THRESHOLD: 3 in 3.13-3.15, 7 from 3.16
    imbalance_pct: int = 112  # 100 + (sd_numa imbalance_pct 125 - 100) / 2
    migrate_retry_millisecs: int = 1000  # numa_migrate_retry interval (HZ in 3.13) [I]


@dataclass(frozen=True)
class SchedNuma:
    """The fault-driven home-node "sched-numa rewrite" (variant B of spec schednuma.md §3, as
    re-posted 25 Oct 2012: B-late). /proc/sys/kernel/sched_numa_* and sched features.

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``sched_numa_scan_period_min_ms``: ms, the shortest period between two scans of a task (<=
      ``sched_numa_scan_period_max_ms``); [1, 3600000].
    - ``sched_numa_scan_period_max_ms``: ms, the longest one; [1, 3600000].
    - ``sched_numa_scan_size_mb``: MiB of address space armed per scan; [1, 65536].
    - ``sched_numa_scan_delay_ms``: ms of CPU time a new task runs before its first scan;
      [0, 3600000].
    - ``sched_numa_settle_count``: scan sequences a home node is kept for (with ``numa_settle``);
      [0, 1000].
    - ``numa_migration``: flag, feature NUMA_MIGRATION: act on the statistics (home node,
      migration); 0 or 1.
    - ``numa_settle``: flag, feature NUMA_SETTLE: keep a home node for ``sched_numa_settle_count``
      scan sequences; 0 or 1.
    - ``balance_interval_millisecs``: ms [I]: how often a busy CPU's load balancer tries the
      NUMA_PULL_BIAS exchange; [1, 60000].
    """
    sched_numa_scan_period_min_ms: int = 100
    sched_numa_scan_period_max_ms: int = 1600
    sched_numa_scan_size_mb: int = 256
    sched_numa_scan_delay_ms: int = 1000
    sched_numa_settle_count: int = 2
    numa_migration: int = 1  # feature NUMA_MIGRATION: act on the statistics (home node, migration)
    numa_settle: int = 1  # feature NUMA_SETTLE: keep a home node for settle_count scan sequences
    # [I] how often a busy CPU's load balancer tries the NUMA_PULL_BIAS exchange
    balance_interval_millisecs: int = 100


@dataclass(frozen=True)
class NumaCore:
    """numa/core "adaptive NUMA affinity", v18 / unified tree v1 (variant C of spec schednuma.md §4,
    /proc/sys/kernel/sched_numa_* and the constants of §4.9).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``sched_numa_scan_delay_ms``: ms of CPU time a new task runs before its first scan;
      [0, 3600000].
    - ``sched_numa_scan_period_min_ms``: ms, the shortest period between two scans of a task (<=
      ``sched_numa_scan_period_max_ms``); [1, 3600000].
    - ``sched_numa_scan_period_max_ms``: ms, the longest one; [1, 3600000].
    - ``sched_numa_scan_size_min_mb``: MiB, the smallest adaptive scan size (<=
      ``sched_numa_scan_size_max_mb``); [1, 65536].
    - ``sched_numa_scan_size_max_mb``: MiB, the largest one; [1, 65536].
    - ``sched_numa_rss_threshold_mb``: MiB: smaller processes are not NUMA candidates (0: off);
      [0, 1048576].
    - ``converged_permille``: per mille: a convergence strength at or above it (900: 921/1024) makes
      the max node the convergence node; [0, 1000].
    - ``placement_interval_millisecs``: ms: task placement runs at least this often; [1, 3600000].
    - ``buddy_quorum``: threads: NUMA_POLICY_MANYBUDDIES interleaves a shared task's pages over the
      nodes running at least this many of its buddies; [1, 4096].
    """
    sched_numa_scan_delay_ms: int = 1000
    sched_numa_scan_period_min_ms: int = 100
    sched_numa_scan_period_max_ms: int = 1600
    sched_numa_scan_size_min_mb: int = 32
    sched_numa_scan_size_max_mb: int = 512
    sched_numa_rss_threshold_mb: int = 128  # smaller processes are not NUMA candidates (0 = off)
    converged_permille: int = 900  # strength >= 921/1024 (= 900 per mille) makes max node the convergence node
    placement_interval_millisecs: int = 1000  # placement at least once per wall-clock second
    buddy_quorum: int = 3  # NUMA_POLICY_MANYBUDDIES: interleave over nodes with >= 3 buddies


@dataclass(frozen=True)
class Costs:
    """CPU cost of each kernel event, ns [I]. Charged to the thread that takes the event (faults,
    first touch, task exchange) or to the threads running on the daemon's node (knuma_migrated
    on its node; knuma_scand and khugepaged, unbound, spread over all running threads).

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``hinting_fault_ns``: ns: trap + pte/pmd fixup + TLB work of one NUMA hinting fault;
      [0, 10000000].
    - ``hinting_fault_per_page_ns``: ns per 4 KiB page ``numa_hinting_fault()`` handles (a pmd
      fault: 512); [0, 100000].
    - ``first_touch_per_page_ns``: ns per 4 KiB page: page fault + clear_page at ~16 GB/s;
      [0, 100000].
    - ``scan_per_pte_ns``: ns per pte knuma_scand visits; [0, 100000].
    - ``scan_per_pmd_ns``: ns per pmd knuma_scand visits (THP or page-table pmd); [0, 1000000].
    - ``scan_tlb_flush_ns``: ns: flush + mmu notifier after each ``knumad_do_scan`` call;
      [0, 10000000].
    - ``migrate_per_page_ns``: ns per 4 KiB page migrated: isolate + unmap + copy (~3 GB/s) + remap;
      [0, 1000000].
    - ``exchange_ns``: ns: ``stop_one_cpu`` move of one task; [0, 100000000].
    - ``collapse_per_page_ns``: ns per 4 KiB page khugepaged copies into a new huge page;
      [0, 1000000].
    """
    hinting_fault_ns: int = 1000  # trap + pte/pmd fixup + TLB work of one NUMA hinting fault
    hinting_fault_per_page_ns: int = 50  # numa_hinting_fault() per 4 KiB page handled (pmd fault: 512)
    first_touch_per_page_ns: int = 250  # page fault + clear_page of a 4 KiB page at ~16 GB/s
    scan_per_pte_ns: int = 10  # knuma_scand: one pte visited
    scan_per_pmd_ns: int = 100  # knuma_scand: one pmd visited (THP or page-table pmd)
    scan_tlb_flush_ns: int = 5000  # flush + mmu notifier after each knumad_do_scan call
    migrate_per_page_ns: int = 2000  # isolate + unmap + 4 KiB copy (~3 GB/s) + remap
    exchange_ns: int = 50000  # stop_one_cpu move of one task
    collapse_per_page_ns: int = 500  # khugepaged copy into a new huge page


@dataclass(frozen=True)
class Sched:
    """The scheduler's noise: what other activity does to the benchmark's threads [I].

    Attributes (unit; allowed range, as ``RANGES`` checks it):
    - ``noise_migrations_per_sec``: moves per second, machine-wide: cross-node moves of a running
      thread caused by other activity (kernel threads, wake-ups, interrupts); [0.0, 10000.0].
    - ``speed_jitter_permille``: per mille: stationary standard deviation of each thread's speed
      around nominal (AR(1)); [0, 400].
    - ``speed_correlation_ms``: ms: correlation time of that wander; [1, 3600000].
    - ``phase_jitter_permille``: per mille of a tick: each thread's accesses within a tick start at
      a random offset in [0, tick * this / 1000); [0, 1000].
    - ``active_balance_millisecs``: ms: Linux 3.6 active balancing pushes at most one running task
      onto an idle node this often (0: never); [0, 3600000].
    """
    # Cross-node moves of a running thread caused by other activity (kernel threads, wake-ups,
    # interrupts), machine-wide. The same value for every policy on a machine; AutoNUMA's CFS
    # hooks refuse a move away from task_selected_nid (spec §6.3).
    noise_migrations_per_sec: float = 0.5
    # Each thread's speed wanders around nominal (AR(1): stationary std in per mille, correlation
    # time in ms): threads streaming the same memory drift apart, which breaks numa01's symmetry by
    # noise, never by thread order (spec §10.1).
    speed_jitter_permille: int = 100
    speed_correlation_ms: int = 2000
    # Each thread's accesses within a tick start at a random offset in [0, tick * this / 1000).
    phase_jitter_permille: int = 250
    # Linux 3.6 active load balancing between nodes (sched/fair.py): at most one running task
    # pushed onto an idle node this often, while another node runs two tasks more. The NUMA
    # domain's idle balance interval (sd_weight ms, doubling on each failure) times the
    # cache_nice_tries + 2 failures before need_active_balance() is about 200 ms. 0 = never.
    active_balance_millisecs: int = 200


@dataclass(frozen=True)
class Knobs:
    """Every tuning knob of one configuration, grouped as the kernel exposes them; the defaults are
    the kernel's. Frozen: change knobs with ``with_overrides(Knobs(), {"autonuma.knuma_scand.pages_to_scan":
    65536})``. A knob's path is its sysfs / sysctl path below the group (``flatten`` lists them all);
    ``RANGES`` holds each one's allowed range and ``validate`` checks them (before any compile),
    plus ``ORDERED``: every ``*_min_*`` knob <= its ``*_max_*`` twin. Integer knobs take ints (an
    integral float is accepted and normalised), 0/1 flags take 0 or 1.

    Every group exists under every policy; where each one acts:

    - ``autonuma`` (``Autonuma``, /sys/kernel/mm/autonuma/): policy ``autonuma24`` (and
      ``scheduler.load_balance_strict`` under ``sched_numa`` and ``numa_core`` too, whose affinity
      steers the same CFS load balancer).
    - ``balancenuma`` (``Balancenuma``): policy ``balancenuma`` (Linux 3.8).
    - ``numa_balancing`` (``NumaBalancing``): policy ``numa_balancing`` (Linux 3.13).
    - ``sched_numa`` (``SchedNuma``): policy ``sched_numa``.
    - ``numa_core`` (``NumaCore``): policy ``numa_core``.
    - ``transparent_hugepage`` (``TransparentHugepage``, /sys/kernel/mm/transparent_hugepage/):
      every policy (2 MiB page units).
    - ``costs`` (``Costs``, [I]): CPU cost of kernel events, ns; every policy.
    - ``sched`` (``Sched``, [I]): the scheduler's noise; every policy.

    [I]: a modelling assumption, not a kernel knob.
    """
    autonuma: Autonuma = field(default_factory=Autonuma)
    balancenuma: Balancenuma = field(default_factory=Balancenuma)
    numa_balancing: NumaBalancing = field(default_factory=NumaBalancing)
    sched_numa: SchedNuma = field(default_factory=SchedNuma)
    numa_core: NumaCore = field(default_factory=NumaCore)
    transparent_hugepage: TransparentHugepage = field(default_factory=TransparentHugepage)
    costs: Costs = field(default_factory=Costs)
    sched: Sched = field(default_factory=Sched)


# ------------------------------------------------------------------------------------------
# ranges: (lo, hi, kind); kind "flag" means 0/1
RANGES: dict[str, tuple] = {
    "autonuma.enabled": (0, 1, "flag"),
    "autonuma.debug": (0, 1, "flag"),
    "autonuma.knuma_scand.scan_sleep_millisecs": (0, 3_600_000, "int"),
    "autonuma.knuma_scand.scan_sleep_pass_millisecs": (0, 3_600_000, "int"),
    "autonuma.knuma_scand.pages_to_scan": (1, 1 << 24, "int"),
    "autonuma.knuma_scand.pmd": (0, 1, "flag"),
    "autonuma.knuma_scand.mm_working_set": (0, 1, "flag"),
    "autonuma.knuma_migrated.migrate_sleep_millisecs": (0, 3_600_000, "int"),
    "autonuma.knuma_migrated.pages_to_migrate": (1, 1 << 24, "int"),
    "autonuma.knuma_migrated.defer": (0, 1, "flag"),
    "autonuma.knuma_migrated.allow_first_fault": (0, 1, "flag"),
    "autonuma.scheduler.load_balance_strict": (0, 1, "flag"),
    "autonuma.scheduler.reset": (0, 1, "flag"),
    "autonuma.balance_interval_millisecs": (1, 60_000, "int"),
    "balancenuma.numa_balancing_scan_delay_ms": (0, 3_600_000, "int"),
    "balancenuma.numa_balancing_scan_period_min_ms": (1, 3_600_000, "int"),
    "balancenuma.numa_balancing_scan_period_max_ms": (1, 3_600_000, "int"),
    "balancenuma.numa_balancing_scan_period_reset": (1, 3_600_000, "int"),
    "balancenuma.numa_balancing_scan_size_mb": (1, 65536, "int"),
    "balancenuma.migrate_interval_millisecs": (1, 3_600_000, "int"),
    "balancenuma.ratelimit_pages": (0, 1 << 24, "int"),
    "balancenuma.numa_force": (0, 1, "flag"),
    "numa_balancing.numa_balancing": (0, 1, "flag"),
    "numa_balancing.numa_balancing_scan_delay_ms": (0, 3_600_000, "int"),
    "numa_balancing.numa_balancing_scan_period_min_ms": (1, 3_600_000, "int"),
    "numa_balancing.numa_balancing_scan_period_max_ms": (1, 3_600_000, "int"),
    "numa_balancing.numa_balancing_scan_size_mb": (1, 65536, "int"),
    "numa_balancing.migrate_interval_millisecs": (1, 3_600_000, "int"),
    "numa_balancing.ratelimit_pages": (0, 1 << 24, "int"),
    "numa_balancing.period_threshold": (0, 10, "int"),
    "numa_balancing.imbalance_pct": (100, 1000, "int"),
    "numa_balancing.migrate_retry_millisecs": (1, 3_600_000, "int"),
    "sched_numa.sched_numa_scan_period_min_ms": (1, 3_600_000, "int"),
    "sched_numa.sched_numa_scan_period_max_ms": (1, 3_600_000, "int"),
    "sched_numa.sched_numa_scan_size_mb": (1, 65536, "int"),
    "sched_numa.sched_numa_scan_delay_ms": (0, 3_600_000, "int"),
    "sched_numa.sched_numa_settle_count": (0, 1000, "int"),
    "sched_numa.numa_migration": (0, 1, "flag"),
    "sched_numa.numa_settle": (0, 1, "flag"),
    "sched_numa.balance_interval_millisecs": (1, 60_000, "int"),
    "numa_core.sched_numa_scan_delay_ms": (0, 3_600_000, "int"),
    "numa_core.sched_numa_scan_period_min_ms": (1, 3_600_000, "int"),
    "numa_core.sched_numa_scan_period_max_ms": (1, 3_600_000, "int"),
    "numa_core.sched_numa_scan_size_min_mb": (1, 65536, "int"),
    "numa_core.sched_numa_scan_size_max_mb": (1, 65536, "int"),
    "numa_core.sched_numa_rss_threshold_mb": (0, 1 << 20, "int"),
    "numa_core.converged_permille": (0, 1000, "int"),
    "numa_core.placement_interval_millisecs": (1, 3_600_000, "int"),
    "numa_core.buddy_quorum": (1, 4096, "int"),
    "transparent_hugepage.enabled": (0, 1, "flag"),
    "transparent_hugepage.khugepaged.pages_to_scan": (1, 1 << 24, "int"),
    "transparent_hugepage.khugepaged.scan_sleep_millisecs": (0, 3_600_000, "int"),
    "transparent_hugepage.khugepaged.alloc_sleep_millisecs": (0, 3_600_000, "int"),
    "costs.hinting_fault_ns": (0, 10_000_000, "int"),
    "costs.hinting_fault_per_page_ns": (0, 100_000, "int"),
    "costs.first_touch_per_page_ns": (0, 100_000, "int"),
    "costs.scan_per_pte_ns": (0, 100_000, "int"),
    "costs.scan_per_pmd_ns": (0, 1_000_000, "int"),
    "costs.scan_tlb_flush_ns": (0, 10_000_000, "int"),
    "costs.migrate_per_page_ns": (0, 1_000_000, "int"),
    "costs.exchange_ns": (0, 100_000_000, "int"),
    "costs.collapse_per_page_ns": (0, 1_000_000, "int"),
    "sched.noise_migrations_per_sec": (0.0, 10_000.0, "float"),
    "sched.speed_jitter_permille": (0, 400, "int"),
    "sched.speed_correlation_ms": (1, 3_600_000, "int"),
    "sched.phase_jitter_permille": (0, 1000, "int"),
    "sched.active_balance_millisecs": (0, 3_600_000, "int"),
}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Knobs dataclass -> {"autonuma.knuma_scand.pages_to_scan": 32768, ...}: every knob under its
    dotted path (the keys of ``RANGES``, the knob columns of the result tables)."""
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(v):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def with_overrides(knobs: Knobs, overrides: dict[str, Any]) -> Knobs:
    """Return ``knobs`` with dotted-path overrides applied; unknown paths are a ConfigError.

    Args:
        knobs: the knobs to start from (``Knobs()``: the kernel defaults); not modified (frozen).
        overrides: knob path -> value, a path as ``flatten`` names it
            (``"autonuma.knuma_scand.pages_to_scan"``: /sys/kernel/mm/autonuma/knuma_scand/pages_to_scan).

    Raises ``ConfigError`` for an unknown path, or a path naming a group rather than a knob. Values
    are not range-checked here: ``validate`` (called by ``simulate`` through ``validate_run``)
    checks every knob against ``RANGES`` before anything compiles.
    """
    for path, value in overrides.items():
        knobs = _set(knobs, path.split("."), value, path)
    return knobs


def _set(obj, parts, value, path):
    names = {f.name for f in fields(obj)}
    if parts[0] not in names:
        raise ConfigError(f"{path}={value!r}: unknown knob (known: {', '.join(sorted(flatten(Knobs())))})")
    if len(parts) == 1:
        if is_dataclass(getattr(obj, parts[0])):
            raise ConfigError(f"{path}={value!r}: is a group, not a knob")
        return replace(obj, **{parts[0]: value})
    return replace(obj, **{parts[0]: _set(getattr(obj, parts[0]), parts[1:], value, path)})


# knob pairs whose first must not exceed the second (the kernel clamps the period between them)
ORDERED = (
    ("balancenuma.numa_balancing_scan_period_min_ms", "balancenuma.numa_balancing_scan_period_max_ms"),
    ("numa_balancing.numa_balancing_scan_period_min_ms", "numa_balancing.numa_balancing_scan_period_max_ms"),
    ("sched_numa.sched_numa_scan_period_min_ms", "sched_numa.sched_numa_scan_period_max_ms"),
    ("numa_core.sched_numa_scan_period_min_ms", "numa_core.sched_numa_scan_period_max_ms"),
    ("numa_core.sched_numa_scan_size_min_mb", "numa_core.sched_numa_scan_size_max_mb"),
)


def validate(knobs: Knobs, where: str = "") -> Knobs:
    """Check every knob's type and range; return the knobs normalised (integral floats of integer
    knobs to int, numbers of float knobs to float), or raise one ConfigError line naming the first
    bad one (``where`` prefixes the field, e.g. "policy." for the command line)."""
    import math
    norm = {}
    for path, value in flatten(knobs).items():
        lo, hi, kind = RANGES[path]
        name = f"{where}{path}"
        if kind == "float":
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
                  and lo <= float(value) <= hi)
            if not ok:
                raise ConfigError(f"{name}={value!r}: must be a number in [{lo}, {hi}]")
            norm[path] = float(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) and not (
                    isinstance(value, float) and math.isfinite(value) and value.is_integer()):
                raise ConfigError(f"{name}={value!r}: must be an integer in [{lo}, {hi}]"
                                  + (" (a 0/1 flag)" if kind == "flag" else ""))
            if not lo <= int(value) <= hi:
                allowed = "0 or 1" if kind == "flag" else f"an integer in [{lo}, {hi}]"
                raise ConfigError(f"{name}={value!r}: must be {allowed}")
            norm[path] = int(value)
    for a, b in ORDERED:
        if norm[a] > norm[b]:
            raise ConfigError(f"{where}{a}={norm[a]!r}: must be <= {where}{b} ({norm[b]!r})")
    changed = {k: v for k, v in norm.items() if type(v) is not type(_get(knobs, k)) or v != _get(knobs, k)}
    return with_overrides(knobs, changed) if changed else knobs


def _get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


# ------------------------------------------------------------------------------------------
# The knobs each policy reads, as the engine does (params.build_params and _upstream_derived,
# tick.py, policies/*.py, sched/fair.py): a knob path, or a group prefix ending in a dot. The
# costs, sched and transparent_hugepage groups are read under every policy (COMMON_KNOBS);
# hard_bind and inverse_bind run on the `none` kernel, which reads nothing else.
COMMON_KNOBS = ("costs.", "sched.", "transparent_hugepage.")
POLICY_KNOBS = {
    "none": (),
    "hard_bind": (),
    "inverse_bind": (),
    "autonuma24": ("autonuma.",),
    "balancenuma": ("balancenuma.",),
    "numa_balancing": ("numa_balancing.",),
    # CFS's load balancer applies load_balance_strict wherever task_selected_nid steers it, which
    # sched_numa's home node and numa_core's affinity do too (tick.py _affinity_on, fair.load_balance)
    "sched_numa": ("sched_numa.", "autonuma.scheduler.load_balance_strict"),
    "numa_core": ("numa_core.", "autonuma.scheduler.load_balance_strict"),
}
# Read by no configuration: autonuma.debug is printk verbosity in the kernel, nothing the
# simulation models; khugepaged's alloc_sleep_millisecs paces retries after a failed huge page
# allocation, which the model never has (knobs.py keeps both for their sysfs paths).
NO_EFFECT_KNOBS = ("autonuma.debug", "transparent_hugepage.khugepaged.alloc_sleep_millisecs")


def policy_reads(policy: str, knob: str) -> bool:
    """Whether a configuration of ``policy`` reads the knob at dotted path ``knob``."""
    if knob in NO_EFFECT_KNOBS:
        return False
    return any(knob == k or (k.endswith(".") and knob.startswith(k))
               for k in COMMON_KNOBS + POLICY_KNOBS.get(policy, ()))
