"""Per-combination tables: mean, spread and confidence interval over seeds; ratios to a baseline."""
from __future__ import annotations

import numpy as np

from . import stats
from .columns import CELL_COLUMNS, add_groups, knob_columns, varying

SUMMARY_METRICS = ("runtime_s", "local_fraction_final", "converge_s", "converged", "pages_migrated", "exchanges",
                   "hinting_faults", "overhead_cpu_s")


def summary_table(results, metrics=SUMMARY_METRICS, level: float = 0.95):
    """One row per combination (``group``) and cell: ``seeds`` and, per metric, ``_mean``, ``_ci95``
    (half-width of the ``level`` interval of the mean, Student's t), ``_std`` (ddof 0, as before),
    ``_min``, ``_max``. Booleans (``converged``, ``finished``) become fractions of seeds."""
    import pandas as pd
    df = results if "group" in results.columns else add_groups(results)
    metrics = [m for m in metrics if m in df.columns]
    keys = [c for c in CELL_COLUMNS if c in df.columns] + ["group"]
    rows = []
    for key, sub in df.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(sub)
        for m in metrics:
            x = sub[m].astype(float).to_numpy()
            mean, half, n = stats.mean_ci(x, level)
            fin = x[np.isfinite(x)]
            row[f"{m}_mean"] = mean
            row[f"{m}_ci95"] = half
            row[f"{m}_std"] = float(fin.std()) if len(fin) else float("nan")
            row[f"{m}_min"] = float(fin.min()) if len(fin) else float("nan")
            row[f"{m}_max"] = float(fin.max()) if len(fin) else float("nan")
            row[f"{m}_n"] = n
        rows.append(row)
    out = pd.DataFrame(rows)
    # the group label first: it is what a reader looks for
    return out[["group"] + [c for c in out.columns if c != "group"]]


def add_runtime_ratio(results, metric: str = "runtime_s", baseline: str = "auto"):
    """``<metric>_ratio``: the metric over a baseline of the same machine and workload, and the
    name of that baseline in ``ratio_baseline``: the hard_bind runs of the cell when there are
    any (``auto`` or ``hard_bind``), else the default-knob cell (autonuma24 when present), else the
    best cell (lowest mean)."""
    from ..knobs import Knobs, flatten
    df = results.copy()
    keys = [c for c in CELL_COLUMNS if c in df.columns]
    defaults = flatten(Knobs())
    knobs = varying(df, knob_columns(df))
    ratio = np.full(len(df), np.nan)
    base_name = np.array([""] * len(df), dtype=object)
    groups = df.groupby(keys[0] if len(keys) == 1 else keys, sort=False).groups if keys else {None: df.index}
    for _, idx in groups.items():
        sub = df.loc[idx]
        base, name = np.nan, ""
        if baseline in ("auto", "hard_bind") and "policy" in sub.columns and (sub["policy"] == "hard_bind").any():
            base, name = sub.loc[sub["policy"] == "hard_bind", metric].mean(), "hard_bind"
        if name == "" and baseline in ("auto", "default"):
            mask = np.ones(len(sub), bool)
            for k in knobs:
                mask &= (sub[k] == defaults[k]).to_numpy()
            if "policy" in sub.columns and (sub["policy"] == "autonuma24").any():
                mask &= (sub["policy"] == "autonuma24").to_numpy()
            if mask.any() and np.isfinite(sub.loc[mask, metric]).any():
                base, name = sub.loc[mask, metric].mean(), "default knobs"
        if name == "" and baseline in ("auto", "best", "default"):
            cell = sub.groupby(knobs)[metric].mean() if knobs else sub[metric]
            base, name = cell.min(), "best cell"
        pos = df.index.get_indexer(idx)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio[pos] = sub[metric].to_numpy(float) / base
        base_name[pos] = name
    df[f"{metric}_ratio"] = ratio
    df["ratio_baseline"] = base_name
    return df


def pareto_front(x, y) -> np.ndarray:
    """Mask of the points no other point beats on both (lower is better on both axes)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    mask = np.zeros(len(x), bool)
    for i in np.nonzero(ok)[0]:
        dominated = ok & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        mask[i] = not dominated.any()
    return mask
