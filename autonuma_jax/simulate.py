"""Run many configurations: chunked ``lax.scan`` over ticks under ``jit(vmap(...))``.

A chunk is ``reports_per_chunk`` report intervals; each interval is a scan over its ticks and
emits one time-series row. Between chunks control returns to Python (progress, early stop when
every configuration has finished, checkpoints). Configurations are grouped into buckets of equal
static shapes; each bucket compiles once.
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import invariants
from . import params as P
from .config import RunConfig, build_static, shape_key, validate_run
from .pytree import pytree_dataclass, replace
from .state import T_DONE, init_state, zero_counters
from .static import Static
from .tick import step, step_batch

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
    invariants_ok: jnp.ndarray  # [K] in check_invariants mode (invariants.NAMES), [0] otherwise


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
               invariants_ok=(invariants.check(state, params, static) if static is not None and static.check_invariants
                              else jnp.zeros(0, bool)))


def run_interval(state, params, static: Static):
    """report_ticks ticks of a batch (leading axis = configuration), then one row each."""
    def body(s, _):
        if GATED:
            return step_batch(s, params, static), None
        return jax.vmap(lambda a, b: step(a, b, static))(s, params), None

    state, _ = jax.lax.scan(body, state, None, length=static.report_ticks)
    row = jax.vmap(lambda s, p: snapshot(s, p, static))(state, params)
    acc = jax.vmap(lambda a: replace(zero_counters(), overhead_rem_ns=a.overhead_rem_ns, kib_rem=a.kib_rem))(state.acc)
    return replace(state, acc=acc), row


def run_chunk(state, params, static: Static, n_reports: int):
    def body(s, _):
        return run_interval(s, params, static)

    state, rows = jax.lax.scan(body, state, None, length=n_reports)
    return state, jax.tree_util.tree_map(lambda x: jnp.swapaxes(x, 0, 1), rows)  # [B, R, ...]


# Bounded: every compiled executable keeps its machine code mapped (on the CPU backend, ~2300
# memory mappings each), and a long in-process sweep over many shapes would otherwise grow until the
# process hits vm.max_map_count and XLA aborts. Dropping a jitted function frees its executables.
COMPILED_CACHE_SIZE = 8


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def compiled_chunk(static: Static, n_reports: int):
    """jit of run_chunk for one bucket (batched step inside); the state buffers are donated."""
    fn = functools.partial(run_chunk, static=static, n_reports=n_reports)
    return jax.jit(fn, donate_argnums=(0,))


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def compiled_init(static: Static):
    return jax.jit(jax.vmap(functools.partial(init_state, static)))


def release_compiled() -> None:
    """Forget every compiled function of this module and JAX's own caches (frees their code mappings)."""
    compiled_chunk.cache_clear()
    compiled_init.cache_clear()
    jax.clear_caches()


@dataclass
class Result:
    config: RunConfig
    static: Static
    rows: dict  # name -> np.ndarray [R, ...]
    final: dict  # name -> np.ndarray (final counters and task data)

    def summary(self) -> dict:
        from .metrics import summarize
        return summarize(self)


def batch_sharding(devices=None):
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
    """One compiled batch: configurations sharing a Static, sharded over the local devices."""
    static: Static
    configs: list
    params: object
    n_pad: int = 0
    sharding: object = None
    state: object = None
    rows: list = field(default_factory=list)
    reports_done: int = 0

    @classmethod
    def build(cls, configs: Sequence[RunConfig], devices=None, reports_per_chunk: int = 10) -> "Bucket":
        from . import resources
        static = build_static(configs)
        sharding, n_dev = batch_sharding(devices)
        resources.check(static, len(configs), reports_per_chunk, n_dev)  # before anything is allocated
        plist = [P.build_params(c, static) for c in configs]
        pad = (-len(plist)) % n_dev
        plist += [plist[-1]] * pad  # padding rows repeat the last configuration; dropped in results
        b = cls(static=static, configs=list(configs), params=None, n_pad=pad, sharding=sharding)
        b.params = b.place(P.stack(plist))
        return b

    def place(self, tree):
        if self.sharding is None:
            return jax.tree_util.tree_map(jnp.asarray, tree)
        return jax.device_put(tree, self.sharding)

    def init(self):
        self.state = compiled_init(self.static)(self.params)
        self.rows = []
        self.reports_done = 0

    def all_done(self) -> bool:
        """Every thread finished, and no process slot has a respawn left."""
        return bool(np.all(np.asarray(self.state.tasks.phase) == T_DONE)
                    and np.all(np.asarray(self.state.mms.generation) >= np.asarray(self.params.workload.mm_respawns)))

    def run(self, reports_per_chunk: int = 10, stop_when_done: bool = True, on_chunk: Callable | None = None,
            checkpoint: str | None = None, checkpoint_every: int = 1, should_stop: Callable | None = None,
            resume: bool = True, final_checkpoint: bool = False) -> list:
        """Run to the end (or until every configuration finished).

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
        total = self.static.n_reports
        k = max(1, min(reports_per_chunk, total))
        chunks = 0
        while self.reports_done < total and not (stop_when_done and self.reports_done and self.all_done()):
            n = min(k, total - self.reports_done)
            fn = compiled_chunk(self.static, n)
            self.state, rows = fn(self.state, self.params)
            self.rows.append(jax.tree_util.tree_map(np.asarray, rows))
            self.reports_done += n
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
        if checkpoint and final_checkpoint and not self.stopped:
            save()
        return self.results()

    def _raise_violations(self, rows):
        ok = np.asarray(rows.invariants_ok)[: len(self.configs)]  # [B, R, K]
        bad = np.argwhere(~ok)
        if len(bad):
            i, r, k = bad[0]
            tick = int(np.asarray(rows.tick)[i, r])
            raise InvariantViolation(f"invariant {invariants.NAMES[k]} violated by tick {tick} "
                                     f"in config[{i}] ({self.configs[i].label()})")

    def results(self) -> list:
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


def make_buckets(configs: Sequence[RunConfig], devices=None) -> list:
    """Validate every configuration (before any compile; the checked, normalised configurations are
    the ones simulated) and group them by shape."""
    configs = [validate_run(c, i if len(configs) > 1 else None) for i, c in enumerate(configs)]
    groups: dict = {}
    for i, c in enumerate(configs):
        groups.setdefault(shape_key(c), []).append(i)
    return [(idx, Bucket.build([configs[i] for i in idx], devices)) for idx in groups.values()]


def simulate(configs: Sequence[RunConfig] | RunConfig, reports_per_chunk: int = 10, stop_when_done: bool = True,
             on_chunk: Callable | None = None, devices=None) -> list:
    """Simulate configurations; returns one Result per configuration, in input order."""
    if isinstance(configs, RunConfig):
        configs = [configs]
    out = [None] * len(configs)
    for idx, bucket in make_buckets(configs, devices):
        res = bucket.run(reports_per_chunk=reports_per_chunk, stop_when_done=stop_when_done, on_chunk=on_chunk)
        for i, r in zip(idx, res):
            out[i] = r
    return out
