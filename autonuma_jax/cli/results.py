"""Result tables of one job and their atomic, no-clobber writing.

- ``results.parquet``: one row per configuration: identity (machine, workload, variant, policy,
  seed, sim settings, every knob flattened under its sysfs path), the combination label, and every
  summary metric of ``autonuma_jax.metrics.summarize``.
- ``timeseries.parquet``: one row per configuration and report interval: the configuration's
  identity (label, combo_label, policy, machine, workload, seed and the knobs that vary within the
  job), the interval counters, the local fraction, progress, and per node / per process page counts
  (the nmstat view); per-thread node placement as list columns.

The metric and time-series columns are defined once, in ``autonuma_jax.frames`` (what the Python
API's ``an.results_frame`` / ``an.timeseries_frame`` return); this module adds the CLI's columns.
"""
from __future__ import annotations

import os
import tempfile

from ..checkpoint import default_mode

import numpy as np
import pandas as pd

from .. import frames as F
from ..knobs import flatten
from .build import Run, describe, swept_label

RESULTS = "results.parquet"
TIMESERIES = "timeseries.parquet"


class ResultsExistError(FileExistsError):
    pass


def combo_label(run: Run) -> str:
    return swept_label(run.params) or run.config.policy


def results_frame(runs: list[Run], results: list, job: dict | None = None) -> pd.DataFrame:
    """results.parquet: the CLI's identity columns (``describe``), ``combo_label``, then the
    label and metric columns the Python API's ``results_frame`` has (``frames.metric_columns``),
    then the job's ``job.*`` columns."""
    rows = []
    for run, res in zip(runs, results):
        row = describe(run)
        row["combo_label"] = combo_label(run)
        row["label"] = res.config.label()
        row.update(F.metric_columns(res))
        if job:
            row.update({f"job.{k}": v for k, v in job.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    return df


# identity columns of results.parquet repeated on each of a configuration's timeseries.parquet rows,
# so that the file can be read alone (no join on config_index needed to know what a row is)
SERIES_IDENTITY = ("label", "combo_label", "policy", "machine", "workload")


def timeseries_frame(runs: list[Run], results: list) -> pd.DataFrame:
    """timeseries.parquet: per row, the configuration's ``config_index``, ``combo``, ``seed``, the
    identity of ``SERIES_IDENTITY`` and the knobs that vary within the job (the knob columns of
    results.parquet whose values differ between its rows; same names and values), then the
    columns of ``frames.timeseries_columns``."""
    knobs = [flatten(run.config.knobs) for run in runs]
    vary = F.varying(knobs)
    frames = []
    for run, res, kn in zip(runs, results, knobs):
        cols = F.timeseries_columns(res)
        n = len(cols["report"])
        ident = describe(run)  # the same values as the configuration's results.parquet row
        ident["label"] = res.config.label()
        ident["combo_label"] = combo_label(run)
        head = {
            "config_index": np.full(n, run.index, np.int32),
            "combo": np.full(n, run.combo, np.int32),
            "seed": np.full(n, run.config.seed, np.int32),
            **{k: ident[k] for k in SERIES_IDENTITY},
            **{k: kn[k] for k in vary},
        }
        frames.append(F.series_frame(head, cols))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def check_writable(out_dir: str, overwrite: bool) -> None:
    path = os.path.join(out_dir, RESULTS)
    if os.path.exists(path) and not overwrite:
        raise ResultsExistError(f"{path} exists: refusing to overwrite it (pass results.overwrite=true, or "
                                f"another hydra.run.dir)")


def write_atomic(df: pd.DataFrame, path: str, overwrite: bool) -> str:
    """Write a parquet file through a temporary file in the same folder, then rename it into place.

    Without ``overwrite`` the final step is a hard link, which fails if the file appeared meanwhile.
    """
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    os.chmod(tmp, default_mode())  # the umask's permissions, not mkstemp's 0600
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ResultsExistError(f"{path} exists: refusing to overwrite it "
                                        f"(pass results.overwrite=true)") from None
            except OSError:  # filesystems without hard links
                if os.path.exists(path):
                    raise ResultsExistError(f"{path} exists: refusing to overwrite it") from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(text: str, path: str) -> str:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    os.chmod(tmp, default_mode())  # the umask's permissions, not mkstemp's 0600
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def _per_config_texts(df: pd.DataFrame, out_dir: str, sub: str, text) -> list[str]:
    """<sub>/config_<index>.txt for every row that ``text(row)`` gives a text for (None: skip)."""
    d = os.path.join(out_dir, sub)
    os.makedirs(d, exist_ok=True)
    files = []
    for row in df.to_dict("records"):
        t = text(row)
        if t is not None:
            files.append(write_text_atomic(t, os.path.join(d, f"config_{int(row['config_index']):04d}.txt")))
    return files


def write_vmstat(df: pd.DataFrame, out_dir: str) -> list[str]:
    """vmstat/config_<index>.txt: each configuration's final counters as /proc/vmstat lines
    ("name value"; AutoNUMA24's as sysfs paths), to diff against a real run's
    ``grep numa /proc/vmstat``. vmstat/index.csv maps the files to the configurations."""
    from ..vmstat import vmstat_text
    files = _per_config_texts(df, out_dir, "vmstat", vmstat_text)
    idx = [c for c in ("config_index", "combo_label", "machine", "workload", "policy", "seed") if c in df.columns]
    index = os.path.join(out_dir, "vmstat", "index.csv")
    df[idx].assign(file=[os.path.basename(f) for f in files]).to_csv(index, index=False)
    return files + [index]


def write_perf(df: pd.DataFrame, out_dir: str) -> list[str]:
    """perf_bench_numa/config_<index>.txt: what perf bench numa mem would print for each perf
    configuration (print_res's long format), beside the result columns perf_*."""
    from ..workloads.perf_figures import FIGURES, perf_text

    def text(row):
        if row.get("perf_runtime_max_s") != row.get("perf_runtime_max_s"):  # not a perf run (NaN)
            return None
        head = f"{row['label']}\n" if row.get("label") else ""
        return head + perf_text({k: row[k] for k in FIGURES}, str(row["workload"]))
    return _per_config_texts(df, out_dir, "perf_bench_numa", text)
