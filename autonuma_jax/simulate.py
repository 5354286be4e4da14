"""Run many configurations: chunked ``lax.scan`` over ticks under ``jit(vmap(...))``.

A chunk is ``reports_per_chunk`` report intervals; each interval is a scan over its ticks and
emits one time-series row. Between chunks control returns to Python (progress, early stop when
every configuration has finished, checkpoints). Configurations are grouped into buckets of equal
static shapes; each bucket compiles once.

The module itself is callable: ``autonuma_jax.simulate(cfgs)`` is ``simulate.simulate(cfgs)``
(see ``_CallableModule`` at the end), so ``import autonuma_jax.simulate as m`` gives this module
while the package's ``an.simulate(cfgs)`` keeps working.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
import time
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union, cast

import jax
import jax.numpy as jnp
import numpy as np

from . import invariants
from . import params as P
from .config import RunConfig, build_static, shape_key, validate_run
from .errors import ConfigError
from .progress import Progress, ProgressRecord, chunks_of
from .pytree import pytree_dataclass, replace
from .state import T_DONE, T_WORK, VMSTAT_COUNTERS, init_state, zero_counters
from .static import Static
from .tick import config_live, step, step_batch

if TYPE_CHECKING:
    from .params import Params
    from .state import State

# Skip phases no configuration of the batch needs in a tick (tick.step_batch); False: plain vmap.
GATED = True

i32 = jnp.int32


@pytree_dataclass
class Row:
    """One time-series row (per configuration): interval counters and a snapshot of the state."""
    tick: jnp.ndarray
    local_kib: jnp.ndarray
    total_kib: jnp.ndarray
    hinting_faults: jnp.ndarray
    fault_pages: jnp.ndarray
    pages_queued: jnp.ndarray
    pages_migrated: jnp.ndarray
    exchanges: jnp.ndarray
    noise_moves: jnp.ndarray
    lb_moves: jnp.ndarray
    overhead_us: jnp.ndarray  # [5]
    full_scans: jnp.ndarray
    pages_scanned: jnp.ndarray
    mm_node_pages: jnp.ndarray  # [M, N] the nmstat view
    task_node: jnp.ndarray  # [T] node of each thread's CPU (-1 = not running)
    task_selected_nid: jnp.ndarray  # [T]
    nr_migrate_pages: jnp.ndarray  # [N]
    free_pages: jnp.ndarray  # [N]
    tasks_done: jnp.ndarray
    tasks_working: jnp.ndarray  # threads past their initialisation (working or done)
    invariants_ok: jnp.ndarray  # [K] in check_invariants mode (invariants.NAMES), [0] otherwise
    # the kernel's vmstat NUMA counters of the interval (vmstat.py)
    numa_pte_updates: jnp.ndarray
    numa_huge_pte_updates: jnp.ndarray
    numa_hint_faults_local: jnp.ndarray
    numa_hit: jnp.ndarray
    numa_miss: jnp.ndarray
    numa_local: jnp.ndarray
    numa_other: jnp.ndarray


class InvariantViolation(RuntimeError):
    pass


def snapshot(state, params, static=None) -> Row:
    a = state.acc
    tasks = state.tasks
    task_node = jnp.where(tasks.cpu >= 0, params.machine.cpu_node[jnp.maximum(tasks.cpu, 0)], -1)
    return Row(tick=state.tick, local_kib=a.local_kib, total_kib=a.total_kib, hinting_faults=a.hinting_faults,
               fault_pages=a.fault_pages, pages_queued=a.pages_queued, pages_migrated=a.pages_migrated,
               exchanges=a.exchanges, noise_moves=a.noise_moves, lb_moves=a.lb_moves, overhead_us=a.overhead_us,
               full_scans=state.scand.full_scans, pages_scanned=state.scand.pages_scanned,
               mm_node_pages=state.mms.node_pages, task_node=task_node.astype(i32),
               task_selected_nid=tasks.task_selected_nid, nr_migrate_pages=state.migrated.nr_migrate_pages,
               free_pages=state.free_pages, tasks_done=jnp.sum((tasks.phase == T_DONE).astype(i32)),
               tasks_working=jnp.sum((tasks.phase >= T_WORK).astype(i32)),
               invariants_ok=(invariants.check(state, params, static) if static is not None and static.check_invariants
                              else jnp.zeros(0, bool)),
               **{k: getattr(a, k) for k in VMSTAT_COUNTERS})


def run_interval(state, params, static: Static, report_ticks):
    """``report_ticks`` (traced) ticks of a batch (leading axis = configuration), then one row each."""
    def body(_, s):
        if GATED:
            return step_batch(s, params, static)
        return jax.vmap(lambda a, b: step(a, b, static))(s, params)

    state = jax.lax.fori_loop(0, report_ticks, body, state)
    row = jax.vmap(lambda s, p: snapshot(s, p, static))(state, params)
    acc = jax.vmap(lambda a: replace(zero_counters(), overhead_rem_ns=a.overhead_rem_ns, kib_rem=a.kib_rem))(state.acc)
    return replace(state, acc=acc), row


def run_chunk(state, params, n_run, report_ticks, static: Static, n_reports: int):
    """``n_run`` (a traced count, at most ``n_reports``) report intervals of ``report_ticks`` (traced)
    ticks each, and their rows ([B, n_reports, ...]; the rows past ``n_run`` are zeros, for the
    caller to drop). Both counts are values, not shapes, so the last, shorter chunk of a run, runs of
    other lengths and other report intervals use the same compiled program (a shorter chunk of its
    own once cost a second compile of the whole tick in most short runs)."""
    row_shape = jax.eval_shape(lambda s, p: jax.vmap(lambda a, b: snapshot(a, b, static))(s, p), state, params)
    rows0 = jax.tree_util.tree_map(lambda a: jnp.zeros((n_reports,) + a.shape, a.dtype), row_shape)

    def body(i, c):
        s, rows = c
        s, row = run_interval(s, params, static, report_ticks)
        return s, jax.tree_util.tree_map(lambda r, x: jax.lax.dynamic_update_index_in_dim(r, x, i, 0), rows, row)

    # a loop with a traced trip count: the same structure as a scan over the intervals
    state, rows = jax.lax.fori_loop(0, jnp.minimum(n_run, n_reports), body, (state, rows0))
    return state, jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), rows)  # [B, R, ...]


# Bounded: every compiled executable keeps its machine code mapped (on the CPU backend, ~2300
# memory mappings each), and a long in-process sweep over many shapes would otherwise grow until the
# process hits vm.max_map_count and XLA aborts. Dropping a jitted function frees its executables.
COMPILED_CACHE_SIZE = 8

# Bucket.run(retire_done=True): finished configurations leave the batch only when the time the
# smaller batch saves (guessed) is this many times the compile it costs (0: whenever half are done).
RETIRE_PAYBACK = 2.0
_COMPILE_S: dict = {}  # program_static -> wall seconds of the last chunk call that compiled it (compile + chunk)


def _programs(fn) -> int:
    """Programs a jitted function holds (0 where jax does not say)."""
    size = getattr(fn, "_cache_size", None)
    return int(size()) if callable(size) else 0


def program_static(static: Static) -> Static:
    """The part of ``static`` a compiled program depends on: the run's length (``n_reports``) and its
    report interval (``report_ticks``) are the trip counts of its loops, passed as values, so runs
    that differ only in those share programs."""
    return replace(static, n_reports=1, report_ticks=1)


def chunk_length(reports_per_chunk: int, total: int) -> int:
    """Report intervals per compiled chunk for a run of ``total`` rows: ``reports_per_chunk``, or for
    a shorter run the next power of two >= ``total`` (so that short runs of nearby lengths share a
    program; the intervals past the run's end are not simulated)."""
    k = max(1, int(reports_per_chunk))
    return k if total >= k else min(k, 1 << (max(1, int(total)) - 1).bit_length())


def compiled_chunk(static: Static, n_reports: int):
    """jit of ``run_chunk`` for one bucket (batched step inside), called as ``fn(state, params, n_run,
    report_ticks)`` (int32 scalars: ``n_run`` <= ``n_reports`` intervals of ``report_ticks`` ticks;
    ``chunk_args`` makes them); the state buffers are donated.
    Programs are shared by every ``static`` with the same ``program_static``."""
    return _compiled_chunk(program_static(static), int(n_reports))


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compiled_chunk(static: Static, n_reports: int):
    fn = functools.partial(run_chunk, static=static, n_reports=n_reports)
    return jax.jit(fn, donate_argnums=(0,))


def chunk_args(static: Static, n_run: int) -> tuple:
    """The trip counts ``compiled_chunk``'s function takes after (state, params): ``n_run`` report
    intervals of ``static.report_ticks`` ticks."""
    return jnp.int32(n_run), jnp.int32(static.report_ticks)


compiled_chunk.cache_info = _compiled_chunk.cache_info  # type: ignore[attr-defined]
compiled_chunk.cache_clear = _compiled_chunk.cache_clear  # type: ignore[attr-defined]


def compiled_init(static: Static):
    """jit of the batch's initial state (shared like ``compiled_chunk``'s programs)."""
    return _compiled_init(program_static(static))


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compiled_init(static: Static):
    return jax.jit(jax.vmap(functools.partial(init_state, static)))


compiled_init.cache_info = _compiled_init.cache_info  # type: ignore[attr-defined]
compiled_init.cache_clear = _compiled_init.cache_clear  # type: ignore[attr-defined]


def release_compiled() -> None:
    """Forget every compiled function of this module and JAX's own caches (frees their code mappings)."""
    compiled_chunk.cache_clear()
    compiled_init.cache_clear()
    jax.clear_caches()


@dataclass
class Result:
    """What one configuration produced: its time series (``rows``) and end state (``final``).

    Attributes:
        config: the configuration as simulated (validated and normalised by ``validate_run``:
            numbers as float/int, a machine preset kept as its name).
        static: the shapes of its batch (``static.Static``): ``n_nodes`` (N), ``n_tasks`` (T
            threads), ``n_mms`` (M processes), ``tick_s``, ``report_ticks`` ...
        rows: the time series, name -> ``np.ndarray`` whose leading axis R is the report rows of
            this configuration: one per ``sim.report_interval_ms``, stopping at the first row that
            reached the configuration's end (all threads done with ``stop_when_done``, or
            ``sim.duration_s``). Interval counters are reset at every row; snapshots are the state
            at the row's end. Keys (the fields of ``Row``), all int32 unless noted:

            - ``tick`` [R]: tick at the row's end (ticks of ``sim.tick_ms``).
            - ``local_kib``, ``total_kib`` [R]: KiB the threads wrote to their own node / in all,
              in the interval (their ratio is the local fraction, ``metrics.local_fraction``).
            - ``hinting_faults`` [R]: NUMA hinting fault events (pmd or pte) in the interval.
            - ``fault_pages`` [R]: 4 KiB pages those faults handled.
            - ``pages_queued``, ``pages_migrated`` [R]: 4 KiB pages queued for / moved by migration
              in the interval.
            - ``exchanges`` [R]: task exchanges / NUMA task moves of the policy in the interval.
            - ``noise_moves``, ``lb_moves`` [R]: cross-node moves of threads by other activity, and
              CFS load-balancing pulls, in the interval.
            - ``overhead_us`` [R, 5]: kernel CPU time (us) in the interval per source
              (``metrics.OVERHEAD_NAMES``: scan, fault, migrate, exchange, collapse).
            - ``full_scans``, ``pages_scanned`` [R]: knuma_scand's running totals (snapshot).
            - ``mm_node_pages`` [R, M, N]: 4 KiB pages of each process on each node (the nmstat
              view, snapshot).
            - ``task_node`` [R, T]: node of each thread's CPU (-1: not running).
            - ``task_selected_nid`` [R, T]: each thread's ``task_selected_nid`` (-1: none).
            - ``nr_migrate_pages`` [R, N]: 4 KiB pages queued towards each node (snapshot).
            - ``free_pages`` [R, N]: free 4 KiB pages of each node (snapshot).
            - ``tasks_done`` [R]: threads that finished their work (snapshot).
            - ``tasks_working`` [R]: threads past their initialisation, working or done (snapshot).
            - ``invariants_ok`` [R, K] bool: with ``sim.check_invariants``, each invariant of
              ``invariants.NAMES`` held at the row's end; [R, 0] otherwise.
            - ``numa_pte_updates``, ``numa_huge_pte_updates``, ``numa_hint_faults_local``,
              ``numa_hit``, ``numa_miss``, ``numa_local``, ``numa_other`` [R]: the kernel's vmstat
              NUMA counters of the interval (``vmstat.py``; 4 KiB pages, faults, huge pmds).
        final: the end state, name -> ``np.ndarray`` (int32):

            - ``finish_tick`` [T]: tick at which each thread finished its work (-1: it did not).
            - ``tick`` []: the configuration's last tick.
            - ``full_scans``, ``pages_scanned`` []: knuma_scand's totals (sysfs counters).
            - ``pages_migrated`` []: knuma_migrated's ``pages_migrated`` (4 KiB pages).
            - ``task_numa_fault`` [T, N], ``mm_numa_fault`` [M, N]: AutoNUMA's per-thread and
              per-process NUMA fault statistics (the process's: its last completed scan).
            - ``task_selected_nid`` [T]: each thread's ``task_selected_nid`` (-1: none).
            - ``tot_<counter>``: the run's total of every field of ``state.Counters``
              (``tot_hinting_faults``, ``tot_exchanges``, ``tot_overhead_us`` [5], ``tot_local_mib``,
              ``tot_total_mib``, ...), the same units as the rows'.
    """
    config: RunConfig
    static: Static
    rows: dict[str, np.ndarray]
    final: dict[str, np.ndarray]

    def summary(self) -> dict[str, str | int | float | bool]:
        """The summary metrics of this run (``metrics.summarize``): a new dict of plain Python values.

        Keys:
            - ``label`` (str): ``config.label()``, ``"<machine>/<workload>/<policy>/seed<seed>"``.
            - ``policy`` (str), ``seed`` (int): the configuration's.
            - ``finished`` (bool): every thread finished its work within the run.
            - ``runtime_s`` (float, simulated s): when the last thread finished; NaN when one did not.
            - ``sim_s`` (float, simulated s): how long the run lasted (its last tick).
            - ``local_fraction_final`` (float in [0, 1]): the byte-weighted local fraction of the
              writes over the last 10 % of the rows in which work was done; NaN when none was.
            - ``converge_s`` (float, simulated s): end of the earliest steady row (before the first
              thread finished: ``metrics.steady_rows``) from which the local fraction of every later
              steady row stays within ``metrics.CONVERGED_TOLERANCE`` (0.05) of the steady final
              locality; the last steady row when it never settles.
            - ``converged`` (bool): the locality really settled (for longer than the final window,
              above 1 / nodes: ``metrics.converged``); read it before trusting ``converge_s``.
            - ``pages_migrated`` (int, 4 KiB pages): pages moved by the policy's migration.
            - ``full_scans`` (int, passes): complete passes of knuma_scand over the processes.
            - ``pages_scanned`` (int, 4 KiB pages): pages knuma_scand visited.
            - ``hinting_faults`` (int, faults): NUMA hinting fault events.
            - ``exchanges`` (int, moves): task exchanges / NUMA task moves of the policy.
            - ``noise_moves`` (int, moves): cross-node thread moves caused by other activity.
            - ``lb_moves`` (int, moves): CFS load-balancing pulls.
            - ``queue_overflows`` (int, page units): migration queueings refused by a full queue.
            - ``capped_ticks`` (int, thread-ticks): a thread reached the engine's per-tick capacity
              (``Static.units_per_tick``) and its rate was cut.
            - ``oom_pages`` (int, 4 KiB pages): allocations that found no room on any node.
            - ``overhead_cpu_s`` (float, CPU s): kernel CPU time of the policy, all sources.
            - ``overhead_scan_s``, ``overhead_fault_s``, ``overhead_migrate_s``,
              ``overhead_exchange_s``, ``overhead_collapse_s`` (float, CPU s): the same per source.
            - the kernel's counters (``vmstat.kernel_counters``; NaN where the policy's kernel had
              none): ``numa_hit``, ``numa_miss``, ``numa_foreign``, ``numa_interleave``,
              ``numa_local``, ``numa_other`` (int, 4 KiB pages: allocations); ``numa_pte_updates``
              (int, 4 KiB pages), ``numa_huge_pte_updates`` (int, pmds), ``numa_hint_faults``,
              ``numa_hint_faults_local`` (int, faults), ``numa_pages_migrated`` (int, 4 KiB pages);
              AutoNUMA24's sysfs ``autonuma.knuma_scand.full_scans`` (passes),
              ``autonuma.knuma_scand.pages_scanned``, ``autonuma.knuma_migrated.pages_migrated``
              (4 KiB pages); mmtests' ``mmtests_hint_local_pct`` (%), ``mmtests_pte_updates_base``
              (4 KiB pages), ``mmtests_autonuma_cost`` (mmtests' units) (docs/counters.md).
            - perf_bench_numa workloads only, what perf prints (``workloads/perf_figures.py``):
              ``perf_convergence_latency_s``, ``perf_runtime_max_s``, ``perf_runtime_min_s``,
              ``perf_runtime_avg_s`` (float, s), ``perf_converged``, ``perf_cut_short`` (bool),
              ``perf_spread_runtime_pct`` (float, %), ``perf_data_thread_gb``, ``perf_data_total_gb``
              (float, GB), ``perf_runtime_byte_thread_ns`` (float, ns), ``perf_thread_speed_gbs``,
              ``perf_total_speed_gbs`` (float, GB/s).
        """
        from .metrics import summarize
        return summarize(self)


def batch_sharding(devices: Sequence[jax.Device] | None = None) -> tuple[jax.sharding.NamedSharding | None, int]:
    """NamedSharding of the configuration axis over the local devices (None for one device)."""
    devs = list(devices) if devices is not None else jax.local_devices()
    if len(devs) <= 1:
        return None, 1
    kw = {}
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is not None:  # jax 0.10+: meshes can be Explicit; we want plain automatic sharding
        kw["axis_types"] = (axis_type.Auto,)
    mesh = jax.sharding.Mesh(np.array(devs), ("batch",), **kw)
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")), len(devs)


@dataclass
class Bucket:
    """One compiled batch: configurations sharing a Static, sharded over the local devices.

    ``simulate`` builds and runs these for you; use one directly to checkpoint, resume or stop a
    run between chunks (``run``'s arguments).

    Attributes:
        static: the shapes every configuration of the batch shares (one compiled program).
        configs: the (validated) configurations, B of them.
        params: their traced values stacked (``params.Params``, leading axis B + ``n_pad``),
            placed on the devices.
        n_pad: padding rows (copies of the last configuration) that make the batch divisible by
            the number of devices; dropped from the results.
        sharding: the sharding of the configuration axis over the devices (None on one device).
        state: the batch's state (``state.State``, leading axis B + ``n_pad``); None before
            ``init``.
        rows: the time-series rows of every chunk run so far, one ``Row`` of numpy arrays
            [B + n_pad, reports in the chunk, ...] per chunk.
        reports_done: report intervals simulated so far (of ``static.n_reports``).
    """
    static: Static
    configs: list[RunConfig]
    params: Params | None
    n_pad: int = 0
    sharding: jax.sharding.NamedSharding | None = None
    state: State | None = None
    rows: list[Row] = field(default_factory=list)
    reports_done: int = 0

    @classmethod
    def build(cls, configs: Sequence[RunConfig], devices: Sequence[jax.Device] | None = None,
              reports_per_chunk: int = 10, static: Static | None = None) -> Bucket:
        """Stack the configurations' params; ``static``: compile for these shapes instead of the ones
        the configurations need (they must be covered: ``Static.covers``), so that batches of
        different knob values share one compiled program (the tuner's rungs)."""
        from . import resources
        need = build_static(configs)
        if static is None:
            static = need
        elif (why := static.covers(need)) is not None:
            raise ValueError(f"Bucket.build: the given static does not cover these configurations ({why})")
        sharding, n_dev = batch_sharding(devices)
        resources.check(static, len(configs), reports_per_chunk, n_dev)  # before anything is allocated
        plist = [P.build_params(c, static) for c in configs]
        pad = (-len(plist)) % n_dev
        plist += [plist[-1]] * pad  # padding rows repeat the last configuration; dropped in results
        b = cls(static=static, configs=list(configs), params=None, n_pad=pad, sharding=sharding)
        b.params = b.place(P.stack(plist))
        return b

    def place(self, tree: Any) -> Any:
        if self.sharding is None:
            return jax.tree_util.tree_map(jnp.asarray, tree)
        return jax.device_put(tree, self.sharding)

    def init(self) -> None:
        self.state = compiled_init(self.static)(self.params)
        self.rows = []
        self.reports_done = 0

    def all_done(self) -> bool:
        """Every thread finished, and no process slot has a respawn left."""
        state, params = self.state, self.params
        assert state is not None and params is not None, "Bucket.init() first"
        return bool(np.all(np.asarray(state.tasks.phase) == T_DONE)
                    and np.all(np.asarray(state.mms.generation) >= np.asarray(params.workload.mm_respawns)))

    def run(self, reports_per_chunk: int = 10, stop_when_done: bool = True,
            on_chunk: Callable[[Bucket], object] | None = None, checkpoint: str | None = None,
            checkpoint_every: int = 1, should_stop: Callable[[], bool] | None = None, resume: bool = True,
            final_checkpoint: bool = False, max_reports: int | None = None,
            retire_done: bool = False) -> list[Result]:
        """Run to the end (or until every configuration finished).

        With ``retire_done`` (and ``stop_when_done``), configurations that have reached their own end
        leave the compiled batch once at most half of it is still running: the rest run on in a
        batch of their own size (one compile per new size, at most log2(B) of them), so a finished
        configuration no longer costs a tick's work until the slowest one ends. Results are the same
        bit for bit (a configuration's run does not depend on its batch, and a finished one is frozen);
        between chunks ``self.state`` stays the whole batch (``on_chunk`` and checkpoints see all of
        it), and ``self.live_rows`` says which rows are still simulated.

        With ``max_reports``, stop after that many report intervals in all (at most
        ``static.n_reports``): the results are the first ``max_reports`` rows of the full run, bit for
        bit (a prefix: nothing in a tick depends on how long the run will last), so a short, cheap
        look at a configuration (the tuner's early rungs) needs no shape of its own and no compile.

        With ``checkpoint``, the state is saved there every ``checkpoint_every`` chunks (0: never
        periodically), when ``should_stop()`` turns true (then the run returns early with
        ``self.stopped = True``) and, with ``final_checkpoint``, at the end (a rerun then rebuilds the
        results from it without simulating); a run whose checkpoint already exists resumes from it
        when ``resume``. A checkpoint that cannot be written (a full disk) costs nothing computed:
        the run goes on (or stops, when asked to) and ``self.checkpoint_error`` says why.
        """
        from . import checkpoint as ckpt
        self.stopped = False
        self.checkpoint_error = None

        def save():
            try:
                ckpt.save(self, checkpoint)
            except OSError as e:
                self.checkpoint_error = f"{checkpoint}: {e.strerror or e}"

        if checkpoint and resume and os.path.exists(checkpoint):
            ckpt.load(self, checkpoint)
        if self.state is None:
            self.init()
        total = self.static.n_reports if max_reports is None else max(1, min(int(max_reports), self.static.n_reports))
        k = chunk_length(reports_per_chunk, total)  # progress.chunks_of counts the chunks this loop takes
        chunks = 0
        self.live_rows = None  # None: every row of the batch is simulated
        clock: list[float] = []  # wall seconds of each chunk at the present batch width
        dev = None  # (state, params) of the live rows on the devices, while some rows are retired
        while self.reports_done < total and not (stop_when_done and self.reports_done and self.all_done()):
            n = min(k, total - self.reports_done)
            fn = compiled_chunk(self.static, k)  # one program for every chunk, the last shorter one too
            t0, programs = time.perf_counter(), _programs(fn)
            if dev is None:
                self.state, rows = fn(self.state, self.params, *chunk_args(self.static, n))
                rows = jax.tree_util.tree_map(lambda x: np.asarray(x)[:, :n], rows)
            else:
                st, part = fn(dev[0], dev[1], *chunk_args(self.static, n))
                dev = (st, dev[1])
                self.state, rows = self._merge(st, part, n)
            clock.append(time.perf_counter() - t0)
            if _programs(fn) > programs:  # this call compiled: its time bounds a compile from above
                _COMPILE_S[program_static(self.static)] = clock[-1]
            self.rows.append(rows)
            self.reports_done += n
            if retire_done and stop_when_done and self.reports_done < total:
                dev, clock = self._retire(dev, clock, k)
            if self.static.check_invariants:
                self._raise_violations(self.rows[-1])
            chunks += 1
            if on_chunk is not None:
                on_chunk(self)
            stop = should_stop is not None and should_stop()
            if checkpoint and (stop or (checkpoint_every > 0 and chunks % checkpoint_every == 0)):
                save()
            if stop:
                self.stopped = True
                break
        if dev is not None:  # the whole batch back on the devices, as a bucket's state always is
            self.state = self.place(self.state)
        if checkpoint and final_checkpoint and not self.stopped:
            save()
        return self.results()

    def _rows_live(self, state) -> np.ndarray:
        """[rows] which rows of ``state`` have not reached their own end: the tick's own test."""
        return np.asarray(jax.vmap(config_live)(state, self.params))

    def _retire(self, dev, clock, k):
        """Shrink the simulated rows to the live ones when at most half of them still run and the
        time it saves is likely to pay for the compile of the smaller batch: the chunks left are
        guessed to be as many as those done so far (a run that has lasted k chunks is as likely to
        last another k), and the saving must be ``RETIRE_PAYBACK`` times the compile (the last call
        that compiled this program, less the fastest chunk). Which rows retire changes no result,
        only the wall time."""
        rows = np.arange(len(self.configs) + self.n_pad) if self.live_rows is None else self.live_rows
        live = np.array(list(dict.fromkeys(rows[self._rows_live(self.state)[rows]].tolist())), dtype=np.int64)
        if len(live) == 0 or 2 * len(live) > len(rows) or len(clock) < 2:
            return dev, clock
        # a compile: the last call that compiled this program (any width), less a chunk's running time
        compile_s = max(_COMPILE_S.get(program_static(self.static), clock[0]) - min(clock[1:]), 0.0)
        saved_per_chunk = min(clock[1:]) * (1 - len(live) / len(rows))
        if saved_per_chunk * (self.reports_done / k) < RETIRE_PAYBACK * compile_s:
            return dev, clock
        n_dev = 1 if self.sharding is None else int(np.prod(self.sharding.mesh.devices.shape))
        live = np.concatenate([live, np.repeat(live[-1:], (-len(live)) % n_dev)])  # duplicates pad the devices
        host = jax.tree_util.tree_map(np.asarray, self.state)
        self.state = host
        self.live_rows = live
        take = lambda tree: self.place(jax.tree_util.tree_map(lambda a: np.asarray(a)[live], tree))  # noqa: E731
        return (take(host), take(self.params)), []

    def _merge(self, st, part, n):
        """The whole batch's state and this chunk's rows, the live rows' from the devices (retired
        rows keep their frozen state; their rows past their own end repeat the last one)."""
        live = self.live_rows
        last = self.rows[-1]

        def state_leaf(full, x):
            full = np.array(full)
            full[live] = np.asarray(x)
            return full

        def row_leaf(prev, x):
            full = np.repeat(np.asarray(prev)[:, -1:], n, axis=1)
            full[live] = np.asarray(x)[:, :n]
            return full
        return (jax.tree_util.tree_map(state_leaf, self.state, st),
                jax.tree_util.tree_map(row_leaf, last, part))

    def _raise_violations(self, rows: Row) -> None:
        ok = np.asarray(rows.invariants_ok)[: len(self.configs)]  # [B, R, K]
        bad = np.argwhere(~ok)
        if len(bad):
            i, r, k = bad[0]
            tick = int(np.asarray(rows.tick)[i, r])
            raise InvariantViolation(f"invariant {invariants.NAMES[k]} violated by tick {tick} "
                                     f"in config[{i}] ({self.configs[i].label()})")

    def results(self) -> list[Result]:
        rows = {f: np.concatenate([np.asarray(getattr(r, f)) for r in self.rows], axis=1) for f in Row.__dataclass_fields__}
        st = jax.tree_util.tree_map(np.asarray, self.state)
        out = []
        for i, c in enumerate(self.configs):
            # a configuration is frozen from its own end (tick.config_live): its rows stop at the first
            # row that reached it, however long the rest of the batch ran
            keep = own_rows(rows["tick"][i], int(st.tick[i]))
            final = dict(
                finish_tick=st.tasks.finish_tick[i], tick=st.tick[i], full_scans=st.scand.full_scans[i],
                pages_scanned=st.scand.pages_scanned[i], pages_migrated=st.migrated.pages_migrated[i],
                task_numa_fault=st.tasks.task_numa_fault[i], mm_numa_fault=st.mms.mm_numa_fault[i],
                task_selected_nid=st.tasks.task_selected_nid[i],
                **{f"tot_{f}": np.asarray(getattr(st.tot, f))[i] for f in st.tot.__dataclass_fields__},
            )
            out.append(Result(config=c, static=self.static, rows={k: v[i][:keep] for k, v in rows.items()}, final=final))
        return out


def own_rows(ticks: np.ndarray, end_tick: int) -> int:
    """How many of a configuration's rows belong to its run: those before its final tick, and the
    first one at it (later rows repeat the frozen state)."""
    at = np.nonzero(np.asarray(ticks) >= end_tick)[0]
    return int(at[0]) + 1 if len(at) else len(ticks)


def make_buckets(configs: Sequence[RunConfig], devices: Sequence[jax.Device] | None = None
                 ) -> list[tuple[list[int], Bucket]]:
    """Validate every configuration (before any compile; the checked, normalised configurations are
    the ones simulated) and group them by shape."""
    configs = [validate_run(c, i if len(configs) > 1 else None) for i, c in enumerate(configs)]
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(shape_key(c), []).append(i)
    return [(idx, Bucket.build([configs[i] for i in idx], devices)) for idx in groups.values()]


# what simulate's `progress` accepts (a runtime alias: spelt with Union for Python 3.10)
ProgressArg = Union[bool, None, Callable[[ProgressRecord], object]]


def simulate(configs: Sequence[RunConfig] | RunConfig, reports_per_chunk: int = 10, stop_when_done: bool = True,
             on_chunk: Callable[[Bucket], object] | None = None, devices: Sequence[jax.Device] | None = None,
             progress: ProgressArg = True, progress_interval_s: float = 10.0,
             retire_done: bool = True) -> list[Result]:
    """Simulate configurations; returns one ``Result`` per configuration, in input order.

    Every configuration is validated first (a bad one raises ``ConfigError`` before anything
    compiles); configurations of equal static shapes share one compiled, vmapped batch.

    Args:
        configs: one ``RunConfig`` or a sequence of them.
        reports_per_chunk: report intervals per compiled call (>= 1; fewer if the run is
            shorter). Control returns to Python between chunks: the grain of progress reports,
            of ``on_chunk`` and of the early stop.
        stop_when_done: stop a batch at the end of the first chunk in which every thread of every
            configuration has finished (results are the same: each configuration's rows end at its
            own end); False: always simulate ``sim.duration_s``.
        on_chunk: called with the running ``Bucket`` after every chunk.
        devices: the devices to shard each batch over (default: ``jax.local_devices()``).
        progress: True (default): a plain line on stderr at most every ``progress_interval_s``
            (chunks done / total, configurations, batch, simulated seconds reached, elapsed, ETA),
            and a last one at the end; a run shorter than the interval prints nothing. No bar and
            no carriage returns, so it reads the same in a notebook, a log file or a terminal.
            False or None: silent. A callable: called with a ``ProgressRecord`` after every chunk
            and once more at the end (``final=True``), and nothing is printed.
        progress_interval_s: seconds between two progress lines, in [0, 86400] (0: a line
            after every chunk, from the first one).
        retire_done: with ``stop_when_done``, configurations that have reached their own end leave
            the compiled batch once at most half of it still runs and the saving is likely to pay
            for the smaller batch's compile (``Bucket.run(retire_done=...)``): the results are the
            same bit for bit, only the wall time differs. False keeps every batch whole.

    Progress only reads the batch between chunks: results are the same with or without it.
    """
    t0 = time.time()
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise ConfigError(f"progress={progress!r}: must be True, False or a callable taking a ProgressRecord")
    from . import checks
    interval = checks.number("progress_interval_s", progress_interval_s, 0, 86400)
    if isinstance(configs, RunConfig):
        configs = [configs]
    out: list[Result | None] = [None] * len(configs)
    buckets = make_buckets(configs, devices)
    n_chunks = [chunks_of(b.static.n_reports, reports_per_chunk) for _, b in buckets]
    prog = None
    if progress is not None and progress is not False:
        cb = None if isinstance(progress, bool) else progress
        # lines only (never a bar): stderr is a notebook cell or a log as often as a terminal
        prog = Progress(sum(n_chunks), len(configs), mode="off" if cb is not None else "lines", interval_s=interval,
                        stream=sys.stderr, callback=cb, n_batches=len(buckets), quiet_s=interval, t0=t0)
    for (idx, bucket), n in zip(buckets, n_chunks):
        hook = on_chunk
        if prog is not None:
            prog.new_batch()
            before = prog.done
            hook = _both(prog.update, on_chunk)
        res = bucket.run(reports_per_chunk=reports_per_chunk, stop_when_done=stop_when_done, on_chunk=hook,
                         retire_done=retire_done)
        if prog is not None:
            prog.skip(n - (prog.done - before))  # chunks an early stop made unnecessary
        for i, r in zip(idx, res):
            out[i] = r
    if prog is not None:
        prog.close()
    return cast("list[Result]", out)  # every slot is filled: the buckets partition the inputs


def _both(first: Callable[[Bucket], object], second: Callable[[Bucket], object] | None) -> Callable[[Bucket], None]:
    def hook(bucket: Bucket) -> None:
        first(bucket)
        if second is not None:
            second(bucket)
    return hook


class _CallableModule(types.ModuleType):
    """This module, callable as its ``simulate`` function.

    Why: the package exported the function ``simulate`` under the name of this module, so the
    attribute ``autonuma_jax.simulate`` was the function and ``import autonuma_jax.simulate as m``
    (which reads that attribute) gave the function instead of the module. Renaming the module
    would break every ``from autonuma_jax.simulate import Bucket`` in and outside the project, and
    renaming the function would break the README's ``an.simulate(cfgs)``; a callable module
    keeps both: the package's attribute is the module again, and calling it calls the function.
    (Type checkers see the function: ``autonuma_jax/__init__.py`` imports it under
    ``TYPE_CHECKING``.)
    """

    def __call__(self, configs: Sequence[RunConfig] | RunConfig, *args: Any, **kwargs: Any) -> list[Result]:
        return simulate(configs, *args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # inspect.signature, help(), IPython: the function's
        return inspect.signature(simulate)


_CallableModule.__call__.__doc__ = simulate.__doc__
sys.modules[__name__].__class__ = _CallableModule
