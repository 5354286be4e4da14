"""Result tables of one job and their atomic, no-clobber writing.

- ``results.parquet``: one row per configuration: identity (machine, workload, variant, policy,
  seed, sim settings, every knob flattened under its sysfs path), the combination label, and every
  summary metric of ``autonuma_jax.metrics.summarize``.
- ``timeseries.parquet``: one row per configuration and report interval: the interval counters,
  the local fraction, progress, and per node / per process page counts (the nmstat view);
  per-thread node placement as list columns.
"""
from __future__ import annotations

import os
import tempfile

from ..checkpoint import default_mode

import numpy as np
import pandas as pd

from ..metrics import OVERHEAD_NAMES, local_fraction
from .build import Run, describe, swept_label

RESULTS = "results.parquet"
TIMESERIES = "timeseries.parquet"


class ResultsExistError(FileExistsError):
    pass


def combo_label(run: Run) -> str:
    return swept_label(run.params) or run.config.policy


def results_frame(runs: list[Run], results: list, job: dict | None = None) -> pd.DataFrame:
    rows = []
    for run, res in zip(runs, results):
        row = describe(run)
        row["combo_label"] = combo_label(run)
        summ = res.summary()
        row["label"] = summ.pop("label")
        for k in ("policy", "seed"):
            summ.pop(k, None)
        row.update(summ)
        row["n_tasks"] = res.static.n_tasks
        row["reports"] = int(len(res.rows["tick"]))
        if job:
            row.update({f"job.{k}": v for k, v in job.items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    return df


def timeseries_frame(runs: list[Run], results: list) -> pd.DataFrame:
    frames = []
    for run, res in zip(runs, results):
        r = res.rows
        st = res.static
        n = len(r["tick"])
        report_s = st.report_ticks * st.tick_s
        cols = {
            "config_index": np.full(n, run.index, np.int32),
            "combo": np.full(n, run.combo, np.int32),
            "seed": np.full(n, run.config.seed, np.int32),
            "report": np.arange(n, dtype=np.int32),
            "sim_time_s": (np.arange(n) + 1) * report_s,
            "tick": r["tick"].astype(np.int64),
            "local_fraction": local_fraction(r),
            "progress": r["tasks_done"] / max(1, st.n_tasks),
        }
        for k in ("local_kib", "total_kib", "hinting_faults", "fault_pages", "pages_queued", "pages_migrated",
                  "exchanges", "noise_moves", "lb_moves", "full_scans", "pages_scanned", "tasks_done"):
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
        df = pd.DataFrame(cols)
        df["task_node"] = list(np.asarray(r["task_node"]).astype(np.int16))
        df["task_selected_nid"] = list(np.asarray(r["task_selected_nid"]).astype(np.int16))
        frames.append(df)
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
