"""Reading the results of one or several run / multirun folders.

Every job folder holds ``results.parquet`` (one row per configuration) and usually
``timeseries.parquet`` (one row per configuration and report interval). ``job_dir`` (the job's
folder relative to the folders given, or to their common parent when there are several) tells the
jobs apart: ``config_index`` is only unique within one job.
"""
from __future__ import annotations

import os
from typing import Sequence

RESULTS = "results.parquet"
TIMESERIES = "timeseries.parquet"
SKIP_DIRS = ("report", "wandb", ".submitit", ".hydra", "checkpoints")


def find_results(root: str) -> list[str]:
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS)
        if RESULTS in files:
            out.append(os.path.join(d, RESULTS))
    return sorted(out)


def _base(roots: Sequence[str]) -> str:
    if len(roots) == 1:
        return roots[0]
    return os.path.commonpath([os.path.dirname(r.rstrip(os.sep)) or "." for r in roots])


def load(roots: str | Sequence[str], timeseries: bool = True):
    """(results, timeseries or None) of every job under ``roots``, with ``job_dir`` columns."""
    import pandas as pd
    roots = [roots] if isinstance(roots, str) else list(dict.fromkeys(os.path.abspath(r) for r in roots))
    for r in roots:
        if not os.path.isdir(r):
            raise FileNotFoundError(f"{r} is not a folder")
    base = _base(roots)
    res, ts = [], []
    for root in roots:
        paths = find_results(root)
        if not paths:
            raise FileNotFoundError(f"no {RESULTS} under {root}")
        for p in paths:
            d = os.path.dirname(p)
            rel = os.path.relpath(d, base)
            r = pd.read_parquet(p)
            r.insert(0, "job_dir", rel)
            res.append(r)
            tp = os.path.join(d, TIMESERIES)
            if timeseries and os.path.exists(tp):
                t = pd.read_parquet(tp)
                if "job_dir" in t.columns:
                    t = t.drop(columns="job_dir")
                t.insert(0, "job_dir", rel)
                ts.append(t)
    results = pd.concat(res, ignore_index=True, sort=False)
    series = pd.concat(ts, ignore_index=True, sort=False) if ts else None
    return results, series
