"""Weights & Biases logging of one job, written after the results are on disk.

One wandb run per parameter combination (the seeds of a combination aggregated inside it), all
runs of a job in one wandb group (the hydra sweep of a ``-m`` multirun, else the experiment name),
so an in-process sweep looks in wandb exactly like a ``-m`` multirun over the same knobs. Why per
combination and not per configuration: a seed is a sample, not a setting; wandb's grouping,
filtering and parallel-coordinates compare settings, and a run that holds the seeds can carry
their mean and confidence interval in its summary.

- config: the combination's identity under the same flat sysfs-style keys as results.parquet
  (``machine``, ``workload``, ``policy``, ``autonuma.knuma_scand.pages_to_scan``, ``sim.tick_ms``,
  ...), ``combo_label``, ``seeds``; ``job`` (number, overrides) and the resolved job config under
  ``resolved``.
- history over ``sim_time_s`` (``define_metric``), one row per report interval, the mean over
  seeds of: ``local_fraction`` (with ``_std``, ``_min``, ``_max``), and per interval
  ``hinting_faults``, ``pages_scanned``, ``full_scans``, ``pages_migrated`` (4 KiB pages),
  ``migrated_mib``, ``exchanges``, ``overhead_cpu_s`` and ``overhead/<source>_cpu_s`` (CPU seconds
  in that interval); ``threads_done`` (fraction of threads finished, cumulative). A value
  that does not exist (the local fraction once every thread is done) is left out, not NaN.
- summary: every metric of results.parquet as the mean over the combination's seeds (booleans as
  fractions), ``<metric>_ci95`` (Student's t half-width) for the main metrics, ``n_seeds``;
  metrics with no value (runtime of an unfinished run) are left out and ``finished`` says why.
- a job of several combinations also gets one ``job`` run in the same group (``job_type`` from
  the logger config) with the ``results`` table (one row per configuration), the job's plots as
  images and, instead of means over different knob values, ``best/<metric>`` (the combination
  with the lowest mean runtime, time to converge, CPU overhead); a job of one combination puts
  all of it in its single run.
- under a wandb agent (``WANDB_SWEEP_ID`` set) the job is the sweep's trial: one run, the id the
  agent chose, every configuration of the job aggregated (a trial is one point of the sweep).

Offline by default: the runs live in ``<job folder>/wandb/offline-run-*`` (``wandb sync`` them
later). Any wandb failure only warns: an online init that fails retries offline, and if that fails
too the job goes on without wandb; results.parquet is written before wandb is touched. Run ids are
derived from the job folder (and the combination), so a requeued or resumed job logs under the
same ids.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings

import numpy as np

from ..analysis import stats
from ..analysis.columns import identity_columns
from ..analysis.convergence import with_derived

log = logging.getLogger("autonuma_jax.cli")

# history columns: (timeseries column, wandb key, scale)
HISTORY = (("hinting_faults", "hinting_faults", 1.0), ("pages_scanned", "pages_scanned", 1.0),
           ("pages_migrated", "pages_migrated", 1.0), ("pages_migrated", "migrated_mib", 4 / 1024),
           ("exchanges", "exchanges", 1.0), ("full_scans", "full_scans", 1.0),
           ("overhead_us", "overhead_cpu_s", 1e-6),
           ("progress", "threads_done", 1.0),
           # the kernel's vmstat NUMA counters of each interval, under their /proc/vmstat names
           ("numa_pte_updates", "vmstat/numa_pte_updates", 1.0), ("numa_huge_pte_updates", "vmstat/numa_huge_pte_updates", 1.0),
           ("hinting_faults", "vmstat/numa_hint_faults", 1.0), ("numa_hint_faults_local", "vmstat/numa_hint_faults_local", 1.0),
           ("pages_migrated", "vmstat/numa_pages_migrated", 1.0), ("numa_hit", "vmstat/numa_hit", 1.0),
           ("numa_miss", "vmstat/numa_miss", 1.0), ("numa_local", "vmstat/numa_local", 1.0),
           ("numa_other", "vmstat/numa_other", 1.0))
CUMULATIVE = ("pages_scanned", "full_scans")  # running totals in timeseries.parquet
CI_METRICS = ("runtime_s", "converge_s", "local_fraction_final", "overhead_cpu_s", "pages_migrated")


class WandbWarning(RuntimeWarning):
    """wandb could not log (the job goes on). The CLI shows it once, through its log."""


def _warn(msg: str):
    log.warning(msg)
    warnings.warn(msg, WandbWarning, stacklevel=3)


def _py(v):
    """A numpy / pandas scalar as the plain Python value wandb stores."""
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    if v is None or isinstance(v, (int, str)):
        return v
    return str(v)


def combinations(results) -> list[str]:
    """The job's combination labels in configuration order."""
    return list(dict.fromkeys(results.sort_values("config_index")["combo_label"]))


def combo_config(results, label: str) -> dict:
    """Flat identity of one combination (every identity column, as in results.parquet)."""
    sub = results[results["combo_label"] == label].sort_values("config_index")
    first = sub.iloc[0]
    out = {c: _py(first[c]) for c in identity_columns(results)}
    out["combo_label"] = label
    out["seeds"] = [int(s) for s in sub["seed"]]
    return out


def history_rows(series) -> list[dict]:
    """The history of one combination: the mean over its configurations per report time."""
    if series is None or len(series) == 0:
        return []
    ts = with_derived(series)
    # the scanner's counters are cumulative in timeseries.parquet; wandb gets them per interval like
    # every other counter, so that one chart reads as a rate
    ts = ts.sort_values(["config_index", "sim_time_s"]).copy()
    for col in CUMULATIVE:
        if col in ts.columns:
            ts[col] = ts.groupby("config_index")[col].diff().fillna(ts[col])
    g = ts.groupby("sim_time_s", sort=True)
    rows = []
    for t, sub in g:
        row = {"sim_time_s": float(t)}
        lf = sub["local_fraction"].astype(float).to_numpy()
        lf = lf[np.isfinite(lf)]
        if len(lf):
            row.update({"local_fraction": float(lf.mean()), "local_fraction_std": float(lf.std()),
                        "local_fraction_min": float(lf.min()), "local_fraction_max": float(lf.max())})
        for col, key, scale in HISTORY:
            if col in sub.columns:
                row[key] = float(sub[col].astype(float).mean() * scale)
        for c in sub.columns:
            if c.startswith("overhead_") and c.endswith("_us") and c != "overhead_us":
                row[f"overhead/{c[len('overhead_'):-len('_us')]}_cpu_s"] = float(sub[c].astype(float).mean() * 1e-6)
        rows.append({k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))})
    return rows


def summary_values(results, metrics: list[str]) -> dict:
    """Mean over the rows of every metric (booleans as fractions), CI half-widths of the main
    ones, ``n_seeds``; values that do not exist are left out."""
    out = {"n_seeds": int(len(results))}
    for m in metrics:
        col = results[m]
        if col.dtype == bool:
            out[m] = float(col.mean()) if len(results) > 1 else bool(col.iloc[0])
            continue
        vals = col.astype(float).to_numpy()
        if len(results) == 1 and np.issubdtype(col.dtype, np.integer):
            out[m] = int(col.iloc[0])
            continue
        mean, half, n = stats.mean_ci(vals)
        if n:
            out[m] = mean
        if m in CI_METRICS and n > 1 and not math.isnan(half):
            out[f"{m}_ci95"] = half
    return out


def best_combinations(results) -> dict:
    """``best/<metric>``: the combination with the best mean over seeds, and ``best/<metric>_value``."""
    out = {}
    for m in ("runtime_s", "converge_s", "overhead_cpu_s"):
        if m not in results.columns:
            continue
        means = results.groupby("combo_label", sort=False)[m].mean().dropna()
        if len(means):
            out[f"best/{m}"] = str(means.idxmin())
            out[f"best/{m}_value"] = float(means.min())
    return out


def _table(wandb, results):
    data = [[_py(v) for v in row] for row in results.itertuples(index=False, name=None)]
    return wandb.Table(columns=list(results.columns), data=data)


def _init(wandb, lcfg: dict, mode: str, out_dir: str, group, name, config, run_id, job_type):
    settings = wandb.Settings(console="off", silent=True, init_timeout=float(lcfg.get("init_timeout_s", 60)),
                              x_disable_stats=True)
    kw = {} if run_id is None else {"id": run_id, "resume": "allow"}
    return wandb.init(mode=mode, dir=out_dir, project=lcfg.get("project"), entity=lcfg.get("entity"),
                      group=group, name=name, config=config, tags=list(lcfg.get("tags") or []) or None,
                      job_type=job_type, settings=settings, reinit="finish_previous", **kw)


def _run_id(out_dir: str, label: str | None) -> str:
    key = os.path.abspath(out_dir) + ("" if label is None else "\0" + label)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def plan_runs(results, series, config: dict, out_dir: str, name: str | None, lcfg: dict,
              sweep_agent: bool) -> list[dict]:
    """What each wandb run of the job holds: id, name, job_type, config, rows, summary flags."""
    labels = combinations(results)
    base = {"job": config.get("job", {}), "resolved": {k: v for k, v in config.items() if k != "job"}}
    one = sweep_agent or len(labels) == 1

    def rows_of(sel):
        if series is None or len(series) == 0:
            return []
        idx = set(results.loc[sel, "config_index"])
        return history_rows(series[series["config_index"].isin(idx)])

    if one:
        cfg = combo_config(results, labels[0]) if len(labels) == 1 else {"combo_labels": labels}
        sel = np.ones(len(results), bool)
        return [{"id": None if sweep_agent else _run_id(out_dir, None), "name": name,
                 "job_type": lcfg.get("job_type"), "config": {**cfg, **base}, "rows": rows_of(sel), "sel": sel,
                 "job": True}]
    max_runs = int(lcfg.get("max_runs", 64))
    runs = []
    for label in labels[:max(0, max_runs)]:
        sel = (results["combo_label"] == label).to_numpy()
        runs.append({"id": _run_id(out_dir, label), "name": f"{name} {label}" if name else label,
                     "job_type": "combination", "config": {**combo_config(results, label), **base},
                     "rows": rows_of(sel), "sel": sel, "job": False})
    if len(labels) > max_runs:
        _warn(f"wandb: {len(labels)} combinations, logger.max_runs={max_runs}: the other "
              f"{len(labels) - max_runs} are only in the job run's results table")
    runs.append({"id": _run_id(out_dir, None), "name": name, "job_type": lcfg.get("job_type"),
                 "config": {"combo_labels": labels, **base}, "rows": [], "sel": np.ones(len(results), bool),
                 "job": True})
    return runs


def import_wandb(lcfg: dict, out_dir: str):
    """(the wandb module, the logger's mode), or (None, mode) when disabled or unavailable (warned)."""
    mode = lcfg.get("mode", "offline")
    mode = getattr(mode, "name", mode)
    if mode == "disabled":
        return None, mode
    try:
        import wandb
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb unavailable ({type(e).__name__}: {e}); results are in {out_dir}, no wandb run")
        return None, mode
    return wandb, mode


def log_job(lcfg: dict, out_dir: str, group: str | None, name: str | None, config: dict, results, series,
            metrics: list[str], plots: list[str] | None = None) -> str | None:
    """Log one job to wandb; returns the folder of its job run, or None (disabled or failed: warned)."""
    wandb, mode = import_wandb(lcfg, out_dir)
    if wandb is None:
        return None
    sweep_agent = bool(os.environ.get("WANDB_SWEEP_ID"))
    try:
        runs = plan_runs(results, series, config, out_dir, name, lcfg, sweep_agent)
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb logging failed: {type(e).__name__}: {e}; results are in {out_dir}")
        return None
    job_dir = None
    for spec in runs:
        d, mode = _log_run(wandb, lcfg, mode, out_dir, group, spec, results, metrics, plots or [])
        if d is None:
            return None  # wandb unusable: warned once, the job goes on
        if spec["job"]:
            job_dir = d
    return job_dir


def _log_run(wandb, lcfg, mode, out_dir, group, spec, results, metrics, plots):
    """Log one run: (its folder, the mode the next run should use), or (None, mode) on failure.
    An online init that failed and fell back makes every later run of the job offline at once."""
    run = None
    args = (spec["name"], spec["config"], spec["id"], spec["job_type"])
    try:
        run = _init(wandb, lcfg, mode, out_dir, group, *args)
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb.init(mode={mode}) failed: {type(e).__name__}: {e}")
        _finish_quietly(wandb)
        if mode == "online" and lcfg.get("fallback_offline", True):
            try:
                run = _init(wandb, lcfg, "offline", out_dir, group, *args)
                mode = "offline"
                log.warning(f"logging this job offline instead (wandb sync {out_dir}/wandb/offline-run-* later)")
            except Exception as e2:  # noqa: BLE001
                _warn(f"offline wandb.init failed too: {type(e2).__name__}: {e2}; going on without wandb")
                _finish_quietly(wandb)
                return None, mode
        else:
            return None, mode
    try:
        run.define_metric("sim_time_s")
        # only the curves are plotted over sim_time_s: a "*" glob would stamp the table and image
        # rows with a sim_time_s too, as if they were points of the curves
        for key in sorted({k for row in spec["rows"] for k in row if k != "sim_time_s"}):
            run.define_metric(key, step_metric="sim_time_s")
        for row in spec["rows"]:
            run.log(row)
        sub = results[spec["sel"]]
        n_combos = int(results["combo_label"].nunique())
        if not spec["job"] or n_combos == 1 or spec["id"] is None:
            run.summary.update(summary_values(sub, metrics))
        else:
            # a job of several combinations: no means over different knob values (they would mean
            # nothing), but which combination was best on the metrics a tuner reads
            run.summary.update(best_combinations(results))
        if spec["job"]:
            run.summary.update({"n_configs": int(len(results)), "n_combinations": n_combos})
            if lcfg.get("table", True):
                run.log({"results": _table(wandb, results)})
            if lcfg.get("plots", True):
                images = {f"plots/{os.path.splitext(os.path.basename(p))[0]}": wandb.Image(p)
                          for p in plots if p.endswith(".png") and os.path.exists(p)}
                if images:
                    run.log(images)
        run_dir = os.path.dirname(run.dir)
        run.finish()
        return run_dir, mode
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb logging failed: {type(e).__name__}: {e}; results are in {out_dir}")
        try:
            run.finish(exit_code=1)
        except Exception:  # noqa: BLE001
            pass
        return None, mode


def _finish_quietly(wandb):
    try:
        if wandb.run is not None:
            wandb.run.finish(exit_code=1)
    except Exception:  # noqa: BLE001
        pass
