"""Simulation results as pandas tables: the one definition of every result column.

- ``results_frame(results)``: one row per configuration: identity (``config_index``, ``label``,
  ``machine``, ``workload``, ``variant``, ``build``, ``policy``, ``seed``, ``sim.<field>`` for
  every ``SimConfig`` field, every knob flattened under its sysfs-style path as
  ``autonuma_jax.knobs.flatten`` names it), then every summary metric of ``Result.summary()``
  (``finished``, ``runtime_s``, ``converge_s``, ...; units in its docstring), then ``n_tasks``
  (threads) and ``reports`` (time-series rows of the configuration).
- ``timeseries_frame(results)``: one row per configuration and report interval: identity
  (``config_index``, ``label``, ``machine``, ``workload``, ``policy``, ``seed`` and the knobs whose
  values differ between the configurations), then the row's columns (``timeseries_columns``).

The command line's ``results.parquet`` / ``timeseries.parquet`` (``cli/results.py``) are built
from the same functions (``metric_columns``, ``timeseries_columns``, ``varying``); the CLI adds
its own columns (``combo``, ``combo_label``, ``job.*``, the spec's workload name and sizes).

Core module: numpy at module level; pandas (the ``cli`` extra) is imported by the two frame
builders only, so ``import autonuma_jax`` works without it.
"""
from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .config import POLICIES, RunConfig, SimConfig
from .knobs import flatten
from .metrics import OVERHEAD_NAMES, local_fraction
from .workloads import Workload

if TYPE_CHECKING:
    import pandas as pd

    from .simulate import Result

# summarize() keys that say which configuration a row is, not what came out of it: identity columns
SUMMARY_IDENTITY = ("label", "policy", "seed")
# per-interval counters and snapshots of a time-series row, as int64 columns (simulate.Row fields)
COUNTER_COLUMNS = ("local_kib", "total_kib", "hinting_faults", "fault_pages", "pages_queued", "pages_migrated",
                   "exchanges", "noise_moves", "lb_moves", "full_scans", "pages_scanned", "tasks_done",
                   "tasks_working",
                   "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults_local", "numa_hit", "numa_miss",
                   "numa_local", "numa_other")
# per-thread rows: one list column each (an int16 array per row)
THREAD_COLUMNS = ("task_node", "task_selected_nid")


def config_columns(cfg: RunConfig) -> dict[str, Any]:
    """Identity columns of one (validated) configuration: label, names, sim settings, every knob."""
    wl = cfg.workload.name if isinstance(cfg.workload, Workload) else cfg.workload
    out: dict[str, Any] = {
        "label": cfg.label(), "machine": cfg.resolved_machine().name,
        "machine.calibration": cfg.resolved_machine().calibration, "workload": wl,
        # the variant the policy imposes (hard_bind, inverse_bind), else the configuration's own
        "variant": POLICIES[cfg.policy][1] or cfg.variant, "build": cfg.build,
        "policy": cfg.policy, "seed": cfg.seed,
    }
    for f in fields(SimConfig):
        out[f"sim.{f.name}"] = getattr(cfg.sim, f.name)
    out.update(flatten(cfg.knobs))
    return out


def metric_columns(res: Result) -> dict[str, Any]:
    """Every summary metric of one result (``Result.summary()`` without its identity keys), then
    ``n_tasks`` and ``reports``."""
    out = res.summary()
    for k in SUMMARY_IDENTITY:
        out.pop(k, None)
    out["n_tasks"] = res.static.n_tasks
    out["reports"] = int(len(res.rows["tick"]))
    return out


def timeseries_columns(res: Result) -> dict[str, Any]:
    """The columns of one configuration's time series, one entry per report row:

    ``report`` (row index), ``sim_time_s`` (end of the interval, s), ``tick``, ``local_fraction``
    (KiB written locally / KiB written in the interval; NaN when nothing was written),
    ``progress`` (fraction of threads done), the interval counters and snapshots of
    ``COUNTER_COLUMNS``, ``overhead_<source>_us`` (kernel CPU time in the interval, us, per
    ``metrics.OVERHEAD_NAMES`` source), ``mm<m>.node<n>.pages`` (4 KiB pages of process m on node
    n: the nmstat view), ``node<n>.free_pages`` and ``node<n>.nr_migrate_pages`` (4 KiB pages), and
    the per-thread lists ``task_node`` / ``task_selected_nid`` (-1: none).
    """
    r = res.rows
    st = res.static
    n = len(r["tick"])
    report_s = st.report_ticks * st.tick_s
    cols: dict[str, Any] = {
        "report": np.arange(n, dtype=np.int32),
        "sim_time_s": (np.arange(n) + 1) * report_s,
        "tick": r["tick"].astype(np.int64),
        "local_fraction": local_fraction(r),
        "progress": r["tasks_done"] / max(1, st.n_tasks),
    }
    for k in COUNTER_COLUMNS:
        cols[k] = np.asarray(r[k]).astype(np.int64)
    ov = np.asarray(r["overhead_us"])
    for i, name in enumerate(OVERHEAD_NAMES):
        cols[f"overhead_{name}_us"] = ov[:, i].astype(np.int64)
    mm = np.asarray(r["mm_node_pages"])
    for m in range(mm.shape[1]):
        for nd in range(mm.shape[2]):
            cols[f"mm{m}.node{nd}.pages"] = mm[:, m, nd].astype(np.int64)
    for k in ("free_pages", "nr_migrate_pages"):
        a = np.asarray(r[k])
        for nd in range(a.shape[1]):
            cols[f"node{nd}.{k}"] = a[:, nd].astype(np.int64)
    for k in THREAD_COLUMNS:
        cols[k] = list(np.asarray(r[k]).astype(np.int16))
    return cols


def varying(rows: Sequence[Mapping[str, Any]], keys: Sequence[str] | None = None) -> list[str]:
    """The keys (default: the first row's) whose values differ between ``rows``, in key order: a
    job's varying knobs, the columns that tell its configurations apart."""
    if not rows:
        return []
    first = rows[0]
    return [k for k in (first if keys is None else keys) if any(r[k] != first[k] for r in rows[1:])]


def series_frame(head: Mapping[str, Any], cols: Mapping[str, Any]) -> pd.DataFrame:
    """One configuration's time series: the constant ``head`` columns repeated on every row, then
    ``cols`` (``timeseries_columns``). Lists of Python values, so that pandas infers the same
    dtypes as in the one-row-per-configuration table (str, int64, float64)."""
    import pandas as pd
    n = len(cols["report"])
    data = {k: (v if isinstance(v, np.ndarray) else [v] * n) for k, v in head.items()}
    lists = {k: v for k, v in cols.items() if isinstance(v, list)}
    data.update({k: v for k, v in cols.items() if k not in lists})
    df = pd.DataFrame(data)
    for k, v in lists.items():  # object columns of arrays: assigned after the frame is built
        df[k] = v
    return df


def results_frame(results: Sequence[Result]) -> pd.DataFrame:
    """One row per configuration (in the order of ``results``): ``config_index`` (position in
    ``results``), the identity columns of ``config_columns`` (label, machine, workload, variant,
    build, policy, seed, ``sim.*``, every knob under its sysfs-style path), every summary metric
    of ``Result.summary()``, ``n_tasks`` and ``reports``. Needs pandas."""
    import pandas as pd
    rows = [{"config_index": i, **config_columns(res.config), **metric_columns(res)} for i, res in enumerate(results)]
    return pd.DataFrame(rows)


def timeseries_frame(results: Sequence[Result]) -> pd.DataFrame:
    """One row per configuration and report interval: ``config_index`` (position in ``results``,
    as in ``results_frame``), ``label``, ``machine``, ``workload``, ``policy``, ``seed``, the knobs
    whose values differ between the configurations, then ``timeseries_columns``. A configuration
    that finished early has fewer rows (its rows stop at its end). Needs pandas."""
    import pandas as pd
    if not results:
        return pd.DataFrame()
    knobs = [flatten(res.config.knobs) for res in results]
    vary = varying(knobs)
    frames = []
    for i, (res, kn) in enumerate(zip(results, knobs)):
        ident = config_columns(res.config)
        head = {"config_index": i, **{k: ident[k] for k in ("label", "machine", "workload", "policy", "seed")},
                **{k: kn[k] for k in vary}}
        frames.append(series_frame(head, timeseries_columns(res)))
    return pd.concat(frames, ignore_index=True)
