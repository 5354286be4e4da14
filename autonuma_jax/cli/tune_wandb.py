"""The wandb runs of a tuning job, grouped by the job (``logger.group``, else ``<name>/<folder>``).

One run per cell (job_type ``tune-cell``): its history has one row per search rung (``rung``,
``candidates``, ``budget_s``, ``best_objective``, ``median_objective``, stepped by ``rung``); its
summary the best knobs under their sysfs paths (``best/<path>``) and the fresh-seed comparison
(``fresh/diff``, ``fresh/diff_ci95``, ``fresh/rel_diff``, ``fresh/verdict``). One job run
(job_type ``logger.job_type``, ``tune``) with the results, comparison and transfer tables and the
plots. A wandb failure only warns: every file is written first.
"""
from __future__ import annotations

import os

import pandas as pd

from .tune_outputs import rung_history
from .wandb_log import _finish_quietly, _init, _run_id, _table, _warn, import_wandb


def log_tuning(lcfg: dict, out_dir: str, group: str | None, name: str, meta: dict, df: pd.DataFrame, best: dict,
               comp: list[dict], trans: list[dict], plots: list[str]) -> str | None:
    wandb, mode = import_wandb(lcfg, out_dir)
    if wandb is None:
        return None
    job_dir = None
    try:
        for cell in meta.get("cells", []):
            cfg = {"tune": meta, "cell": cell}
            run = _init(wandb, lcfg, mode, out_dir, group, f"{name} {cell}", cfg, _run_id(out_dir, cell), "tune-cell")
            run.define_metric("rung")
            for key in ("candidates", "budget_s", "best_objective", "median_objective"):
                run.define_metric(key, step_metric="rung")
            for row in rung_history(df, cell):
                run.log(row)
            summ = {f"best/{p}": v for p, v in best.get(cell, {}).items()}
            for c in comp:
                if c["cell"] == cell:
                    pre = "fresh" if c["metric"] == "objective" else f"fresh_{c['metric']}"
                    summ.update({f"{pre}/diff": c["diff"], f"{pre}/diff_ci95": c["diff_ci95"],
                                 f"{pre}/rel_diff": c["rel_diff"], f"{pre}/verdict": c["verdict"],
                                 f"{pre}/defaults_mean": c["defaults_mean"], f"{pre}/tuned_mean": c["tuned_mean"]})
            run.summary.update(summ)
            run.finish()
        run = _init(wandb, lcfg, mode, out_dir, group, name, {"tune": meta}, _run_id(out_dir, None),
                    lcfg.get("job_type", "tune"))
        run.log({"results": _table(wandb, df.drop(columns=[c for c in df.columns if df[c].dtype == object
                                                            and c not in ("stage", "cell", "machine", "workload",
                                                                          "knobs_from", "label", "policy")])),
                 "comparison": _table(wandb, pd.DataFrame(comp)),
                 **({"transfer": _table(wandb, pd.DataFrame(trans))} if trans else {})})
        images = {f"plots/{os.path.splitext(os.path.basename(p))[0]}": wandb.Image(p) for p in plots if os.path.exists(p)}
        if images:
            run.log(images)
        run.summary.update({"n_runs": int(len(df)), "n_cells": len(meta.get("cells", []))})
        job_dir = os.path.dirname(run.dir)
        run.finish()
    except Exception as e:  # noqa: BLE001
        _warn(f"wandb logging failed: {type(e).__name__}: {e}; results are in {out_dir}")
        _finish_quietly(wandb)
        return None
    return job_dir
