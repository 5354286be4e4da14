"""One job: expand the config, validate everything, simulate in batches, write results, plots and
the wandb run. Hydra-free: ``app.py`` passes the resolved config as a dict and the output folder.
"""
from __future__ import annotations

import re

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field

from ..config import shape_key, validate_run
from ..errors import ConfigError
from . import preempt, throughput
from . import results as R
from .build import Run, expand
from .private_dir import private_dir_problem
from .progress import Progress

log = logging.getLogger("autonuma_jax.cli")


class Preempted(RuntimeError):
    """The job saved its checkpoint after SIGUSR1/SIGTERM and stopped (see preempt.py)."""


@dataclass
class JobInfo:
    out_dir: str
    n_configs: int = 0
    n_batches: int = 0
    compiles: int = 0
    wall_s: float = 0.0
    files: list = field(default_factory=list)
    wandb_dir: str | None = None
    objective: float | None = None  # with cfg objective: its mean over the job's configurations


def _enum(v):
    return getattr(v, "name", v)


def plan(runs: list[Run], batch_size: int = 0) -> list[list[int]]:
    """Indices of the configurations of each compiled batch: one per shape, split by batch_size."""
    groups: dict = {}
    for r in runs:
        groups.setdefault(shape_key(r.config), []).append(r.index)
    out = []
    for idx in groups.values():
        if batch_size and batch_size > 0:
            out += [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
        else:
            out.append(idx)
    return out


_KNOB_GROUPS = ("autonuma", "balancenuma", "numa_balancing", "sched_numa", "numa_core", "transparent_hugepage",
                "costs", "sched")
_KNOB_FIELD = re.compile(r"(^|config\[\d+\]\.|<= )((?:%s)\.)" % "|".join(_KNOB_GROUPS))


def cli_names(msg: str) -> str:
    """A core error message with the fields named as the command line names them: knobs live under
    ``policy.`` there (``policy.autonuma.knuma_scand.pages_to_scan``)."""
    return _KNOB_FIELD.sub(r"\1policy.\2", msg)


def prepare(cfg: dict) -> list[Run]:
    """Expand and validate every configuration (ConfigError one-liners, before any compile)."""
    try:
        runs = expand(cfg)
        for r in runs:
            r.config = validate_run(r.config, r.index if len(runs) > 1 else None)
    except ConfigError as e:
        raise ConfigError(cli_names(str(e))) from None
    sim = cfg.get("sim", {})
    for key in ("reports_per_chunk",):
        v = sim.get(key, 10)
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"sim.{key}={v!r}: must be an integer >= 1")
    mode = (cfg.get("logger") or {}).get("mode", "offline")
    if mode not in ("offline", "online", "disabled", "dryrun"):
        raise ConfigError(f"logger.mode={mode!r}: must be offline, online or disabled")
    bs = sim.get("batch_size", 0)
    if not isinstance(bs, int) or bs < 0:
        raise ConfigError(f"sim.batch_size={bs!r}: must be an integer >= 0 (0 = one batch per shape)")
    check_job_settings(cfg)
    obj = cfg.get("objective")
    if obj is not None:
        from ..tune.objective import OBJECTIVES
        if obj not in OBJECTIVES:
            raise ConfigError(f"objective={obj!r}: must be null or one of {', '.join(OBJECTIVES)}")
        from .. import checks
        checks.number("overhead_weight", cfg.get("overhead_weight", 1.0), 0, 1e6)
    return runs


# The job's own settings (not the simulation's): (section, field, kind, low, high, what it means).
_JOB_FIELDS = (
    ("results", "checkpoint_every", int, 0, 10**9, "chunks between checkpoints, 0 = only when signalled"),
    ("results", "write_retries", int, 0, 10**6, "retries of a results write that fails for lack of space"),
    ("results", "write_retry_s", float, 0.0, 86400.0, "seconds between those retries"),
    ("results", "max_nmstat_plots", int, 0, 10**6, "nmstat plots drawn"),
    ("progress", "interval_s", float, 0.0, 86400.0, "seconds between progress lines"),
)


def check_memory(runs: list[Run], sim: dict) -> None:
    """Every compiled batch of the job fits in this process's (and device's) memory, checked before
    anything is built (resources.py; the same check Bucket.build makes, done for all batches first)."""
    from .. import resources
    from ..config import build_static
    rpc = int(sim.get("reports_per_chunk", 10))
    for idx in plan(runs, int(sim.get("batch_size", 0) or 0)):
        configs = [runs[i].config for i in idx]
        resources.check(build_static(configs), len(configs), min(rpc, configs[0].sim.n_reports))


def check_job_settings(cfg: dict) -> None:
    """One line for a results/progress setting of the wrong type, not finite or out of range (these
    reach the job as written by an in-process caller, bypassing the hydra schema)."""
    for sec, key, kind, lo, hi, what in _JOB_FIELDS:
        v = (cfg.get(sec) or {}).get(key)
        if v is None:
            continue
        ok = not isinstance(v, bool) and (isinstance(v, int) if kind is int else isinstance(v, (int, float)))
        if not ok or not math.isfinite(v) or not lo <= v <= hi:
            kind_s = "an integer" if kind is int else "a number"
            raise ConfigError(f"{sec}.{key}={v!r}: must be {kind_s} in [{lo}, {hi}] ({what})")


def enable_compilation_cache(path: str | None) -> None:
    """Point JAX's persistent compilation cache at `path` (or keep JAX_COMPILATION_CACHE_DIR), if private.

    The cache holds executables a later run loads and runs, so a folder someone else can write is
    refused (cli/private_dir.py) and the run goes on uncached after a one-line warning."""
    import jax
    target = path or jax.config.jax_compilation_cache_dir
    if not target:
        return
    target = os.path.abspath(os.path.expanduser(target))
    problem = private_dir_problem(target)
    if problem:
        jax.config.update("jax_compilation_cache_dir", None)
        log.warning(f"compilation cache not used ({problem}); set sim.compilation_cache_dir to a private "
                    f"folder or null")
        return
    try:
        jax.config.update("jax_compilation_cache_dir", target)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    except Exception as e:  # noqa: BLE001  (a cache is an optimisation only)
        log.warning(f"compilation cache at {target} not enabled: {e}")


def simulate_runs(runs: list[Run], sim: dict, progress_cfg: dict | None = None, checkpoint_dir: str | None = None,
                  checkpoint_every: int = 0):
    """Simulate every configuration, one compiled batch per shape; returns (results, n_batches, compiles)."""
    from ..simulate import Bucket, compiled_chunk

    rpc = int(sim.get("reports_per_chunk", 10))
    batches = plan(runs, int(sim.get("batch_size", 0) or 0))
    n_chunks = []
    for idx in batches:
        n_rep = runs[idx[0]].config.sim.n_reports
        n_chunks.append(math.ceil(n_rep / max(1, min(rpc, n_rep))))
    pc = progress_cfg or {}
    prog = Progress(sum(n_chunks), len(runs), mode=_enum(pc.get("mode", "auto")), interval_s=pc.get("interval_s", 10.0),
                    log=log)
    if prog.mode == "off":
        prog.update = lambda b=None: None  # type: ignore[method-assign]
        prog.close = lambda complete=True: None  # type: ignore[method-assign]
    misses0 = compiled_chunk.cache_info().misses
    out = [None] * len(runs)
    for bi, idx in enumerate(batches):
        bucket = Bucket.build([runs[i].config for i in idx])
        log.info(f"batch {bi + 1}/{len(batches)}: {len(idx)} configuration(s), {bucket.static.n_ticks} ticks, "
                 f"{bucket.static.n_tasks} threads, {bucket.static.n_units} page units")
        prog.new_batch()
        before = prog.done
        kw = {}
        resumed = False
        if checkpoint_dir:
            # checkpoints every `checkpoint_every` chunks (0: only when preempted), resumed if present
            path = os.path.join(checkpoint_dir, f"batch{bi}.npz")
            if os.path.exists(path):
                resumed = True
                log.info(f"resuming batch {bi + 1} from {path}")
            os.makedirs(checkpoint_dir, exist_ok=True)
            kw = {"checkpoint": path, "checkpoint_every": checkpoint_every, "should_stop": preempt.requested}
        timer = throughput.ChunkTimer()

        def on_chunk(b, timer=timer):
            timer(b)
            prog.update(b)
        timer.start()
        res = bucket.run(reports_per_chunk=rpc, stop_when_done=bool(sim.get("stop_when_done", True)),
                         retire_done=bool(sim.get("retire_done", True)), on_chunk=on_chunk,
                         final_checkpoint=bool(checkpoint_dir), **kw)
        throughput.record(sim.get("throughput_log"), bucket.static, len(idx), timer, bucket.reports_done, resumed)
        if getattr(bucket, "stopped", False):
            prog.close(complete=False)
            if bucket.checkpoint_error:
                raise Preempted(f"batch {bi + 1} could NOT be checkpointed ({bucket.checkpoint_error}): the requeued "
                                f"job restarts it from its last checkpoint or from the start")
            raise Preempted(f"batch {bi + 1} checkpointed at {kw['checkpoint']}")
        if bucket.checkpoint_error:
            log.warning(f"checkpoint not written ({bucket.checkpoint_error}); the results are kept in memory")
        prog.skip(n_chunks[bi] - (prog.done - before))
        for i, r in zip(idx, res):
            out[i] = r
    prog.close()
    return out, len(batches), compiled_chunk.cache_info().misses - misses0


def job_objective(results, objective: str, overhead_weight: float) -> float:
    """The tuner's objective (``tune.objective.measure``) averaged over the job's configurations
    (its seeds): what a job returns to hydra's Optuna sweeper."""
    from ..tune.objective import measure
    vals = [measure(r, objective, overhead_weight)["objective"] for r in results]
    return float(sum(vals) / len(vals))


class WriteFailed(RuntimeError):
    """The results could not be written (a full disk, a read-only folder): one line, exit 4."""


EXIT_WRITE_FAILED = 4


def write_with_retries(writes, out_dir: str, ckpt_dir: str, n_configs: int, retry_s: float, retries: int) -> None:
    """Run ``writes()``; on an OSError (ENOSPC, EDQUOT, EROFS...) wait ``retry_s`` and try again, up
    to ``retries`` times, then raise WriteFailed saying where the computed state is."""
    import errno
    for attempt in range(retries + 1):
        try:
            writes()
            return
        except OSError as e:
            kept = (f"the final state of every batch is in {ckpt_dir}: rerun the same command to write the results "
                    f"without simulating" if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir) else
                    "no checkpoint could be written either: the results are lost")
            transient = e.errno in (errno.ENOSPC, errno.EDQUOT)
            if attempt == retries or not transient:
                raise WriteFailed(f"results of {n_configs} configuration(s) not written to {out_dir}: "
                                  f"{e.strerror or e}; {kept}") from None
            log.warning(f"writing results failed ({e.strerror or e}); retrying in {retry_s:g} s "
                        f"({attempt + 1}/{retries})")
            time.sleep(retry_s)


def lock_job_folder(out_dir: str) -> None:
    """An exclusive lock on ``out_dir/.lock`` (the descriptor is returned: ``unlock_job_folder``, or the
    process's exit, releases it); a second job started into the same folder refuses with one line."""
    import fcntl
    path = os.path.join(out_dir, ".lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"output folder {out_dir}: not writable ({e.strerror or e})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        except OSError:
            holder = "?"
        os.close(fd)
        raise ConfigError(f"output folder {out_dir}: another job is writing it (pid {holder}); use another "
                          f"hydra.run.dir or wait for it") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def unlock_job_folder(fd) -> None:
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def run_job(cfg: dict, out_dir: str, job: dict | None = None, resolved_yaml: str | None = None,
            group: str | None = None, run_name: str | None = None,
            hydra_files: dict[str, str] | None = None) -> JobInfo:
    """The whole job. Raises ConfigError (bad input) or results.ResultsExistError before compiling.

    ``hydra_files``: hydra's record of the job (``.hydra/config.yaml``, ``hydra.yaml``,
    ``overrides.yaml``), written here once the folder is locked and known not to hold another
    job's results (hydra's own writing of them, before any check, is turned off in conf/config.yaml)."""
    t0 = time.time()
    info = JobInfo(out_dir=out_dir)
    runs = prepare(cfg)
    check_memory(runs, cfg.get("sim", {}))
    rcfg = cfg.get("results", {})
    overwrite = bool(rcfg.get("overwrite", False))
    if (not overwrite and os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")
            and os.path.exists(os.path.join(out_dir, R.RESULTS))):
        # a requeued SLURM job whose earlier run already wrote its results (the signal came late)
        log.info(f"results already complete in {out_dir} (requeued job, restart "
                 f"{os.environ['SLURM_RESTART_COUNT']}): nothing to do")
        info.n_configs = len(runs)
        return info
    R.check_writable(out_dir, overwrite)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"output folder {out_dir}: cannot be created ({e.strerror or e})") from None
    lock = lock_job_folder(out_dir)  # a second job into this folder refuses here, before it writes anything
    try:
        for name, text in (hydra_files or {}).items():
            os.makedirs(os.path.join(out_dir, ".hydra"), exist_ok=True)
            R.write_text_atomic(text, os.path.join(out_dir, ".hydra", name))
        return _run_locked(cfg, out_dir, job, resolved_yaml, group, run_name, runs, rcfg, overwrite, info, t0)
    finally:
        unlock_job_folder(lock)


def _run_locked(cfg, out_dir, job, resolved_yaml, group, run_name, runs, rcfg, overwrite, info, t0) -> JobInfo:
    sim = cfg.get("sim", {})
    enable_compilation_cache(sim.get("compilation_cache_dir"))
    info.n_configs = len(runs)
    log.info(f"{len(runs)} configuration(s) -> {out_dir}")
    warn_uncalibrated(runs)
    warn_perf_window(runs)
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    ckpt_every = int(rcfg.get("checkpoint_every", 0) or 0)
    preempt.install()
    results, info.n_batches, info.compiles = simulate_runs(runs, sim, cfg.get("progress"), ckpt_dir, ckpt_every)
    if cfg.get("objective"):
        info.objective = job_objective(results, str(cfg["objective"]), float(cfg.get("overhead_weight", 1.0)))
        log.info(f"objective {cfg['objective']}: {info.objective:.6g}")
    job = dict(job or {})
    res_df = R.results_frame(runs, results, job)
    ts_df = R.timeseries_frame(runs, results) if rcfg.get("timeseries", True) or rcfg.get("plots", True) else None
    # results.parquet last: its presence means the job's files are complete. A full disk here loses
    # nothing: each batch's final state is in checkpoints/ (a rerun rebuilds the results from it
    # without simulating), and the writes are retried before the job gives up with one line.
    def writes():
        if rcfg.get("timeseries", True) and ts_df is not None:
            info.files.append(R.write_atomic(ts_df, os.path.join(out_dir, R.TIMESERIES), True))
        if resolved_yaml is not None:
            info.files.append(R.write_text_atomic(resolved_yaml, os.path.join(out_dir, "resolved_config.yaml")))
        info.files.append(R.write_atomic(res_df, os.path.join(out_dir, R.RESULTS), overwrite))
    write_with_retries(writes, out_dir, ckpt_dir, len(runs), float(rcfg.get("write_retry_s", 10.0)),
                       int(rcfg.get("write_retries", 6)))
    if os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the results are safe: the checkpoints are spent
    if rcfg.get("vmstat", True):
        info.files += R.write_vmstat(res_df, out_dir)
    if "perf_runtime_max_s" in res_df.columns:
        info.files += R.write_perf(res_df, out_dir)
    _print_table(res_df)
    from ..analysis.columns import metric_columns
    metrics = metric_columns(res_df)
    plots = []
    if rcfg.get("plots", True):
        try:
            from ..report import plot_all
            plots = plot_all(res_df, ts_df, os.path.join(out_dir, "plots"),
                             max_nmstat=int(rcfg.get("max_nmstat_plots", 4)))
            info.files += plots
        except Exception as e:  # noqa: BLE001  (plots never cost the results)
            log.warning(f"plots failed: {type(e).__name__}: {e}")
    info.wall_s = time.time() - t0
    from .wandb_log import log_job
    config = {k: v for k, v in cfg.items() if k != "hydra"}
    config["job"] = {**job, "n_configs": info.n_configs, "n_batches": info.n_batches, "compiles": info.compiles}
    info.wandb_dir = log_job(cfg.get("logger", {}), out_dir, group, run_name, config, res_df, ts_df, metrics,
                             plots)
    if info.wandb_dir:
        log.info(f"wandb run: {info.wandb_dir}")
    meta = {"n_configs": info.n_configs, "n_batches": info.n_batches, "compiles": info.compiles,
            "wall_s": round(time.time() - t0, 3), "wandb_dir": info.wandb_dir, "job": job}
    R.write_text_atomic(json.dumps(meta, indent=1, default=str) + "\n", os.path.join(out_dir, "job.json"))
    log.info(f"done in {time.time() - t0:.1f} s: {info.n_configs} configuration(s) in {info.n_batches} batch(es), "
             f"{info.compiles} compile(s); results in {out_dir}")
    return info


def warn_uncalibrated(runs) -> None:
    """One warning per machine whose physics nobody fitted (a topology file's machine): its
    absolute times are the borrowed preset's physics on this topology, not a measurement."""
    seen = set()
    for r in runs:
        m = r.config.resolved_machine()
        if m.calibration != "calibrated" and m.name not in seen:
            seen.add(m.name)
            log.warning(f"machine {m.name!r} is {m.calibration}; give measured numbers as machine.<field>= "
                        "(docs/topology.md) before trusting absolute times")


def warn_perf_window(runs) -> None:
    """perf bench numa's -s window (nr_secs after its start barrier) longer than sim.duration_s:
    the figures would cover less than perf measures (flagged perf_cut_short)."""
    from ..config import PERF_EXIT_MARGIN_S
    seen = set()
    for r in runs:
        wl = r.config.resolved_workload()
        b = getattr(wl, "bench", None)
        dur = r.config.sim.duration_s
        if b is not None and getattr(b, "nr_secs", 0) and dur < b.nr_secs + 1 and (wl.name, dur) not in seen:
            seen.add((wl.name, dur))
            log.warning(f"{wl.name}: perf measures {b.nr_secs} s after its start barrier but sim.duration_s={dur:g}; "
                        f"give sim.duration_s={b.nr_secs + PERF_EXIT_MARGIN_S:g} for the whole window "
                        "(else perf_cut_short)")


def _print_table(df, limit: int = 20):
    cols = [c for c in ("combo_label", "seed", "runtime_s", "local_fraction_final", "converge_s", "pages_migrated",
                        "exchanges", "overhead_cpu_s", "perf_convergence_latency_s", "perf_thread_speed_gbs")
            if c in df.columns]
    import pandas as pd
    with pd.option_context("display.width", 160, "display.max_colwidth", 50, "display.float_format", "{:.3f}".format):
        text = df[cols].head(limit).to_string(index=False)
    more = f"\n... {len(df) - limit} more rows in results.parquet" if len(df) > limit else ""
    log.info("results:\n" + text + more)
