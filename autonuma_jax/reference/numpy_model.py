"""A slow, obvious reference model of one configuration, in plain Python and NumPy.

It implements the same model as ``autonuma_jax.tick.step`` - the same phases in the same order,
the same integer arithmetic, the same float32 products and quotients (floored at once) - but the
obvious way: loops over tasks, CPUs, page units, fault events in time order and queue entries, so
that it can be read against the spec (``shared/spec/autonuma24.md``, quoted as §x.y). It is an
oracle, not a transcription of the vectorised engine:

- the knuma_migrated queues are real FIFO lists per (destination, source) pair, from which pages
  are removed when they are dequeued (the engine keeps rings with lazily discarded dead entries);
- a freed page is reset (not present, ``last_nid`` and ``migrate_nid`` -1, unqueued, spec §2.1);
- the allocation rounds of one tick are loops over requests, nodes and rounds;
- every knuma_scand, knuma_migrated, khugepaged and balancer step is a sequential loop.

Randomness: the same draws as the engine, from ``autonuma_jax.rng`` (jax), converted to NumPy.

Time model and modelling choices that the spec leaves open (the tick, the daemons' timers, the
bandwidth and contention model, the CFS noise and load balancing, fork placement, the settling
of concurrent ``sched_autonuma_balance`` decisions, the page unit, the per-tick scan window) are
those documented in the engine's modules and ARCHITECTURE.md; they are restated below where they
are implemented.

Where the engine was found to disagree with the spec, this model follows the spec. Each known
disagreement can be switched to the engine's behaviour with a *quirk* (``QUIRKS``), so that a
lockstep test can still check everything else while the engine is being fixed.

State values are Python ints (no int32 wrap-around); the engine's int32 counters agree until they
overflow.
"""
from __future__ import annotations

import functools
from collections import Counter
from types import SimpleNamespace

import numpy as np

from ..config import POLICY_AUTONUMA24
from ..state import (PMD_NUMA, PMD_THP, SCAND_PASS_SLEEP1, SCAND_PASS_SLEEP2, SCAND_RUN, SCAND_SLEEP, T_DONE,
                     T_INIT, T_NEW, T_WORK)

F32 = np.float32
AUTONUMA_BALANCE_SCALE = 1000
HPAGE_PMD_NR = 512

COUNTER_FIELDS = ("local_kib", "total_kib", "local_mib", "total_mib", "kib_rem", "hinting_faults", "fault_pages", "pages_queued", "pages_migrated",
                  "exchanges", "noise_moves", "lb_moves", "queue_overflows", "capped_ticks", "oom_pages",
                  "overhead_us", "overhead_rem_ns", "first_touch_us", "numa_pte_updates", "numa_huge_pte_updates",
                  "numa_hint_faults_local", "numa_hit", "numa_miss", "numa_local", "numa_other")

# Known disagreements between the engine and the spec (or the engine's own contract): name ->
# description. The reference follows the spec unless a quirk is switched on, in which case it
# reproduces the engine's behaviour, so that a lockstep test can check everything else while the
# engine is being fixed.
QUIRKS: dict = {}


def _floor(x) -> int:
    """floor() of a float32 value, as an int (the engine's floor_i32)."""
    return int(np.floor(x))


def _q16_part(ns: int, q: int) -> int:
    """floor(ns * q / 65536) in float32, in the engine's order of operations (ops.q16_part)."""
    return _floor(F32(ns) * F32(q) * F32(1.0 / 65536.0))


def _permille(f: int, tot: int) -> int:
    """1000 * f / tot (kernel unsigned long arithmetic; a per-node value above the total raises the total).

    Exact; the engine shifts both operands right once the total reaches 2^21 pages (8 GiB).
    """
    tot = max(tot, f)
    return (f * AUTONUMA_BALANCE_SCALE) // tot if tot > 0 else 0


def _first_argmax(values) -> int:
    best = 0
    for i, v in enumerate(values):
        if v > values[best]:
            best = i
    return best


@functools.lru_cache(maxsize=None)
def _jitted_draws():
    import jax
    from ..rng import tick_draws
    return jax.jit(tick_draws)


class ReferenceModel:
    """One configuration, stepped one tick at a time. Build it from ``(static, params)`` of
    ``autonuma_jax.config.build_static`` / ``autonuma_jax.params.build_params`` (one configuration,
    NumPy leaves); it boots like ``state.init_state``. ``from_state`` starts from an engine state.
    """

    def __init__(self, static, params, quirks=()):
        unknown = set(quirks) - set(QUIRKS)
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(QUIRKS)}")
        self.quirks = frozenset(quirks)
        self.static = static
        self.params = params
        self._read_params(static, params)
        self.events = Counter()  # what happened (for tests: every mechanism must fire)
        self._boot()

    # ------------------------------------------------------------------------------------------
    # parameters
    # ------------------------------------------------------------------------------------------
    def _read_params(self, static, params):
        i = int
        self.N, self.C, self.T, self.M = static.n_nodes, static.n_cpus, static.n_tasks, static.n_mms
        self.U, self.P = static.n_units, static.n_pmds
        self.w = static.unit_pages  # 4 KiB pages per page unit
        self.upp = static.units_per_pmd
        self.pte_mode = bool(static.pte_faults)  # 4 KiB units, knuma_scand/pmd = 0
        self.pmd_walk = self.w == 1 and not self.pte_mode  # 4 KiB units, pmd mode: a fault walks 512 ptes
        self.tick_ns = static.tick_ns
        mp, wp, kn, d = params.machine, params.workload, params.knobs, params.derived
        # most units one thread begins in a tick (its machine at the top of the speed clamp), and
        # most pmds knuma_scand walks in a tick (ceil(pages_to_scan / 512) + 1): this configuration's
        # own limits, within the batch's array capacities
        self.A = min(int(d.units_limit), static.units_per_tick)
        self.W = min(int(d.scan_walk_pmds), static.scan_pmds_per_tick)
        self.cpu_node = [i(x) for x in mp.cpu_node]
        self.cpu_core = [i(x) for x in mp.cpu_core]
        self.node_pages_cap = [i(x) for x in mp.node_pages]
        self.wmark_low = [i(x) for x in mp.wmark_low]
        self.wmark_high = [i(x) for x in mp.wmark_high]
        self.zonelist = [[i(x) for x in row] for row in mp.zonelist]
        # the memory system (memsys.py): integer ps and fixed point, f32 scales
        self.lat_ps = [[i(x) for x in row] for row in mp.lat_ps]
        self.core_mlp_q8 = i(mp.core_mlp_q8)
        self.socket_mlp_q8 = [i(x) for x in mp.socket_mlp_q8]
        self.mc_svc_ps = [i(x) for x in mp.mc_svc_ps]
        self.link_svc_ps = [[i(x) for x in row] for row in mp.link_svc_ps]
        self.mc_scale = [F32(x) for x in mp.mc_scale]
        self.link_scale = [[F32(x) for x in row] for row in mp.link_scale]
        self.rfo = F32(mp.rfo)

        self.task_mm = [i(x) for x in wp.task_mm]
        self.init_start = [i(x) for x in wp.init_start]
        self.init_len = [i(x) for x in wp.init_len]
        self.init_passes = [i(x) for x in wp.init_passes]
        self.init_bind = [i(x) for x in wp.init_bind]
        self.init_by_slice = [i(x) for x in wp.init_by_slice]
        self.work_start = [i(x) for x in wp.work_start]
        self.work_len = [i(x) for x in wp.work_len]
        self.work_passes = [i(x) for x in wp.work_passes]
        self.work_bind = [i(x) for x in wp.work_bind]
        self.cpus_allowed = [i(x) for x in wp.cpus_allowed]
        self.start_after = [i(x) for x in wp.start_after]
        self.mm_start = [i(x) for x in wp.mm_start]
        self.mm_len = [i(x) for x in wp.mm_len]
        self.mm_vma_bind = [i(x) for x in wp.mm_vma_bind]
        # work-phase region cycles and process slots (workloads/base.py)
        self.alt_start = [i(x) for x in wp.alt_start]
        self.alt_len = [i(x) for x in wp.alt_len]
        self.cyc_work = [i(x) for x in wp.cyc_work]
        self.cyc_alt = [i(x) for x in wp.cyc_alt]
        self.mm_respawns = [i(x) for x in wp.mm_respawns]

        an = kn.autonuma
        self.policy_autonuma = i(params.policy) == POLICY_AUTONUMA24
        self.enabled = i(an.enabled)
        self.autonuma_on = self.policy_autonuma and self.enabled == 1
        self.pages_to_scan = i(an.knuma_scand.pages_to_scan)
        self.mm_working_set = i(an.knuma_scand.mm_working_set)
        self.pages_to_migrate = i(an.knuma_migrated.pages_to_migrate)
        self.defer = i(an.knuma_migrated.defer)
        self.allow_first_fault = i(an.knuma_migrated.allow_first_fault)
        self.load_balance_strict = i(an.scheduler.load_balance_strict)
        self.sched_reset = i(an.scheduler.reset)
        self.khugepaged_pages_to_scan = i(kn.transparent_hugepage.khugepaged.pages_to_scan)
        c = kn.costs
        self.cost = SimpleNamespace(**{f: i(getattr(c, f)) for f in (
            "hinting_fault_ns", "hinting_fault_per_page_ns", "first_touch_per_page_ns", "scan_per_pte_ns",
            "scan_per_pmd_ns", "scan_tlb_flush_ns", "migrate_per_page_ns", "exchange_ns", "collapse_per_page_ns")})
        self.speed_jitter_permille = kn.sched.speed_jitter_permille

        self.scan_sleep_ticks = i(d.scan_sleep_ticks)
        self.pass_sleep_half_ticks = i(d.pass_sleep_half_ticks)
        self.migrate_sleep_ticks = i(d.migrate_sleep_ticks)
        self.balance_ticks = i(d.balance_ticks)
        self.khugepaged_sleep_ticks = i(d.khugepaged_sleep_ticks)
        self.noise_threshold = i(d.noise_threshold)
        self.active_balance_ticks = i(d.active_balance_ticks)
        self.phase_jitter_ns = d.phase_jitter_ns
        self.speed_a = d.speed_a
        self.speed_b = d.speed_b
        self.thp = i(d.thp) == 1  # THP in effect (2 MiB units and transparent_hugepage.enabled)
        self.seed = params.seed

    # ------------------------------------------------------------------------------------------
    # boot state (state.init_state)
    # ------------------------------------------------------------------------------------------
    def _boot(self):
        import jax.numpy as jnp
        from ..rng import initial_scand_wake, initial_speed
        N, C, T, M, U, P = self.N, self.C, self.T, self.M, self.U, self.P
        self.tick = 0
        self.free_pages = list(self.node_pages_cap)
        self.pages = SimpleNamespace(
            node=[-1] * U, last_nid=[-1] * U, migrate_nid=[-1] * U,
            pte_numa=[0] * (U if self.pte_mode else 0), pmd_flags=[0] * P)
        speed = np.asarray(initial_speed(self.seed, T, jnp.asarray(self.speed_jitter_permille)))
        self.tasks = SimpleNamespace(
            phase=[T_NEW] * T, cpu=[-1] * T, pos=[0] * T, frac=[0] * T, passes=[0] * T, debt_ns=[0] * T,
            exec_us=[0] * T, speed_q=[int(x) for x in speed], finish_tick=[-1] * T,
            task_numa_fault=[[0] * N for _ in range(T)], task_numa_fault_tot=[0] * T,
            task_numa_fault_pass=[0] * T, task_selected_nid=[-1] * T)
        # every process exists (is on knuma_scand's list) from boot; its threads start one per tick
        self.mms = SimpleNamespace(
            alive=[True] * M, exited=[False] * M, mm_numa_fault=[[0] * N for _ in range(M)],
            mm_numa_fault_tot=[0] * M, mm_numa_fault_pass=[0] * M, node_pages=[[0] * N for _ in range(M)],
            queued_pages=[[0] * N for _ in range(M)], generation=[0] * M, exits_with_stats=[0] * M)
        # knuma_scand has run since boot: asleep until a seeded point of its pass cycle (same draw)
        wake = int(np.asarray(initial_scand_wake(self.seed, jnp.int32(2 * self.pass_sleep_half_ticks))))
        self.scand = SimpleNamespace(phase=SCAND_SLEEP, wake_tick=wake, mm=-1, addr=0, progress=0, pass_progress=0,
                                     call_progress=0, fault_tmp=[0] * N, full_scans=0, pages_scanned=0)
        # autonuma_migrate_head[src] of each destination: oldest entry first
        self.migrated = SimpleNamespace(nr_migrate_pages=[0] * N, waiting=[True] * N, wake_tick=[0] * N,
                                        queues={(dst, src): [] for dst in range(N) for src in range(N) if dst != src},
                                        pages_migrated=0)
        # the CPUs' balance timers are staggered evenly over one interval
        self.sched = SimpleNamespace(next_balance=[1 + (c * self.balance_ticks) // C for c in range(C)],
                                     pending=[False] * C)
        self.khugepaged = SimpleNamespace(cursor=0, wake_tick=0)
        # the memory system's utilisations of the last tick (the warm start of the next fixed point)
        self.memsys = SimpleNamespace(rho_mc=[0] * N, rho_link=[[0] * N for _ in range(N)])
        self.acc = self._zero_counters()
        self.tot = self._zero_counters()

    @staticmethod
    def _zero_counters():
        c = {f: 0 for f in COUNTER_FIELDS}
        c["overhead_us"] = [0] * 5
        c["overhead_rem_ns"] = [0] * 5
        c["kib_rem"] = [0, 0]
        return c

    @classmethod
    def from_state(cls, static, params, state, quirks=()):
        """A reference model continuing from an engine ``State`` of one configuration."""
        ref = cls(static, params, quirks)
        ref.load_state_dict(engine_state_dict(state, static, params))
        return ref

    def load_state_dict(self, d):
        L = lambda a: [int(x) for x in np.asarray(a).ravel()]  # noqa: E731
        L2 = lambda a: [[int(x) for x in row] for row in np.asarray(a)]  # noqa: E731
        B = lambda a: [bool(x) for x in np.asarray(a).ravel()]  # noqa: E731
        self.tick = int(d["tick"])
        self.free_pages = L(d["free_pages"])
        p = d["pages"]
        self.pages = SimpleNamespace(node=L(p["node"]), last_nid=L(p["last_nid"]), migrate_nid=L(p["migrate_nid"]),
                                     pte_numa=L(p["pte_numa"]), pmd_flags=L(p["pmd_flags"]))
        t = d["tasks"]
        self.tasks = SimpleNamespace(**{k: (L2(v) if k == "task_numa_fault" else L(v)) for k, v in t.items()})
        m = d["mms"]
        self.mms = SimpleNamespace(**{k: (B(v) if k in ("alive", "exited") else
                                          L2(v) if np.asarray(v).ndim == 2 else L(v)) for k, v in m.items()})
        s = d["scand"]
        self.scand = SimpleNamespace(**{k: (L(v) if k == "fault_tmp" else int(v)) for k, v in s.items()})
        g = d["migrated"]
        self.migrated = SimpleNamespace(nr_migrate_pages=L(g["nr_migrate_pages"]), waiting=B(g["waiting"]),
                                        wake_tick=L(g["wake_tick"]),
                                        queues={k: list(v) for k, v in g["queues"].items()},
                                        pages_migrated=int(g["pages_migrated"]))
        self.sched = SimpleNamespace(next_balance=L(d["sched"]["next_balance"]), pending=B(d["sched"]["pending"]))
        self.khugepaged = SimpleNamespace(cursor=int(d["khugepaged"]["cursor"]),
                                          wake_tick=int(d["khugepaged"]["wake_tick"]))
        self.memsys = SimpleNamespace(rho_mc=L(d["memsys"]["rho_mc"]), rho_link=L2(d["memsys"]["rho_link"]))
        for name in ("acc", "tot"):
            c = {k: (L(v) if k in ("overhead_us", "overhead_rem_ns", "kib_rem") else int(v))
                 for k, v in d[name].items()}
            setattr(self, name, c)

    # ------------------------------------------------------------------------------------------
    # small helpers
    # ------------------------------------------------------------------------------------------
    def unit_mm(self, u: int) -> int:
        m = 0
        for i, s in enumerate(self.mm_start):
            if s <= u:
                m = i
        return m

    def units_of_mm(self, m: int) -> range:
        """The page units of process m: its region starts on a pmd boundary and spans whole pmds."""
        n_pmds = -(-self.mm_len[m] // self.upp)
        return range(self.mm_start[m], self.mm_start[m] + n_pmds * self.upp)

    def runnable(self, t: int) -> bool:
        """A thread that has started and not finished (they never sleep inside a phase)."""
        return self.tasks.phase[t] in (T_INIT, T_WORK) and self.tasks.cpu[t] >= 0

    def nr_running(self) -> list:
        nr = [0] * self.C
        for t in range(self.T):
            if self.runnable(t):
                nr[self.tasks.cpu[t]] += 1
        return nr

    def curr(self) -> list:
        """The task running on each CPU (-1 = idle): the least CPU time received, ties to the lowest id."""
        cur = [-1] * self.C
        for t in range(self.T):
            if self.runnable(t):
                c = self.tasks.cpu[t]
                if cur[c] < 0 or self.tasks.exec_us[t] < self.tasks.exec_us[cur[c]]:
                    cur[c] = t
        return cur

    def sibling_busy(self, nr) -> list:
        """Another CPU of the same core has work."""
        return [any(nr[o] > 0 for o in range(self.C) if o != c and self.cpu_core[o] == self.cpu_core[c])
                for c in range(self.C)]

    def busy_on_core(self, nr) -> list:
        """CPUs of each CPU's core that have work (SMT siblings share the core's miss slots)."""
        return [sum(1 for o in range(self.C) if self.cpu_core[o] == self.cpu_core[c] and nr[o] > 0)
                for c in range(self.C)]

    def cpus_allowed_node(self, t: int, node: int) -> bool:
        return (self.cpus_allowed[t] >> node) & 1 == 1

    def task_autonuma_cpu(self, t: int, node: int) -> bool:
        """May t run on a CPU of `node` (kernel/sched/numa.c task_autonuma_cpu, spec §6.3)?"""
        sel = self.tasks.task_selected_nid[t]
        return (not self.autonuma_on) or sel < 0 or node == sel

    def task_mempolicy(self, t: int) -> int:
        """Non-zero when the thread has its own MPOL_BIND policy in its current phase (numa02's
        BINDMAP binds slice by slice); 0 = default policy."""
        if self.tasks.phase[t] == T_INIT:
            return 1 if self.init_by_slice[t] == 1 else self.init_bind[t]
        return self.work_bind[t]

    def target(self, t: int) -> int:
        """Passes of the thread's current phase."""
        return self.init_passes[t] if self.tasks.phase[t] == T_INIT else self.work_passes[t]

    def pass_region(self, t: int, p: int):
        """(start, length) of the region that pass p of the thread's current phase goes over: the
        init region; in the work phase cyc_work passes over the work region, then cyc_alt passes over
        the alternate region, and again."""
        if self.tasks.phase[t] == T_INIT:
            return self.init_start[t], max(self.init_len[t], 1)
        a, b = self.cyc_work[t], self.cyc_alt[t]
        if b > 0 and p % (a + b) >= a:
            return self.alt_start[t], max(self.alt_len[t], 1)
        return self.work_start[t], max(self.work_len[t], 1)

    def walk(self, t: int):
        """The units the thread writes next, in order, from its position: (pass, offset, unit)."""
        p, pos = self.tasks.passes[t], self.tasks.pos[t]
        while True:
            start, length = self.pass_region(t, p)
            yield p, pos, start + pos
            pos += 1
            if pos == length:
                p, pos = p + 1, 0

    def dequeue(self, u: int):
        """Remove page unit u from its knuma_migrated list (spec §5.2)."""
        pg = self.pages
        dst, src = pg.migrate_nid[u], pg.node[u]
        self.migrated.queues[(dst, src)].remove(u)
        self.migrated.nr_migrate_pages[dst] -= self.w
        self.mms.queued_pages[self.unit_mm(u)][dst] -= self.w
        pg.migrate_nid[u] = -1

    # ------------------------------------------------------------------------------------------
    # one tick
    # ------------------------------------------------------------------------------------------
    def finished(self) -> bool:
        """The configuration reached its own end: every thread done, every slot's respawns used and
        every process exited. From then on a tick changes nothing (tick.config_live)."""
        return (all(p == T_DONE for p in self.tasks.phase) and all(not a for a in self.mms.alive)
                and all(g >= r for g, r in zip(self.mms.generation, self.mm_respawns)))

    def step(self):
        """Advance by one tick; phases in the engine's order (tick.py)."""
        import jax.numpy as jnp
        if self.finished():
            return
        tk = self.tasks
        draws = _jitted_draws()(self.seed, jnp.int32(self.tick), jnp.asarray(tk.speed_q, jnp.int32),
                                self.speed_a, self.speed_b, self.phase_jitter_ns)
        tk.speed_q = [int(x) for x in np.asarray(draws.speed_q)]
        speed_pm = [int(x) for x in np.asarray(draws.speed_pm)]
        phase_ns = [int(x) for x in np.asarray(draws.phase_ns)]
        noise = [int(x) for x in np.asarray(draws.noise)]

        # 1. lifecycle
        self.exit_mms()
        self.start_one_task()
        # 2. CFS
        noise_moved = self.noise_move(noise)
        pulled = self.load_balance()
        pulled = self.active_balance() or pulled
        # 3. sched_autonuma_balance
        n_exch, moved = self.sched_autonuma_balance()
        # 4. accesses, first touch, NUMA hinting faults, progress
        acc = self.accesses(moved, phase_ns, speed_pm)
        # 5. knuma_scand
        flush, scan_ns = self.knuma_scand()
        # 6. knuma_migrated
        wake = [acc.wake[n] or (flush and self.migrated.nr_migrate_pages[n] > 0) for n in range(self.N)]
        moved_in, mig_ns = self.knuma_migrated(wake)
        self.count_vm(numa_hit=sum(moved_in), numa_local=sum(moved_in))  # knuma_migrated<N> runs on node N
        # 7. khugepaged
        coll_ns = self.khugepaged_scan()
        # 8. accounting
        self.charge_daemons(mig_ns, scan_ns + coll_ns)
        exch_ns = sum(1 for t in range(self.T) if moved[t]) * self.cost.exchange_ns
        ov = [scan_ns, sum(acc.fault_ns), sum(mig_ns), exch_ns, coll_ns]  # scan, fault, migrate, exchange, collapse
        inc = dict(local_kib=acc.local_kib, total_kib=acc.total_kib, hinting_faults=acc.hinting_faults,
                   fault_pages=acc.fault_pages, pages_queued=acc.pages_queued, pages_migrated=sum(moved_in),
                   exchanges=n_exch, noise_moves=int(noise_moved), lb_moves=int(pulled), queue_overflows=0,
                   capped_ticks=acc.capped, oom_pages=acc.oom_pages, first_touch_us=sum(acc.alloc_ns) // 1000)
        for c in (self.acc, self.tot):
            for k, v in inc.items():
                if c is self.tot and k in ("local_kib", "total_kib"):
                    continue  # whole-run volumes are kept in MiB (int32 KiB would wrap)
                c[k] += v
            for i in range(5):
                total = c["overhead_rem_ns"][i] + ov[i]
                c["overhead_us"][i] += total // 1000
                c["overhead_rem_ns"][i] = total % 1000
        for i, k in enumerate(("local", "total")):
            kib = self.tot["kib_rem"][i] + inc[f"{k}_kib"]
            self.tot[f"{k}_mib"] += kib // 1024
            self.tot["kib_rem"][i] = kib % 1024
        self.tick += 1

    # ---- 1. lifecycle (kernel/fork.c, kernel/exit.c, spec §2.7) -------------------------------
    def exit_mms(self):
        """A process whose threads have all finished exits: its memory is freed (each freed page
        leaves any knuma_migrated queue and is reset, spec §2.1) and it leaves knuma_scand's list.
        A process slot with respawns left runs its next process instead; one such slot per tick,
        the lowest-numbered (the others wait, their threads finished)."""
        pg = self.pages
        respawned = False
        for m in range(self.M):
            if not self.mms.alive[m]:
                continue
            if any(self.tasks.phase[t] != T_DONE for t in range(self.T) if self.task_mm[t] == m):
                continue
            respawn = self.mms.generation[m] < self.mm_respawns[m]
            if respawn and respawned:
                self.events["respawn_waits"] += 1
                continue
            if self.mms.mm_numa_fault_tot[m] > 0:
                self.mms.exits_with_stats[m] += 1
                self.events["exits_with_stats"] += 1
            for u in self.units_of_mm(m):
                if pg.node[u] >= 0:
                    if pg.migrate_nid[u] >= 0:
                        self.dequeue(u)
                    self.free_pages[pg.node[u]] += self.w
                    self.mms.node_pages[m][pg.node[u]] -= self.w
                    pg.node[u] = -1
                    pg.last_nid[u] = -1
                if self.pte_mode:
                    pg.pte_numa[u] = 0
            for q in range(self.units_of_mm(m)[0] // self.upp, self.units_of_mm(m)[-1] // self.upp + 1):
                pg.pmd_flags[q] = 0
            if respawn:
                self.respawn(m)
                respawned = True
                continue
            self.mms.alive[m] = False
            self.mms.exited[m] = True
            self.events["mm_exits"] += 1

    def respawn(self, m: int):
        """Slot m's next process (a fresh exec, spec §2.7): a new mm with zero statistics at the
        slot's place on knuma_scand's list, and the slot's threads as new tasks, their task_autonuma
        reset. If knuma_scand is part-way through the old mm, the old mm's partial statistics are
        dropped and knuma_scand finishes that mm at its next step, as after an exit; at its start,
        knuma_scand simply goes on with the new mm."""
        mms, tk, sc = self.mms, self.tasks, self.scand
        mms.generation[m] += 1
        mms.mm_numa_fault[m] = [0] * self.N
        mms.mm_numa_fault_tot[m] = 0
        mms.mm_numa_fault_pass[m] = 0
        if sc.mm == m and sc.addr > 0:
            sc.addr = -(-self.mm_len[m] // self.upp)
            sc.fault_tmp = [0] * self.N
            self.events["respawn_scand_drop"] += 1
        for t in range(self.T):
            if self.task_mm[t] == m:
                tk.phase[t], tk.cpu[t], tk.pos[t], tk.frac[t], tk.passes[t] = T_NEW, -1, 0, 0, 0
                tk.debt_ns[t], tk.finish_tick[t] = 0, -1
                tk.task_numa_fault[t] = [0] * self.N
                tk.task_numa_fault_tot[t] = tk.task_numa_fault_pass[t] = 0
                tk.task_selected_nid[t] = -1
        self.events["respawns"] += 1

    def start_one_task(self):
        """One new thread per tick (pthread_create loops are serial): its task_autonuma is reset,
        or copied from its parent with scheduler/reset = 0 (spec §2.7); fork balancing places it."""
        tk = self.tasks
        for t in range(self.T):
            sa = self.start_after[t]
            if tk.phase[t] == T_NEW and (sa < 0 or tk.phase[sa] >= T_WORK):
                break
        else:
            return
        if self.sched_reset == 0 and sa >= 0:
            tk.task_numa_fault[t] = list(tk.task_numa_fault[sa])
            tk.task_numa_fault_tot[t] = tk.task_numa_fault_tot[sa]
            tk.task_numa_fault_pass[t] = tk.task_numa_fault_pass[sa]
            tk.task_selected_nid[t] = tk.task_selected_nid[sa]
        else:
            tk.task_numa_fault[t] = [0] * self.N
            tk.task_numa_fault_tot[t] = 0
            tk.task_numa_fault_pass[t] = 0
            tk.task_selected_nid[t] = -1
        c = self.place_new_task(t)
        tk.phase[t] = T_INIT if self.init_passes[t] > 0 else T_WORK
        tk.cpu[t] = c
        self.events["task_starts"] += 1

    def place_new_task(self, t: int) -> int:
        """Fork balancing: the least loaded node among those t may run on (cpus_allowed and, under
        AutoNUMA, task_autonuma_cpu); there the CPU with the fewest tasks, an idle SMT sibling first."""
        nr = self.nr_running()
        ok = [n for n in range(self.N) if self.cpus_allowed_node(t, n) and self.task_autonuma_cpu(t, n)]
        load = [sum(nr[c] for c in range(self.C) if self.cpu_node[c] == n) for n in range(self.N)]
        best_node = min(ok, key=lambda n: (load[n], n)) if ok else 0
        sib = self.sibling_busy(nr)
        cpus = [c for c in range(self.C) if self.cpu_node[c] == best_node]
        return min(cpus, key=lambda c: (nr[c] * 2 + int(sib[c]), c))

    # ---- 2. CFS (spec §6.3 and the noise of the modelling notes) ---------------------------------
    def noise_move(self, noise) -> bool:
        """Other activity moves one running thread to a CPU of another node now and then, swapping
        it with that CPU's current task; AutoNUMA's wake-up filter refuses a move away from a
        task's selected node."""
        tk = self.tasks
        running = [t for t in range(self.T) if self.runnable(t)]
        if not (noise[0] < self.noise_threshold and running):
            return False
        p = running[noise[1] % len(running)]
        pc = tk.cpu[p]
        pn = self.cpu_node[pc]
        dsts = [x for x in range(self.C) if self.cpu_node[x] != pn and self.cpus_allowed_node(p, self.cpu_node[x])]
        if not dsts:
            return False
        x = dsts[noise[2] % len(dsts)]
        o = self.curr()[x]
        if not self.task_autonuma_cpu(p, self.cpu_node[x]):
            return False
        if o >= 0 and not (self.task_autonuma_cpu(o, pn) and self.cpus_allowed_node(o, pn)):
            return False
        tk.cpu[p] = x
        if o >= 0:
            tk.cpu[o] = pc
        self.events["noise_moves"] += 1
        return True

    def load_balance(self) -> bool:
        """One pull per tick: the first CPU (in CPU order) that has at least two tasks fewer than the
        busiest CPU of its node (else of the machine) pulls a task that is not running there: first
        a task whose selected node is this CPU's (the NUMA pass), else any task (the relaxed pass),
        which load_balance_strict forbids unless this CPU is idle."""
        tk = self.tasks
        nr = self.nr_running()
        cur = self.curr()
        glob_best = _first_argmax(nr)
        for a in range(self.C):
            node = self.cpu_node[a]
            node_cpus = [c for c in range(self.C) if self.cpu_node[c] == node]
            node_best = node_cpus[_first_argmax([nr[c] for c in node_cpus])]
            if nr[node_best] >= nr[a] + 2:
                src = node_best
            elif nr[glob_best] >= nr[a] + 2:
                src = glob_best
            else:
                continue
            cands = [t for t in range(self.T) if self.runnable(t) and tk.cpu[t] == src and t != cur[src]
                     and self.cpus_allowed_node(t, node)]
            affine = [t for t in cands if self.task_autonuma_cpu(t, node)]
            relaxed_ok = nr[a] == 0 or self.load_balance_strict == 0 or not self.autonuma_on
            if affine:
                choice = affine[0]
            elif cands and relaxed_ok:
                choice = cands[0]
            else:
                continue
            tk.cpu[choice] = a
            self.events["lb_moves"] += 1
            return True
        return False

    def active_balance(self) -> bool:
        """Linux 3.6 active load balancing between nodes, at most once per active-balance interval:
        when a node with an idle CPU runs at least two tasks fewer than the busiest node, the
        busiest CPU of that node (the first with the most tasks) is stopped and one of its tasks is
        pushed onto an idle CPU of the idlest such node (an idle core first): a task whose selected
        node allows it there first (AutoNUMA's NUMA pass), else any (idle balancing may always
        pull), lowest id first."""
        if self.N < 2 or self.active_balance_ticks == 0 or self.tick % self.active_balance_ticks != 0:
            return False
        tk = self.tasks
        nr = self.nr_running()
        node_nr = [sum(nr[c] for c in range(self.C) if self.cpu_node[c] == n) for n in range(self.N)]
        with_idle = [n for n in range(self.N) if any(nr[c] == 0 for c in range(self.C) if self.cpu_node[c] == n)]
        if not with_idle:
            return False
        a = min(with_idle, key=lambda n: (node_nr[n], n))
        b = _first_argmax(node_nr)
        if node_nr[b] < node_nr[a] + 2:
            return False
        sib = self.sibling_busy(nr)
        dst = min((c for c in range(self.C) if self.cpu_node[c] == a and nr[c] == 0), key=lambda c: (int(sib[c]), c))
        b_cpus = [c for c in range(self.C) if self.cpu_node[c] == b]
        src = b_cpus[_first_argmax([nr[c] for c in b_cpus])]
        on_src = [t for t in range(self.T) if self.runnable(t) and tk.cpu[t] == src and self.cpus_allowed_node(t, a)]
        if not on_src:
            return False
        affine = [t for t in on_src if self.task_autonuma_cpu(t, a)]
        tk.cpu[(affine or on_src)[0]] = dst
        self.events["active_balance"] += 1
        return True

    # ---- 3. sched_autonuma_balance (kernel/sched/numa.c, spec §6.1-6.2) --------------------------
    def sched_autonuma_balance(self):
        """Each busy CPU whose balance timer fires evaluates its current task. Returns
        (exchanges, moved[T])."""
        tk, mms = self.tasks, self.mms
        C, N = self.C, self.N
        tick = self.tick
        cur = self.curr()
        if not any(tick >= nb for nb in self.sched.next_balance):
            return 0, [False] * self.T  # no timer fires: nothing happens (pending flags stay as they are)
        act = []
        for c in range(C):
            fire = tick >= self.sched.next_balance[c]
            if fire:
                self.sched.next_balance[c] = tick + self.balance_ticks
            # the hook exists only in an AutoNUMA kernel and runs only if the CPU was busy
            if fire and cur[c] >= 0 and self.policy_autonuma:
                act.append(c)

        decision = {}  # cpu -> (new task_selected_nid, partner cpu or None)
        for c in act:
            p = cur[c]
            this_nid = self.cpu_node[c]
            if self.enabled != 1:  # step 1
                decision[c] = (-1, None)
                continue
            m = self.task_mm[p]
            mm_tot = mms.mm_numa_fault_tot[m]
            task_tot = tk.task_numa_fault_tot[p]
            if mm_tot == 0 or task_tot == 0:  # step 2: anchored where it runs
                decision[c] = (this_nid, None)
                continue
            task_w = [_permille(tk.task_numa_fault[p][n], task_tot) for n in range(N)]
            mm_w = [_permille(mms.mm_numa_fault[m][n], mm_tot) for n in range(N)]
            if _first_argmax(task_w) == this_nid and _first_argmax(mm_w) == this_nid:  # step 5
                decision[c] = (this_nid, None)
                continue
            best, sel_cpu = 0, None  # step 6
            for n in range(N):
                if n == this_nid:
                    continue
                for oc in range(C):
                    if self.cpu_node[oc] != n or not self.cpus_allowed_node(p, n):
                        continue
                    o = cur[oc]
                    if o < 0:  # idle CPUs are left to CFS
                        continue
                    mo = self.task_mm[o]
                    if mms.mm_numa_fault_tot[mo] == 0 or tk.task_numa_fault_tot[o] == 0:
                        continue
                    if not self.cpus_allowed_node(o, this_nid):
                        continue
                    if mo == m:  # threads of one process: per-thread statistics
                        w_other = _permille(tk.task_numa_fault[o][n], tk.task_numa_fault_tot[o])
                        w_nid, w_this = task_w[n], task_w[this_nid]
                    else:  # different processes: per-process statistics
                        w_other = _permille(mms.mm_numa_fault[mo][n], mms.mm_numa_fault_tot[mo])
                        w_nid, w_this = mm_w[n], mm_w[this_nid]
                    if w_nid > w_other and w_nid > w_this:
                        weight = (w_nid - w_other) + (w_nid - w_this)
                        if weight > best:
                            best, sel_cpu = weight, oc
            decision[c] = (this_nid if sel_cpu is None else self.cpu_node[sel_cpu], sel_cpu)  # step 7

        # Concurrent decisions of one tick (engine's settlement, sched/numa.py): for each partner CPU
        # the lowest-numbered proposer wins; a proposal is dropped when its own CPU is some
        # proposal's partner or its partner is itself proposing; a dropped CPU changes nothing.
        proposals = {c: dc[1] for c, dc in decision.items() if dc[1] is not None}
        targeted = set(proposals.values())
        accepted = {}
        for c, target in proposals.items():
            winner = min(pc for pc, tg in proposals.items() if tg == target)
            if winner == c and c not in targeted and target not in proposals:
                accepted[c] = target
        partnered = set(accepted.values())
        for c, (new_sel, target) in decision.items():
            dropped = (target is not None and c not in accepted) or c in partnered
            if not dropped:
                tk.task_selected_nid[cur[c]] = new_sel
        moved = [False] * self.T
        for c, target in accepted.items():  # step 8: the exchange (stop_one_cpu works)
            p, o = cur[c], cur[target]
            tk.cpu[p] = target
            tk.cpu[o] = c
            moved[p] = moved[o] = True
            self.events["exchanges"] += 1
        self.sched.pending = [c in accepted or c in partnered for c in range(C)]
        return len(accepted), moved

    # ---- 4. accesses (physics.py, mm/memory.py, mm/mempolicy.py, spec §4) -----------------------
    def bind_mask(self, t: int, u: int) -> int:
        """Effective MPOL_BIND mask for t allocating unit u: the VMA policy, else the task's
        (numa02's BINDMAP binds slice j of the init region to node j)."""
        m = self.task_mm[t]
        if self.mm_vma_bind[m] != 0:
            return self.mm_vma_bind[m]
        if self.tasks.phase[t] == T_INIT:
            if self.init_by_slice[t] == 1:
                j = ((u - self.init_start[t]) * self.N) // max(self.init_len[t], 1)
                return 1 << min(max(j, 0), self.N - 1)
            return self.init_bind[t]
        return self.work_bind[t]

    def preference(self, t: int, u: int):
        """(zonelist, allowed) for t allocating u (spec §6.4): a binding's nodes nearest to the CPU;
        under AutoNUMA the zonelist of task_selected_nid when set; else the local node's."""
        mask = self.bind_mask(t, u)
        cpu_node = self.cpu_node[max(self.tasks.cpu[t], 0)]
        sel = self.tasks.task_selected_nid[t]
        if mask == 0 and self.autonuma_on and sel >= 0:
            base = sel
        else:
            base = cpu_node
        order = self.zonelist[base]
        allowed = [mask == 0 or (mask >> n) & 1 == 1 for n in order]
        return order, allowed

    @staticmethod
    def first_choice(order, allowed) -> int:
        for n, ok in zip(order, allowed):
            if ok:
                return n
        return order[0]

    def accesses(self, moved, phase_ns, speed_pm):
        tk, pg = self.tasks, self.pages
        T, N, A, w = self.T, self.N, self.A, self.w
        tick_ns = self.tick_ns
        out = SimpleNamespace(wake=[False] * N, fault_ns=[0] * T, alloc_ns=[0] * T, local_kib=0, total_kib=0,
                              hinting_faults=0, fault_pages=0, pages_queued=0, oom_pages=0, capped=0)

        # CPU time of the tick: a fair share of the CPU, minus the kernel work the thread owes
        nr = self.nr_running()
        busy = self.busy_on_core(nr)
        running = [self.runnable(t) for t in range(T)]
        budget = [0] * T
        for t in range(T):
            share = tick_ns // max(nr[tk.cpu[t]], 1) if running[t] else 0
            pay = min(tk.debt_ns[t], share)
            budget[t] = share - pay
            tk.debt_ns[t] -= pay
            tk.exec_us[t] += share // 1000

        # ---- the stream: each thread writes the next units of its region in order -------------------
        unit_kib = F32(w * 4)
        cap = tick_ns + 1

        def candidates(t):
            """(k, unit, est_node) of the thread's next units while its passes last."""
            target = self.target(t)
            for k, (p, _, u) in zip(range(A), self.walk(t)):
                if p >= target:
                    return
                est = pg.node[u] if pg.node[u] >= 0 else self.first_choice(*self.preference(t, u))
                yield k, u, est

        active = [running[t] and budget[t] > 0 for t in range(T)]
        cands = {t: list(candidates(t)) for t in range(T) if active[t]}
        node_of = [self.cpu_node[tk.cpu[t]] if running[t] else 0 for t in range(T)]
        mem = self.memory_system(cands, node_of, busy, budget, speed_pm)

        def cost_of(t, k, ns):
            c = _q16_part(ns, 65536 - tk.frac[t]) if k == 0 else ns  # the rest of a begun unit
            return min(c, cap)

        entries = []  # (unit, tau, task, k)
        kib_of = []  # (task, unit, kib)
        n_done = [0] * T
        new_frac = [0] * T
        for t in range(T):
            if not running[t]:
                continue
            if budget[t] <= 0:  # all its time went to kernel work: it keeps its place
                new_frac[t] = tk.frac[t]
                continue
            cn = node_of[t]
            s = 0
            e = 0
            frac = 0
            for k, u, est in cands[t]:
                ns = mem.unit_ns(t, cn, est)
                e = s + cost_of(t, k, ns)
                if s >= budget[t]:
                    break
                entries.append((u, s + phase_ns[t], t, k))
                kib_of.append((t, u, _floor(F32(min(e, budget[t]) - s) / F32(ns) * unit_kib)))
                if e <= budget[t]:
                    n_done[t] += 1
                    s = e
                    continue
                part = _floor(F32(budget[t] - s) / F32(ns) * F32(65536.0))
                frac = tk.frac[t] + part if n_done[t] == 0 else part
                break
            new_frac[t] = min(max(frac, 0), 65535)
            if n_done[t] == A and e < budget[t]:
                out.capped += 1

        # ---- first touch: the first toucher of an absent unit allocates it (in page order) ---------
        first = {}
        for ent in sorted(entries):
            first.setdefault(ent[0], ent)
        requests = [(u, ent[2]) for u, ent in sorted(first.items()) if pg.node[u] < 0]
        for (u, t), got, oom in zip(requests, *self.allocate(requests)):
            # zone_statistics: hit = the preferred (first allowed) node, local = the CPU's node
            hit = got == self.first_choice(*self.preference(t, u))
            local = got == self.cpu_node[tk.cpu[t]]
            self.count_vm(numa_hit=w * hit, numa_miss=w * (not hit), numa_local=w * local, numa_other=w * (not local))
            pg.node[u] = got
            if w == HPAGE_PMD_NR:
                pg.pmd_flags[u] = PMD_THP if self.thp else 0
            self.mms.node_pages[self.task_mm[t]][got] += w
            out.alloc_ns[t] += w * self.cost.first_touch_per_page_ns
            if oom:
                out.oom_pages += w
                self.events["oom"] += 1
            self.events["first_touch"] += 1

        for t, u, kib in kib_of:
            out.total_kib += kib
            if pg.node[u] == self.cpu_node[tk.cpu[t]]:
                out.local_kib += kib

        # ---- NUMA hinting faults: the first toucher of an armed pmd (pte) takes the fault ----------
        def key_of(u):
            return u // HPAGE_PMD_NR if self.pmd_walk else u

        def armed(key):
            if self.pte_mode:
                return pg.pte_numa[key] != 0
            pmd = key if self.pmd_walk else key // self.upp
            return pg.pmd_flags[pmd] & PMD_NUMA != 0

        owner = {}
        for u, tau, t, k in entries:
            key = key_of(u)
            if key not in owner or (tau, t, k) < owner[key]:
                owner[key] = (tau, t, k)
        # in time order, ties by unit (pmd): the order in which pages are queued
        events = sorted((tau, key, t) for key, (tau, t, k) in owner.items() if armed(key))
        for tau, key, t in events:  # disarm (the fixup clears the bit first)
            if self.pte_mode:
                pg.pte_numa[key] = 0
            else:
                pmd = key if self.pmd_walk else key // self.upp
                pg.pmd_flags[pmd] &= ~PMD_NUMA
        for tau, key, t in events:
            units = range(key * HPAGE_PMD_NR, (key + 1) * HPAGE_PMD_NR) if self.pmd_walk else [key]
            present = [u for u in units if pg.node[u] >= 0]
            this_nid = self.cpu_node[tk.cpu[t]]
            out.hinting_faults += 1
            if pg.node[units[0]] == this_nid:  # numa_hint_faults_local (a pmd fault: its first page)
                self.count_vm(numa_hint_faults_local=1)
            out.fault_pages += w * len(present)
            # numa_hinting_fault() does nothing for a task with a mempolicy or AutoNUMA off (§4.2)
            if self.autonuma_on and self.task_mempolicy(t) == 0:
                for u in present:
                    self.numa_hinting_fault(u, t, this_nid, out)
            if w == HPAGE_PMD_NR:  # a THP: one call of weight 512; a page-table pmd (split THP): 512 ptes
                handled = 1 if pg.pmd_flags[key] & PMD_THP else HPAGE_PMD_NR
            else:
                handled = len(present)
            out.fault_ns[t] += self.cost.hinting_fault_ns + handled * self.cost.hinting_fault_per_page_ns
            self.events["hinting_faults"] += 1

        # ---- progress: threads advance; phase changes at the end of their passes ----------------------
        for t in range(T):
            if tk.phase[t] in (T_INIT, T_WORK):
                target = self.target(t)
                walk = self.walk(t)
                for _ in range(n_done[t] + 1):  # the position after the n_done completed units
                    p, pos, _u = next(walk)
                if self.pass_region(t, p) != self.pass_region(t, tk.passes[t]):
                    self.events["region_switches"] += 1
                tk.passes[t], tk.pos[t] = p, pos
                tk.frac[t] = new_frac[t]
                if tk.passes[t] >= target:
                    if tk.phase[t] == T_INIT and self.work_passes[t] > 0:
                        tk.phase[t] = T_WORK
                    else:
                        tk.phase[t] = T_DONE
                        tk.cpu[t] = -1
                        tk.finish_tick[t] = self.tick + 1
                        self.events["task_finishes"] += 1
                    tk.pos[t] = tk.frac[t] = tk.passes[t] = 0
            else:
                tk.frac[t] = new_frac[t]
            # kernel work of this tick is paid from the next ticks (the exchange: stop_one_cpu)
            tk.debt_ns[t] += out.fault_ns[t] + out.alloc_ns[t] + (self.cost.exchange_ns if moved[t] else 0)
        return out

    def memory_system(self, cands, node_of, busy, budget, speed_pm):
        """The tick's loaded latencies (memsys.py, written out as loops): every active thread keeps
        n line misses in flight (its core's slots over its busy SMT siblings, scaled down when its
        node's threads ask for more than the node's slots), each taking the idle latency from its
        CPU's node to the memory's node plus the M/M/1 wait at that node's controller (and on the
        link, when remote). Utilisations follow from the rates they imply; the fixed point is found
        by bisecting every utilisation at once (Q16 integers) within +-4096 of the last tick's, first
        testing the last tick's values, then 13 halvings; it remembers the result.

        Returns an object with ``unit_ns(t, cpu_node, mem_node)``."""
        N, T = self.N, self.T
        ONE, RMAX, QCAP, RCAP = 65536, 65536 - 64, 1 << 23, 1 << 18
        tick_ns = self.tick_ns
        frac_q10 = [((budget[t] >> 4) << 10) // max(tick_ns >> 4, 1) for t in range(T)]
        # weights: Q6 share of the thread's next candidate units on each node
        wq = {}
        for t, cs in cands.items():
            cnt = [0] * N
            for _, _, est in cs:
                cnt[est] += 1
            tot = sum(cnt)
            if tot:
                wq[t] = [(c << 6) // tot for c in cnt]
        # miss slots: the core's, over its busy siblings; then the node's cap
        n = {t: max(self.core_mlp_q8 // max(busy[self.tasks.cpu[t]], 1), 1) for t in wq}
        occ = [0] * N
        for t in wq:
            occ[node_of[t]] += (n[t] * frac_q10[t]) >> 10
        for t in wq:
            o, cap_s = occ[node_of[t]], self.socket_mlp_q8[node_of[t]]
            if o > cap_s:
                n[t] = max((n[t] * cap_s) // max(o, 1), 1)

        def queue(svc, rho):
            return _floor(min(F32(svc) * F32(rho) / F32(ONE - rho), F32(QCAP)))

        def lat(rho_mc, rho_l):
            return [[self.lat_ps[a][b] + queue(self.mc_svc_ps[b], rho_mc[b])
                     + (0 if a == b else queue(self.link_svc_ps[a][b], rho_l[a][b])) for b in range(N)]
                    for a in range(N)]

        def implied(L):
            """Utilisations implied by latencies L: controllers [N], links [N][N]."""
            x = [[0] * N for _ in range(N)]
            for t, wt in wq.items():
                a = node_of[t]
                lbar = sum(wt[m] * L[a][m] for m in range(N)) // max(sum(wt), 1)
                r = (n[t] * (1_000_000 * 64 // 256)) // max(lbar, 1)
                r = min((r * speed_pm[t]) // 1000, RCAP)
                r_eff = (r * frac_q10[t]) >> 10
                for m in range(N):
                    x[a][m] += (r_eff * wt[m]) >> 6
            d = [sum(x[a][b] for a in range(N)) for b in range(N)]
            rho_mc = [_floor(min(F32(d[b]) * self.mc_scale[b], F32(RMAX))) for b in range(N)]
            rho_l = [[0 if a == b else _floor(min(F32(x[a][b] + _floor(F32(x[b][a]) * self.rfo))
                                                   * self.link_scale[a][b], F32(RMAX))) for b in range(N)]
                     for a in range(N)]
            return rho_mc, rho_l

        W = 1 << 12
        prev_mc, prev_l = self.memsys.rho_mc, self.memsys.rho_link
        lo_mc, hi_mc = [max(x - W, 0) for x in prev_mc], [min(x + W, RMAX) for x in prev_mc]
        lo_l = [[max(x - W, 0) for x in row] for row in prev_l]
        hi_l = [[min(x + W, RMAX) for x in row] for row in prev_l]
        for step in range(14):  # the first test at last tick's values, then halvings
            mid_mc = list(prev_mc) if step == 0 else [(lo_mc[b] + hi_mc[b]) >> 1 for b in range(N)]
            mid_l = ([list(r) for r in prev_l] if step == 0 else
                     [[(lo_l[a][b] + hi_l[a][b]) >> 1 for b in range(N)] for a in range(N)])
            f_mc, f_l = implied(lat(mid_mc, mid_l))
            for b in range(N):
                if f_mc[b] > mid_mc[b]:
                    lo_mc[b] = mid_mc[b] + 1
                else:
                    hi_mc[b] = mid_mc[b]
                for a in range(N):  # (the diagonal is never used: a local miss crosses no link)
                    if f_l[a][b] > mid_l[a][b]:
                        lo_l[a][b] = mid_l[a][b] + 1
                    else:
                        hi_l[a][b] = mid_l[a][b]
        L = lat(lo_mc, lo_l)
        self.memsys.rho_mc, self.memsys.rho_link = lo_mc, lo_l
        unit4 = F32(4 * self.w * 4096)

        def unit_ns(t, a, b):
            inv = F32(1.0) / F32(max(n[t] * speed_pm[t], 1))  # (a product with the reciprocal, as XLA does)
            x = F32(L[a][b]) * unit4 * inv
            return max(_floor(min(x, F32(1 << 30))), 1)

        return SimpleNamespace(unit_ns=unit_ns, rho_mc=lo_mc, rho_link=lo_l, L=L, n=n)

    def allocate(self, requests):
        """The tick's first-touch allocations (unit, task), in page order. Returns (nodes, oom flags)."""
        prefs = [self.preference(t, u) for u, t in requests]
        return allocate_in_rounds(prefs, self.free_pages, self.wmark_low, self.w)

    def numa_hinting_fault(self, u: int, t: int, this_nid: int, out):
        """numa_hinting_fault(page) for one page unit (spec §4.3, §4.4): the last_nid filter,
        memory follows CPU (queue / dequeue), then the thread's statistics."""
        pg, tk, mg = self.pages, self.tasks, self.migrated
        w = self.w
        page_nid = pg.node[u]
        last = pg.last_nid[u]
        # last_nid_filter: always records this_nid; a mismatch cancels a pending migration
        fail = (self.allow_first_fault == 0 or last >= 0) and last != this_nid
        if fail:
            if pg.migrate_nid[u] >= 0:
                self.dequeue(u)
                self.events["cancels"] += 1
            self.events["filter_fail"] += 1
            access_nid = page_nid
        else:
            if last < 0:
                self.events["first_fault_pass"] += 1
            if this_nid != page_nid:
                if pg.migrate_nid[u] != this_nid:  # queue(page, dst=this_nid, src=page_nid)
                    if pg.migrate_nid[u] >= 0:
                        self.dequeue(u)
                        self.events["requeues"] += 1
                    mg.queues[(this_nid, page_nid)].append(u)  # newest
                    pg.migrate_nid[u] = this_nid
                    old = mg.nr_migrate_pages[this_nid]
                    mg.nr_migrate_pages[this_nid] += w
                    self.mms.queued_pages[self.unit_mm(u)][this_nid] += w
                    out.pages_queued += w
                    self.events["queued"] += 1
                    # wake knuma_migrated<dst> when its counter crosses pages_to_migrate (§5.2)
                    if self.defer == 0 and old < self.pages_to_migrate <= mg.nr_migrate_pages[this_nid]:
                        out.wake[this_nid] = True
                        self.events["threshold_wakes"] += 1
            elif pg.migrate_nid[u] >= 0:  # already local: leave the queue
                self.dequeue(u)
                self.events["local_dequeues"] += 1
            access_nid = this_nid
        pg.last_nid[u] = this_nid
        # cpu_follow_memory: lazy halving on the first fault of a new pass, then credit access_nid
        mm_pass = self.mms.mm_numa_fault_pass[self.task_mm[t]]
        if tk.task_numa_fault_pass[t] != mm_pass:
            tk.task_numa_fault[t] = [f >> 1 for f in tk.task_numa_fault[t]]
            tk.task_numa_fault_tot[t] >>= 1
            tk.task_numa_fault_pass[t] = mm_pass
            self.events["task_decays"] += 1
        tk.task_numa_fault[t][access_nid] += w
        tk.task_numa_fault_tot[t] += w

    # ---- 5. knuma_scand (mm/autonuma.c, spec §3) ------------------------------------------------
    def knuma_scand(self):
        """One tick of knuma_scand's main loop. At most one knumad_do_scan call is in flight; it walks
        at most ceil(pages_to_scan / 512) + 1 pmds per tick (the most one call can find present), so a
        call across sparse memory, or across armed ptes in pte mode, goes on next tick [I].
        Returns (flush, cpu ns)."""
        sc, pg, mms = self.scand, self.pages, self.mms
        if not self.autonuma_on:  # "wait while !enabled"
            return False, 0
        tick = self.tick
        pts = self.pages_to_scan
        ws = self.mm_working_set == 1
        flush = False
        if tick >= sc.wake_tick:
            if sc.phase == SCAND_PASS_SLEEP1:  # first half of the pass sleep over: flush, then sleep again
                flush = True
                sc.phase = SCAND_PASS_SLEEP2
                sc.wake_tick = tick + self.pass_sleep_half_ticks
            elif sc.phase == SCAND_PASS_SLEEP2:
                if sc.progress > pts:
                    sc.progress = 0
                    sc.phase = SCAND_SLEEP
                    sc.wake_tick = tick + self.scan_sleep_ticks
                else:
                    sc.phase = SCAND_RUN
            elif sc.phase == SCAND_SLEEP:
                sc.phase = SCAND_RUN
        if flush:
            self.events["flushes"] += 1
        if sc.phase != SCAND_RUN:
            return flush, 0

        if sc.mm < 0:  # a new pass: the first mm of the list
            sc.mm = next((m for m in range(self.M) if mms.alive[m]), -1)
            sc.addr = 0
            if sc.mm >= 0:
                mms.mm_numa_fault_pass[sc.mm] += 1
        if sc.call_progress == 0:  # a knumad_do_scan call starts: local progress starts at 1
            sc.call_progress = 1
        m = sc.mm
        n_pmds_walked = 0
        n_ptes = 0
        alive = m >= 0 and mms.alive[m]
        if alive:
            len_pmd = -(-self.mm_len[m] // self.upp)
            start_pmd = self.mm_start[m] // self.upp
            untouched = not any(pg.node[u] >= 0 for u in self.units_of_mm(m))
            if self.mm_vma_bind[m] != 0 or untouched:
                # skipped VMA (explicit memory policy, or no anon_vma yet): +1 progress
                sc.call_progress += 1
                sc.addr = len_pmd
                self.events["vma_skips"] += 1
            else:
                for _ in range(self.W):
                    if sc.addr >= len_pmd or sc.call_progress >= pts:
                        break
                    progress, ptes = self.knuma_scand_pmd(start_pmd + sc.addr, ws)
                    sc.call_progress += progress
                    n_ptes += ptes
                    n_pmds_walked += 1
                    sc.addr += 1
        else:
            len_pmd = 0
        at_end = (not alive) or sc.addr >= len_pmd
        call_done = at_end or sc.call_progress >= pts
        if call_done:
            sc.progress += sc.call_progress
            sc.pass_progress += sc.call_progress
            sc.call_progress = 0
        if at_end:
            nxt = next((x for x in range(m + 1, self.M) if mms.alive[x]), -1) if m >= 0 else -1
            if nxt >= 0:
                mms.mm_numa_fault_pass[nxt] += 1
            if alive:
                # publish the histogram (spec §3.5); with mm_working_set an all-zero one is dropped
                if ws and sum(sc.fault_tmp) == 0:
                    self.events["publish_kept"] += 1
                else:
                    mms.mm_numa_fault[m] = list(sc.fault_tmp)
                    mms.mm_numa_fault_tot[m] = sum(sc.fault_tmp)
                    self.events["publish"] += 1
            sc.fault_tmp = [0] * self.N
            sc.mm = nxt
            sc.addr = 0
        if call_done and sc.mm < 0:  # end of the pass
            sc.pages_scanned += sc.pass_progress
            sc.pass_progress = 0
            sc.full_scans += 1
            sc.phase = SCAND_PASS_SLEEP1
            sc.wake_tick = tick + self.pass_sleep_half_ticks
            self.events["full_scans"] += 1
        elif call_done and sc.progress > pts:
            sc.phase = SCAND_SLEEP
            sc.wake_tick = tick + self.scan_sleep_ticks
            sc.progress = 0
        cost = n_pmds_walked * self.cost.scan_per_pmd_ns + n_ptes * self.cost.scan_per_pte_ns
        if call_done:
            cost += self.cost.scan_tlb_flush_ns
        return flush, cost

    def knuma_scand_pmd(self, q: int, ws: bool):
        """knuma_scand_pmd() for pmd q (spec §3.4). Returns (progress, ptes visited)."""
        pg, sc = self.pages, self.scand
        units = range(q * self.upp, (q + 1) * self.upp)
        if self.w == HPAGE_PMD_NR:  # one 2 MiB unit: a THP, or a page-table pmd of 512 ptes
            u = units[0]
            if pg.node[u] < 0:
                return 0, 0  # empty pmd
            armed = pg.pmd_flags[q] & PMD_NUMA != 0
            if pg.pmd_flags[q] & PMD_THP and ws and armed:
                self.events["ws_skips"] += 1  # THP not touched since it was armed: not counted
            else:
                nid = pg.migrate_nid[u] if pg.migrate_nid[u] >= 0 else pg.node[u]
                sc.fault_tmp[nid] += HPAGE_PMD_NR
            if not armed:
                pg.pmd_flags[q] |= PMD_NUMA
                self.count_vm(numa_pte_updates=HPAGE_PMD_NR, numa_huge_pte_updates=int(pg.pmd_flags[q] & PMD_THP != 0))
            return HPAGE_PMD_NR, 0
        progress = 0
        ptes = 0
        for u in units:  # 4 KiB units: the ptes of the pmd
            if pg.node[u] < 0:
                continue
            ptes += 1
            pte_numa = self.pte_mode and pg.pte_numa[u] != 0
            if ws and pte_numa:
                self.events["ws_skips"] += 1
                continue
            nid = pg.migrate_nid[u] if pg.migrate_nid[u] >= 0 else pg.node[u]
            sc.fault_tmp[nid] += 1
            if pte_numa:
                continue
            if self.pte_mode:
                pg.pte_numa[u] = 1
                self.count_vm(numa_pte_updates=1)
            progress += 1
        if progress > 0 and not self.pte_mode and not pg.pmd_flags[q] & PMD_NUMA:
            pg.pmd_flags[q] |= PMD_NUMA
            self.count_vm(numa_pte_updates=progress)  # the pmd's present ptes become NUMA-protected
        return progress, ptes

    def count_vm(self, **inc):
        """count_vm_numa_events(): the interval's and the run's vmstat counters (vmstat.py)."""
        for c in (self.acc, self.tot):
            for k, v in inc.items():
                c[k] += v

    # ---- 6. knuma_migrated (mm/autonuma.c, spec §5) ---------------------------------------------
    def knuma_migrated(self, wake):
        """The daemons whose turn it is each migrate one batch. All run in parallel within the tick:
        each checks room against the free pages at the start of the phase. Returns
        (pages moved into each node, cpu ns of each node's daemon)."""
        mg, pg = self.migrated, self.pages
        N, w = self.N, self.w
        tick = self.tick
        free0 = list(self.free_pages)
        batches = {}
        for dst in range(N):
            if mg.waiting[dst]:
                run = wake[dst] and mg.nr_migrate_pages[dst] > 0
            else:
                run = tick >= mg.wake_tick[dst]
            if not run:
                continue
            batch = []
            n = 0
            sources = [src for src in range(N) if src != dst]
            stalled = False
            while not stalled:
                got = 0
                for src in sources:  # isolate_round: the oldest page of each source list
                    if not mg.queues[(dst, src)]:
                        continue
                    # dst_has_room() (§5.4) for each of the unit's pages: free > high + isolated
                    if not free0[dst] > self.wmark_high[dst] + n + w - 1:
                        self.events["watermark_stalls"] += 1
                        stalled = True
                        break
                    batch.append(mg.queues[(dst, src)].pop(0))
                    got += w
                    n += w
                if got == 0 or n >= self.pages_to_migrate:
                    break
            batches[dst] = batch
        moved_in = [0] * N
        cost = [0] * N
        for dst, batch in batches.items():
            for u in batch:  # split_huge_page, isolate, migrate (the new page keeps last_nid)
                src = pg.node[u]
                m = self.unit_mm(u)
                pg.node[u] = dst
                pg.migrate_nid[u] = -1
                if w == HPAGE_PMD_NR:
                    if pg.pmd_flags[u] & PMD_THP:
                        self.events["thp_splits"] += 1
                    pg.pmd_flags[u] &= ~PMD_THP
                self.free_pages[dst] -= w
                self.free_pages[src] += w
                self.mms.node_pages[m][dst] += w
                self.mms.node_pages[m][src] -= w
                self.mms.queued_pages[m][dst] -= w
                mg.nr_migrate_pages[dst] -= w
                moved_in[dst] += w
            self.events["pages_migrated"] += moved_in[dst]
            cost[dst] = moved_in[dst] * self.cost.migrate_per_page_ns
            copy_ticks = -(-cost[dst] // self.tick_ns)
            # queue empty: wait for a wake-up; else sleep migrate_sleep_millisecs (+ the copy time)
            mg.waiting[dst] = mg.nr_migrate_pages[dst] == 0
            if mg.nr_migrate_pages[dst] > 0:
                mg.wake_tick[dst] = tick + self.migrate_sleep_ticks + copy_ticks
        mg.pages_migrated += sum(moved_in)
        return moved_in, cost

    # ---- 7. khugepaged (mm/huge_memory.c, spec §4.5) --------------------------------------------
    def khugepaged_scan(self) -> int:
        """Every scan_sleep_millisecs, visit the next pages_to_scan / 512 pmds (at most 64) and
        collapse each present, split unit of a live process. Returns cpu ns."""
        kh, pg = self.khugepaged, self.pages
        if self.w != HPAGE_PMD_NR or not self.thp or self.tick < kh.wake_tick:
            return 0
        n_scan = min(max(self.khugepaged_pages_to_scan // HPAGE_PMD_NR, 1), 64)
        collapsed = 0
        for j in range(n_scan):
            q = (kh.cursor + j) % self.P
            if self.mms.alive[self.unit_mm(q)] and pg.node[q] >= 0 and not pg.pmd_flags[q] & PMD_THP:
                # the new huge page keeps the node, last_nid and pmd_numa; the small pages are freed,
                # which takes them off any knuma_migrated queue
                if pg.migrate_nid[q] >= 0:
                    self.dequeue(q)
                    self.events["collapse_dequeues"] += 1
                pg.pmd_flags[q] |= PMD_THP
                collapsed += 1
        kh.cursor = (kh.cursor + n_scan) % self.P
        kh.wake_tick = self.tick + self.khugepaged_sleep_ticks
        self.events["collapses"] += collapsed
        return collapsed * HPAGE_PMD_NR * self.cost.collapse_per_page_ns

    # ---- 8. accounting --------------------------------------------------------------------------
    def charge_daemons(self, node_ns, glob_ns: int):
        """knuma_migrated<N> (bound to node N) steals its time from the threads running on node N;
        knuma_scand and khugepaged (unbound) from all running threads; integer shares."""
        tk = self.tasks
        running = [t for t in range(self.T) if self.runnable(t)]
        per_node = [0] * self.N
        for t in running:
            per_node[self.cpu_node[tk.cpu[t]]] += 1
        for t in running:
            n = self.cpu_node[tk.cpu[t]]
            tk.debt_ns[t] += node_ns[n] // per_node[n] + glob_ns // len(running)

    # ------------------------------------------------------------------------------------------
    # comparison view
    # ------------------------------------------------------------------------------------------
    def as_state_dict(self) -> dict:
        """The state as nested dicts of NumPy arrays with the fields of ``state.State`` (the queue
        rings as FIFO lists of page units per (destination, source), oldest first)."""
        I = lambda x: np.asarray(x, np.int64)  # noqa: E731
        Bl = lambda x: np.asarray(x, bool)  # noqa: E731
        pg, tk, mm, sc, mg = self.pages, self.tasks, self.mms, self.scand, self.migrated
        return {
            "tick": I(self.tick),
            "free_pages": I(self.free_pages),
            "pages": {"node": I(pg.node), "last_nid": I(pg.last_nid), "migrate_nid": I(pg.migrate_nid),
                      "pte_numa": I(pg.pte_numa), "pmd_flags": I(pg.pmd_flags)},
            "tasks": {k: I(getattr(tk, k)).reshape(-1, self.N) if k == "task_numa_fault" else I(getattr(tk, k))
                      for k in vars(tk)},
            "mms": {k: (Bl(v) if k in ("alive", "exited") else I(v).reshape(self.M, -1) if isinstance(v[0], list)
                        else I(v)) for k, v in vars(mm).items()},
            "scand": {k: I(v) for k, v in vars(sc).items()},
            "migrated": {"nr_migrate_pages": I(mg.nr_migrate_pages), "waiting": Bl(mg.waiting),
                         "wake_tick": I(mg.wake_tick), "queues": {k: list(v) for k, v in mg.queues.items()},
                         "pages_migrated": I(mg.pages_migrated)},
            "sched": {"next_balance": I(self.sched.next_balance), "pending": Bl(self.sched.pending)},
            "khugepaged": {"cursor": I(self.khugepaged.cursor), "wake_tick": I(self.khugepaged.wake_tick)},
            "memsys": {"rho_mc": I(self.memsys.rho_mc), "rho_link": I(self.memsys.rho_link)},
            "acc": {k: I(v) for k, v in self.acc.items()},
            "tot": {k: I(v) for k, v in self.tot.items()},
        }


def allocate_in_rounds(prefs, free, wmark_low, w):
    """Serve one tick's first-touch allocation requests together (mm/mempolicy.py, spec §6.4).

    ``prefs[i] = (zonelist, allowed)`` in page order. The kernel serves allocations one at a time;
    within a tick the model serves them in rounds [I]: in round r every request still unserved
    asks the r-th node of its zonelist (if allowed), and a node grants the requests asking it in
    page order while its free pages stay at or above the reserve; all N rounds run with the low
    watermark as the reserve, then all N again with none (the min-watermark retry). A request that
    still found no room over-commits its first allowed node (counted). ``free`` is updated in
    place. Returns (nodes, oom flags).
    """
    n_nodes = len(free)
    got = [-1] * len(prefs)
    for reserve in (wmark_low, [0] * n_nodes):
        for r in range(n_nodes):
            asked = [0] * n_nodes  # pages asked of each node in this round so far (granted or not)
            grant = []
            for i, (order, allowed) in enumerate(prefs):
                if got[i] >= 0 or not allowed[r]:
                    continue
                asked[order[r]] += w
                if free[order[r]] - asked[order[r]] >= reserve[order[r]]:
                    grant.append((i, order[r]))
            for i, n in grant:
                got[i] = n
                free[n] -= w
    oom = [g < 0 for g in got]
    for i, (order, allowed) in enumerate(prefs):
        if oom[i]:
            got[i] = ReferenceModel.first_choice(order, allowed)
            free[got[i]] -= w
    return got, oom


# ----------------------------------------------------------------------------------------------
# the engine's state in the same view
# ----------------------------------------------------------------------------------------------
def engine_state_dict(state, static, params) -> dict:
    """An engine ``State`` (one configuration) as the reference's nested dicts.

    The queue rings become FIFO lists: the live entries of each (destination, source) ring between
    head and tail, oldest first (an entry is live while its page is still queued to that
    destination, on that source node, with ``migrate_seq`` at the entry, in a live process).
    ``migrate_seq`` itself is a representation detail and is left out. The page units of exited
    processes are shown as freed (spec §2.1): the engine leaves them as they were, and nothing
    reads them.
    """
    import jax
    s = jax.device_get(state)
    I = lambda x: np.asarray(x).astype(np.int64)  # noqa: E731
    Bl = lambda x: np.asarray(x).astype(bool)  # noqa: E731
    N, cap = static.n_nodes, static.ring_capacity
    mm_start = np.asarray(params.workload.mm_start)
    mm_len = np.asarray(params.workload.mm_len)
    upp = static.units_per_pmd
    alive = Bl(s.mms.alive)
    node, last, mig = I(s.pages.node), I(s.pages.last_nid), I(s.pages.migrate_nid)
    seq = I(s.pages.migrate_seq)
    pte = I(s.pages.pte_numa)
    pmd = I(s.pages.pmd_flags)
    unit_mm = np.searchsorted(mm_start, np.arange(static.n_units), side="right") - 1
    ring, head, tail = np.asarray(s.migrated.ring), np.asarray(s.migrated.head), np.asarray(s.migrated.tail)

    queues = {}
    for dst in range(N):
        for src in range(N):
            if dst == src:
                continue
            r = dst * (N - 1) + (src if src < dst else src - 1)
            pos = np.arange(int(head[r]), int(tail[r]))
            u = ring[r, pos % cap]
            live = (mig[u] == dst) & (node[u] == src) & (seq[u] == pos) & alive[unit_mm[u]]
            queues[(dst, src)] = [int(x) for x in u[live]]

    exited = Bl(s.mms.exited)
    for m in np.nonzero(exited)[0]:
        n_pmds = -(-int(mm_len[m]) // upp)
        a, b = int(mm_start[m]), int(mm_start[m]) + n_pmds * upp
        node[a:b] = -1
        last[a:b] = -1
        mig[a:b] = -1
        if len(pte):
            pte[a:b] = 0
        pmd[a // upp:b // upp] = 0

    def group(obj, skip=()):
        return {k: I(v) if np.asarray(v).dtype != bool else Bl(v) for k, v in vars(obj).items() if k not in skip}

    return {
        "tick": I(s.tick),
        "free_pages": I(s.free_pages),
        "pages": {"node": node, "last_nid": last, "migrate_nid": mig, "pte_numa": pte, "pmd_flags": pmd},
        "tasks": group(s.tasks),
        "mms": group(s.mms),
        "scand": group(s.scand),
        "migrated": {"nr_migrate_pages": I(s.migrated.nr_migrate_pages), "waiting": Bl(s.migrated.waiting),
                     "wake_tick": I(s.migrated.wake_tick), "queues": queues,
                     "pages_migrated": I(s.migrated.pages_migrated)},
        "sched": group(s.sched),
        "khugepaged": group(s.khugepaged),
        "memsys": group(s.memsys),
        "acc": group(s.acc),
        "tot": group(s.tot),
    }


def diff_states(a: dict, b: dict, prefix: str = "") -> list:
    """Human-readable differences between two state dicts (empty when identical)."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        name = f"{prefix}{k}"
        if k not in a or k not in b:
            out.append(f"{name}: missing on one side")
            continue
        x, y = a[k], b[k]
        if isinstance(x, dict):
            out.extend(diff_states(x, y, name + "."))
        elif isinstance(x, list):
            if x != y:
                out.append(f"{name}: {x[:20]} != {y[:20]} (lengths {len(x)}, {len(y)})")
        else:
            x, y = np.asarray(x), np.asarray(y)
            if x.shape != y.shape:
                out.append(f"{name}: shape {x.shape} != {y.shape}")
            elif not np.array_equal(x, y):
                idx = np.argwhere(x != y)
                show = [(tuple(int(v) for v in i), x[tuple(i)].item(), y[tuple(i)].item()) for i in idx[:8]]
                out.append(f"{name}: {len(idx)} differ, (index, a, b) = {show}")
    return out
