"""One tick of the machine, phases in a fixed order (the NumPy reference follows the same order):

1. lifecycle   processes exit; one new thread is created and placed (fork balancing)
2. CFS         a noise move (other activity), one load-balancing pull, an active-balance push
3. AutoNUMA    sched_autonuma_balance on busy CPUs whose balance timer fires (CPU follows memory)
4. accesses    every running thread streams; first touch allocates; armed pmds/ptes take NUMA
               hinting faults (last_nid filter, queueing: memory follows CPU); threads advance
5. knuma_scand arms the next chunk / publishes mm statistics / sleeps; end-of-pass flush
6. knuma_migrated  daemons that are due isolate and migrate a batch (rings nearly full of dead
               entries are compacted)
7. khugepaged  re-collapses split THPs
8. accounting  kernel CPU time becomes debt of the threads that pay it; counters
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import lifecycle
from .config import POLICY_AUTONUMA24, POLICY_NUMA_CORE, POLICY_SCHED_NUMA, UPSTREAM
from .policies import numacore, schednuma, upstream
from .mm import autonuma, khugepaged, memory, migrate
from .ops import add_us, materialize
from .physics import stream
from .pytree import replace
from .rng import tick_draws
from .sched import fair, numa
from .sched.runqueue import busy_on_core, nr_running, runnable
from .state import SCAND_RUN, T_DONE, Counters, Memsys

i32 = jnp.int32
f32 = jnp.float32


def _count(c: Counters, **inc) -> Counters:
    return replace(c, **{k: getattr(c, k) + v for k, v in inc.items()})


def _overhead(c: Counters, ov) -> Counters:
    us, rem = add_us(c.overhead_us, c.overhead_rem_ns, ov)
    return replace(c, overhead_us=us, overhead_rem_ns=rem)


# ------------------------------------------------------------------------------------------------
# The phases, each a pure per-configuration function. A phase whose predicate is false for a
# configuration is exactly the identity for it; the batched driver relies on this to skip a
# phase that no configuration of the batch needs in a tick, so a configuration's results never
# depend on its batch (tests check it).
# ------------------------------------------------------------------------------------------------
def _phase_fns(static):
    """The phase functions of one static configuration (closures over its shapes)."""
    def _autonuma_on(params):
        return (params.policy == POLICY_AUTONUMA24) & (params.knobs.autonuma.enabled == 1)

    def _affinity_on(params):
        """task_selected_nid steers CFS and allocation: AutoNUMA24, and sched_numa's home node."""
        return (_autonuma_on(params) | ((params.policy == POLICY_SCHED_NUMA)
                                        & (params.knobs.sched_numa.numa_migration == 1))
                | (params.policy == POLICY_NUMA_CORE))


    def _draws(state, params, go=None):
        d = params.derived
        # computed once: fused, the hash was recomputed in every halving of the memory-system solver
        draws = materialize(go, tick_draws, params.seed, state.tick, state.tasks.speed_q, d.speed_a, d.speed_b,
                            d.phase_jitter_ns)
        state = replace(state, tasks=replace(state.tasks, speed_q=draws.speed_q))
        return lifecycle.exit_mms(state, params, static, respawn=False), draws

    def _respawn_needed(state, params):
        return lifecycle.respawn_needed(state, params, static)

    def _respawn(state, params):
        return lifecycle.respawn_one(state, params, static), None


    def _start_needed(state, params):
        t = state.tasks
        sa = params.workload.start_after
        parent = jnp.where(sa >= 0, t.phase[jnp.maximum(sa, 0)] >= 2, True)
        return jnp.any((t.phase == 0) & parent)


    def _start(state, params):
        return lifecycle.start_one_task(state, params, static, _affinity_on(params)), None


    def _noise_needed(state, params, draws):
        return (draws.noise[0] < params.derived.noise_threshold) & jnp.any(runnable(state.tasks))


    def _noise(state, params, draws):
        tasks, moved = fair.noise_move(state.tasks, draws, params, static, _affinity_on(params))
        return replace(state, tasks=tasks), moved


    def _lb_needed(state, params):
        return jnp.max(nr_running(state.tasks, static.n_cpus)) >= 2


    def _lb(state, params):
        tasks, pulled = fair.load_balance(state.tasks, params, static, _affinity_on(params),
                                          params.knobs.autonuma.scheduler.load_balance_strict)
        return replace(state, tasks=tasks), pulled


    def _active_needed(state, params):
        return fair.active_balance_needed(state.tasks, params, static, state.tick)

    def _active(state, params):
        tasks, moved = fair.active_balance(state.tasks, params, static, _affinity_on(params), state.tick)
        return replace(state, tasks=tasks), moved

    def _balance_needed(state, params):
        return jnp.any(state.tick >= state.sched.next_balance)


    def _balance(state, params):
        fire = state.tick >= state.sched.next_balance
        tasks, sched, n_exch, moved = numa.sched_autonuma_balance(state, params, static,
                                                                  params.policy == POLICY_AUTONUMA24,
                                                                  params.knobs.autonuma.enabled)
        if POLICY_SCHED_NUMA in static.policies:  # sched_numa's NUMA_PULL_BIAS on the same timers
            tasks, n2, moved2 = schednuma.pull_bias(replace(state, tasks=tasks), params, static, fire)
            n_exch, moved = n_exch + n2, moved | moved2
        return replace(state, tasks=tasks, sched=sched), (n_exch, moved)


    def _stream(state, params, draws, go=None):
        mp = params.machine
        tasks = state.tasks
        run = runnable(tasks)
        nr = nr_running(tasks, static.n_cpus)
        cpu = jnp.maximum(tasks.cpu, 0)
        share = jnp.where(run, static.tick_ns // jnp.maximum(nr[cpu], 1), 0)
        pay = jnp.minimum(tasks.debt_ns, share)
        budget = share - pay
        core_busy = busy_on_core(nr, mp.cpu_core, static.n_cpus)[cpu]
        tasks = replace(tasks, debt_ns=tasks.debt_ns - pay, exec_us=tasks.exec_us + share // 1000)
        st = stream(tasks, state.pages, params, static, draws, budget, run, core_busy, _affinity_on(params),
                    state.memsys, go)
        return replace(state, tasks=tasks, memsys=Memsys(rho_mc=st.rho_mc, rho_link=st.rho_link)), st


    def _access_count(state, params, st):
        """(interesting entries, absent touched units): the compact paths' conditions."""
        return jnp.stack([jnp.sum(memory.interesting(state.pages, static, st).astype(i32)),
                          jnp.sum(memory.absent_touched(state.pages, static, st).astype(i32))])

    def _access(state, params, st):
        state, wake, stats = memory.access(state, params, static, st, _autonuma_on(params))
        return state, (wake, stats)

    def _access_compact(state, params, st):
        state, wake, stats = memory.access(state, params, static, st, _autonuma_on(params),
                                           capacity=static.access_compact)
        return state, (wake, stats)

    def _access_faults(state, params, st):
        state, wake, stats = memory.access(state, params, static, st, _autonuma_on(params),
                                           capacity=static.access_compact, first_touch=False)
        return state, (wake, stats)


    def _scand_needed(state, params):
        sc = state.scand
        return _autonuma_on(params) & ((sc.phase == SCAND_RUN) | (state.tick >= sc.wake_tick))


    def _scand(state, params):
        state, flush, scan_ns = autonuma.knuma_scand(state, params, static, _autonuma_on(params))
        return state, (flush, scan_ns)


    def _migrated_needed(state, params, wake):
        mg = state.migrated
        return jnp.any((mg.waiting & wake & (mg.nr_migrate_pages > 0)) | (~mg.waiting & (state.tick >= mg.wake_tick)))


    def _migrated(state, params, wake):
        state, moved, cost = migrate.knuma_migrated(state, params, static, wake)
        return state, (moved, cost)


    def _tscan_needed(state, params):
        return upstream.scan_needed(state, params)

    def _tscan(state, params):
        state, cost = upstream.task_numa_work(state, params, static)
        tasks = replace(state.tasks, debt_ns=state.tasks.debt_ns + cost)
        return replace(state, tasks=tasks), jnp.sum(cost)

    def _placement_needed(state, params):
        return upstream.placement_needed(state, params)

    def _placement(state, params):
        if POLICY_SCHED_NUMA in static.policies:
            state = upstream.schednuma_placement(state, params, static)
        state = upstream.task_numa_placement(state, params, static)
        state, n, moved = upstream.task_numa_migrate(state, params, static)
        if POLICY_NUMA_CORE in static.policies:
            state, n2, moved2 = numacore.placement(state, params, static)
            n, moved = n + n2, moved | moved2
        cost = jnp.where(moved, params.knobs.costs.exchange_ns, 0)
        tasks = replace(state.tasks, debt_ns=state.tasks.debt_ns + cost)
        return replace(state, tasks=tasks), (n, jnp.sum(cost))

    def _compact_needed(state, params):
        return jnp.any(migrate.rings_to_compact(state.migrated, static))

    def _compact(state, params):
        return migrate.compact_rings(state, params, static), None

    def _khugepaged_needed(state, params):
        return (params.derived.thp == 1) & (state.tick >= state.khugepaged.wake_tick)


    def _khugepaged(state, params):
        state, cost = khugepaged.khugepaged(state, params, static)
        return state, cost


    def _advance(state, params, st, ast, moved, go=None):
        """Threads move forward; the faults' and first touches' costs become their debt."""
        mp = params.machine
        exch_ns = jnp.where(moved, params.knobs.costs.exchange_ns, 0)
        cpu_node = mp.cpu_node[jnp.maximum(state.tasks.cpu, 0)]
        # the access phase read the entries' nodes after its allocations and migrations; when it was
        # skipped (``ran`` False: nothing interesting this tick), they are the stream's own lookup
        node_entry = jnp.where(ast["ran"], ast["node_entry"], st.est_node)
        local_kib = jnp.sum(jnp.where(st.valid & (node_entry == cpu_node[:, None]), st.kib, 0))
        total_kib = jnp.sum(jnp.where(st.valid, st.kib, 0))
        tasks = lifecycle.advance(state.tasks, params, st, state.tick + 1, go)
        tasks = replace(tasks, debt_ns=tasks.debt_ns + ast["fault_ns"] + ast["alloc_ns"] + exch_ns)
        inc = dict(local_kib=local_kib, total_kib=total_kib, hinting_faults=ast["hinting_faults"],
                   fault_pages=ast["fault_pages"], pages_queued=ast["pages_queued"], queue_overflows=ast["overflows"],
                   capped_ticks=jnp.sum(st.capped.astype(i32)), oom_pages=ast["oom"],
                   fault_ns=jnp.sum(ast["fault_ns"]) - ast["up_migrate_ns"], exch_ns=jnp.sum(exch_ns),
                   alloc_ns=jnp.sum(ast["alloc_ns"]), up_migrated=ast["migrated"], up_migrate_ns=ast["up_migrate_ns"])
        return replace(state, tasks=tasks), inc


    def _account(state, params, inc, scan_ns, mig_ns, coll_ns, moved_pages, n_exch, noise, pulled,
                 up_scan_ns, up_moves, up_move_ns):
        """Daemons steal CPU time from the threads running where they run; counters."""
        N = static.n_nodes
        mp = params.machine
        tasks = state.tasks
        run = runnable(tasks)
        tnode = mp.cpu_node[jnp.maximum(tasks.cpu, 0)]
        per_node_run = jax.ops.segment_sum(run.astype(i32), jnp.where(run, tnode, N), num_segments=N + 1)[:N]
        share_node = jnp.where(run, mig_ns[tnode] // jnp.maximum(per_node_run[tnode], 1), 0)  # knuma_migrated<N>
        n_run = jnp.sum(run.astype(i32))
        glob_ns = scan_ns + coll_ns  # unbound kernel threads
        share_glob = jnp.where(run, glob_ns // jnp.maximum(n_run, 1), 0)
        tasks = replace(tasks, debt_ns=tasks.debt_ns + share_node + share_glob)
        # upstream: its scans and synchronous migrations are paid by the tasks (already in their debt)
        ov = jnp.stack([scan_ns + up_scan_ns, inc["fault_ns"], jnp.sum(mig_ns) + inc["up_migrate_ns"],
                        inc["exch_ns"] + up_move_ns,
                        coll_ns]).astype(i32)
        counts = dict(local_kib=inc["local_kib"], total_kib=inc["total_kib"], hinting_faults=inc["hinting_faults"],
                      fault_pages=inc["fault_pages"], pages_queued=inc["pages_queued"],
                      pages_migrated=jnp.sum(moved_pages) + inc["up_migrated"], exchanges=n_exch + up_moves,
                      noise_moves=noise.astype(i32),
                      lb_moves=pulled.astype(i32), queue_overflows=inc["queue_overflows"],
                      capped_ticks=inc["capped_ticks"], oom_pages=inc["oom_pages"],
                      first_touch_us=inc["alloc_ns"] // 1000,
                      # knuma_migrated<N> allocates its targets on its own node: local hits
                      numa_hit=jnp.sum(moved_pages), numa_local=jnp.sum(moved_pages))
        acc = _overhead(_count(state.acc, **counts), ov)
        tot_counts = {k: v for k, v in counts.items() if k not in ("local_kib", "total_kib")}
        tot = _overhead(_count(state.tot, **tot_counts), ov)
        kib = state.tot.kib_rem + jnp.stack([inc["local_kib"], inc["total_kib"]])
        tot = replace(tot, local_mib=tot.local_mib + kib[0] // 1024, total_mib=tot.total_mib + kib[1] // 1024,
                      kib_rem=kib % 1024)
        return replace(state, tasks=tasks, acc=acc, tot=tot, tick=state.tick + 1), None


    return locals()


def config_live(state, params):
    """The configuration has not reached its own end: some thread or process slot still has work,
    or a finished process has not exited yet. After its end a configuration is frozen (``_freeze``):
    its counters, timers and daemons stop, so every summary is defined at its own end whatever else
    shares its batch."""
    t, m = state.tasks, state.mms
    done = (jnp.all(t.phase == T_DONE) & jnp.all(m.generation >= params.workload.mm_respawns)
            & ~jnp.any(m.alive))
    return ~done


def _freeze(new, old, live):
    """``new`` where the configuration is live, else ``old``, for everything a finished
    configuration could still change (its daemons' timers and counters, the tick). The page units
    and the queue rings are taken from ``new``: with every process exited nothing touches them, and
    selecting them would cost a tick work in proportion to memory."""
    def strip(s):
        return replace(s, pages=None, migrated=replace(s.migrated, ring=None))
    small = jax.tree_util.tree_map(lambda a, b: jnp.where(live, a, b), strip(new), strip(old))
    return replace(small, pages=new.pages, migrated=replace(small.migrated, ring=new.migrated.ring))


def _drive(state, params, static, batched: bool):
    """Run the phases in order (``batched`` vmaps each phase and skips the unneeded ones), then
    freeze the configurations that had reached their own end."""
    if batched:
        with jax.named_scope("live"):
            live = jax.vmap(config_live)(state, params)
        new = _phases(state, params, static, batched, live)
        with jax.named_scope("freeze"):
            return jax.vmap(_freeze)(new, state, live)
    live = config_live(state, params)
    return _freeze(_phases(state, params, static, batched, live), state, live)


def _phases(state, params, static, batched, live):
    if batched:
        def always(fn, *args):
            with jax.named_scope(getattr(fn, "func", fn).__name__.strip("_")):
                return jax.vmap(fn)(*args)

        def gated(pred, fn, *args, small=()):
            """``fn`` for the batch if any live configuration needs it (``pred`` > 0, or its first
            element > 0), else nothing. ``small``: alternatives (fits, fn_small), each giving
            ``fn``'s results with less work when ``fits(pred)`` holds for every live
            configuration; the last one that fits runs."""
            # a configuration past its own end needs nothing (its results are frozen anyway)
            with jax.named_scope(fn.__name__.strip("_")):
                n = jax.vmap(pred)(*args)
                need = jnp.any(((n if n.ndim == 1 else n[:, 0]) > 0) & live)
                out_shape = jax.eval_shape(jax.vmap(fn), *args)[1]
                zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), out_shape)
                fns, index = [fn], need.astype(i32)
                for fits, fn_small in small:
                    fns.append(fn_small)
                    index = jnp.where(need & jnp.all(fits(n) | ~live), len(fns), index)
                # Each variant is a while loop that runs once or not at all, not a branch of a
                # conditional: XLA gives a conditional's result buffers of their own, so every
                # array any branch writes (the page arrays, 8 bytes per unit) was copied each
                # tick, taken or not; a loop updates its carried state in place.
                state, out = args[0], zeros
                for k, g in enumerate(fns, start=1):
                    def body(c, g=g):
                        return (jnp.bool_(False),) + tuple(jax.vmap(g)(c[1], *args[1:]))
                    _, state, out = jax.lax.while_loop(lambda c: c[0], body, (index == k, state, out))
                return state, out
    else:
        def always(fn, *args):
            return fn(*args)

        def gated(pred, fn, *args, small=()):
            return fn(*args)

    f = _phase_fns(static)
    _draws, _start_needed, _start = f["_draws"], f["_start_needed"], f["_start"]
    _noise_needed, _noise, _lb_needed, _lb = f["_noise_needed"], f["_noise"], f["_lb_needed"], f["_lb"]
    _balance_needed, _balance, _stream = f["_balance_needed"], f["_balance"], f["_stream"]
    _access_count, _access, _advance = f["_access_count"], f["_access"], f["_advance"]
    _scand_needed, _scand, _migrated_needed, _migrated = (f["_scand_needed"], f["_scand"], f["_migrated_needed"],
                                                          f["_migrated"])
    _khugepaged_needed, _khugepaged, _account = f["_khugepaged_needed"], f["_khugepaged"], f["_account"]
    _compact_needed, _compact = f["_compact_needed"], f["_compact"]
    # the batch has work: unbatched, so that the loops that materialise values (``ops.materialize``)
    # inside the vmapped phases stay loops of the batch
    go = jnp.any(live) if batched else None
    # 1. lifecycle
    state, draws = always(partial(_draws, go=go), state, params)
    state, _ = gated(f["_respawn_needed"], f["_respawn"], state, params)
    state, _ = gated(_start_needed, _start, state, params)
    # 2. CFS
    state, noise = gated(_noise_needed, _noise, state, params, draws)
    state, pulled = gated(_lb_needed, _lb, state, params)
    state, pushed = gated(f["_active_needed"], f["_active"], state, params)
    pulled = pulled | pushed
    # 3. sched_autonuma_balance
    state, (n_exch, moved) = gated(_balance_needed, _balance, state, params)
    # 4. accesses
    state, st = always(partial(_stream, go=go), state, params, draws)
    # the rings are not carried through the access phase (around the conditional it once was, XLA
    # copied them every tick); the few entries it queues are written after it
    ring = state.migrated.ring
    state = replace(state, migrated=replace(state.migrated, ring=None))
    cap = static.access_compact
    state, (wake, ast) = gated(_access_count, _access, state, params, st,
                               small=[(lambda n: n[:, 0] <= cap, f["_access_compact"]),
                                      (lambda n: (n[:, 0] <= cap) & (n[:, 1] == 0), f["_access_faults"])])
    ring = always(migrate.write_rings, ring, ast["ring_slot"], ast["ring_unit"])
    state = replace(state, migrated=replace(state.migrated, ring=ring))
    state, acc_inc = always(partial(_advance, go=go), state, params, st, ast, moved)
    # 5. knuma_scand
    state, (flush, scan_ns) = gated(_scand_needed, _scand, state, params)
    # 5b. upstream NUMA balancing: task-context scanning, placement (policies/upstream.py)
    z = jnp.zeros_like(state.tick)  # batched (or not) like the state
    up_scan_ns, up_moves, up_move_ns = z, z, z
    if any(pid in UPSTREAM for pid in static.policies):
        f2 = _phase_fns(static)
        state, up_scan_ns = gated(f2["_tscan_needed"], f2["_tscan"], state, params)
        state, (up_moves, up_move_ns) = gated(f2["_placement_needed"], f2["_placement"], state, params)
    # 6. knuma_migrated
    wake_all = always(lambda s, w, f: (s, w | (f & (s.migrated.nr_migrate_pages > 0))), state, wake, flush)[1]
    state, (moved_pages, mig_ns) = gated(_migrated_needed, _migrated, state, params, wake_all)
    state, _ = gated(_compact_needed, _compact, state, params)
    # 7. khugepaged
    state, coll_ns = gated(_khugepaged_needed, _khugepaged, state, params)
    # 8. accounting
    state, _ = always(_account, state, params, acc_inc, scan_ns, mig_ns, coll_ns, moved_pages, n_exch, noise, pulled,
                      up_scan_ns, up_moves, up_move_ns)
    return state


def step(state, params, static):
    """Advance one configuration by one tick. Pure; ``vmap`` it over configurations."""
    return _drive(state, params, static, batched=False)


def step_batch(state, params, static):
    """Advance a batch of configurations (leading axis) by one tick, skipping the phases that no
    configuration of the batch needs this tick. Same per-configuration results as ``vmap(step)``."""
    return _drive(state, params, static, batched=True)
