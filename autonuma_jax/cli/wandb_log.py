"""Weights & Biases logging of one job: one wandb run, written after the results are on disk.

- grouped by the hydra sweep (``group=``), the resolved config as the run config;
- ``sim_time_s`` is the x axis (``define_metric``) of the convergence curves, logged once per report
  interval: per parameter combination the mean over seeds of the local fraction (with std, min and
  max), MiB migrated, task exchanges and progress (fraction of threads done); ``all/*`` pools every
  configuration of the job;
- a ``wandb.Table`` ``results`` with one row per configuration (the rows of results.parquet);
- summary: every summary metric of results.parquet (the value for a single configuration, the
  mean over configurations otherwise), plus ``n_configs``.

Offline by default: the run lives in ``<job folder>/wandb/offline-run-*`` (``wandb sync`` it
later). Any wandb failure only warns: an online init that fails retries offline, and if that fails
too the job goes on without wandb; results.parquet is written before wandb is touched.
"""
from __future__ import annotations

import hashlib

import logging
import os
import warnings

import numpy as np

log = logging.getLogger("autonuma_jax.cli")

CURVE_PREFIXES = ("local_fraction", "local_fraction_std", "local_fraction_min", "local_fraction_max",
                  "migrated_mib", "exchanges", "progress", "all")


class WandbWarning(RuntimeWarning):
    """wandb could not log (the job goes on). The CLI shows it once, through its log."""


def _warn(msg: str):
    log.warning(msg)
    warnings.warn(msg, WandbWarning, stacklevel=3)


def _key(label: str) -> str:
    return label.replace("/", "_") or "default"


def curve_rows(results, series, max_curves: int = 32) -> list[dict]:
    """The history rows to log: one dict per report time."""
    if series is None or len(series) == 0:
        return []
    labels = results.set_index("config_index")["combo_label"]
    ts = series.copy()
    ts["combo_label"] = labels.reindex(ts["config_index"].to_numpy()).to_numpy()
    ts["migrated_mib"] = ts["pages_migrated"] * 4 / 1024
    combos = list(dict.fromkeys(results.sort_values("config_index")["combo_label"]))[:max(0, max_curves)]
    rows: dict = {}
    g = ts[ts["combo_label"].isin(combos)].groupby(["sim_time_s", "combo_label"], sort=True)
    agg = g.agg(lf_mean=("local_fraction", "mean"), lf_std=("local_fraction", lambda x: float(np.std(x))),
                lf_min=("local_fraction", "min"), lf_max=("local_fraction", "max"),
                mig=("migrated_mib", "mean"), exc=("exchanges", "mean"), prog=("progress", "mean"))
    for (t, lab), r in agg.iterrows():
        d = rows.setdefault(float(t), {"sim_time_s": float(t)})
        k = _key(lab)
        d[f"local_fraction/{k}"] = r.lf_mean
        d[f"local_fraction_std/{k}"] = r.lf_std
        d[f"local_fraction_min/{k}"] = r.lf_min
        d[f"local_fraction_max/{k}"] = r.lf_max
        d[f"migrated_mib/{k}"] = r.mig
        d[f"exchanges/{k}"] = r.exc
        d[f"progress/{k}"] = r.prog
    allg = ts.groupby("sim_time_s", sort=True).agg(
        lf_mean=("local_fraction", "mean"), lf_min=("local_fraction", "min"), lf_max=("local_fraction", "max"),
        mig=("migrated_mib", "mean"), exc=("exchanges", "mean"), prog=("progress", "mean"))
    for t, r in allg.iterrows():
        d = rows.setdefault(float(t), {"sim_time_s": float(t)})
        d.update({"all/local_fraction_mean": r.lf_mean, "all/local_fraction_min": r.lf_min,
                  "all/local_fraction_max": r.lf_max, "all/migrated_mib": r.mig, "all/exchanges": r.exc,
                  "all/progress": r.prog})
    out = []
    for t in sorted(rows):
        out.append({k: (float(v) if isinstance(v, (float, np.floating, int, np.integer)) else v)
                    for k, v in rows[t].items()})
    return out


def summary_values(results, metrics: list[str]) -> dict:
    """Summary-metric values: the configuration's own for a single one, else the mean."""
    out = {"n_configs": int(len(results))}
    for m in metrics:
        col = results[m]
        if len(results) == 1:
            v = col.iloc[0]
            out[m] = bool(v) if col.dtype == bool else (int(v) if np.issubdtype(col.dtype, np.integer) else float(v))
        else:
            out[m] = float(col.astype(float).mean())
    return out


def _table(wandb, results):
    cols = list(results.columns)
    data = []
    for row in results.itertuples(index=False, name=None):
        r = []
        for v in row:
            if isinstance(v, (np.integer,)):
                v = int(v)
            elif isinstance(v, (np.floating,)):
                v = float(v)
            elif isinstance(v, np.bool_):
                v = bool(v)
            elif v is None or isinstance(v, (int, float, bool, str)):
                pass
            else:
                v = str(v)
            r.append(v)
        data.append(r)
    return wandb.Table(columns=cols, data=data)


def _init(wandb, lcfg: dict, mode: str, out_dir: str, group, name, config):
    settings = wandb.Settings(console="off", silent=True, init_timeout=float(lcfg.get("init_timeout_s", 60)),
                              x_disable_stats=True)
    # One run per job folder: a requeued or resumed job logs under the same id.
    run_id = hashlib.sha1(os.path.abspath(out_dir).encode()).hexdigest()[:16]
    return wandb.init(mode=mode, dir=out_dir, project=lcfg.get("project"), entity=lcfg.get("entity"),
                      id=run_id, resume="allow",
                      group=group, name=name, config=config, tags=list(lcfg.get("tags") or []) or None,
                      job_type=lcfg.get("job_type"), settings=settings, reinit="finish_previous")


def log_job(lcfg: dict, out_dir: str, group: str | None, name: str | None, config: dict, results, series,
            metrics: list[str]) -> str | None:
    """Log one job to wandb; returns the wandb run folder, or None (disabled or failed: warned)."""
    mode = lcfg.get("mode", "offline")
    mode = getattr(mode, "name", mode)
    if mode == "disabled":
        return None
    try:
        import wandb
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb unavailable ({type(e).__name__}: {e}); results are in {out_dir}, no wandb run")
        return None
    run = None
    try:
        run = _init(wandb, lcfg, mode, out_dir, group, name, config)
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb.init(mode={mode}) failed: {type(e).__name__}: {e}")
        _finish_quietly(wandb)
        if mode == "online" and lcfg.get("fallback_offline", True):
            try:
                run = _init(wandb, lcfg, "offline", out_dir, group, name, config)
                log.warning(f"logging this job offline instead (wandb sync {out_dir}/wandb/offline-run-* later)")
            except Exception as e2:  # noqa: BLE001
                _warn(f"offline wandb.init failed too: {type(e2).__name__}: {e2}; going on without wandb")
                _finish_quietly(wandb)
                return None
        else:
            return None
    try:
        run.define_metric("sim_time_s")
        for p in CURVE_PREFIXES:
            run.define_metric(f"{p}/*", step_metric="sim_time_s")
        for row in curve_rows(results, series, int(lcfg.get("max_curves", 32))):
            run.log(row)
        if lcfg.get("table", True):
            run.log({"results": _table(wandb, results)})
        run.summary.update(summary_values(results, metrics))
        run_dir = os.path.dirname(run.dir)
        run.finish()
        return run_dir
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb logging failed: {type(e).__name__}: {e}; results are in {out_dir}")
        try:
            run.finish(exit_code=1)
        except Exception:  # noqa: BLE001
            pass
        return None


def _finish_quietly(wandb):
    try:
        if wandb.run is not None:
            wandb.run.finish(exit_code=1)
    except Exception:  # noqa: BLE001
        pass

