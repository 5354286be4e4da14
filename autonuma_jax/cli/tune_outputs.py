"""What a tuning job leaves in its folder, built from its store (``tune/store.py``) alone.

- ``results.parquet``: one row per simulated run (search rungs and evaluation): identity columns
  (``stage``, ``cell``, ``machine``, ``workload``, ``rung``, ``candidate``, ``knobs_from``,
  ``is_default``, ``seed``, ``budget_s``), the searched knobs under their sysfs paths, every
  summary metric of ``Result.summary``, ``progress``, the projections and ``objective``;
- ``best.yaml``: the best knobs of each cell, with the ``autonuma-sim`` overrides that run them;
- ``comparison.csv``: per cell and metric, the cell's best against the defaults on fresh seeds
  (means, paired difference, 95 % interval, verdict);
- ``transfer.csv``: every cell's best on every cell (gain over the defaults, interval, share of
  the own gain kept);
- ``README.md``: all of it as tables, with the verdicts in words;
- ``plots/search.png`` (objective against the simulated seconds the search spent, per rung),
  ``plots/knobs.png`` (objective against each knob), ``plots/front.png`` (runtime against kernel
  CPU time of the last rung's candidates and the evaluated knob sets, Pareto front);
- wandb: one run per cell (history per rung, best knobs and the fresh-seed verdict in its
  summary) and a job run with the tables and plots, grouped by the tuning job.
"""
from __future__ import annotations

import logging
import math
import os

import numpy as np
import pandas as pd

from ..tune import fresh_seed_table, transfer_table
from .results import write_atomic, write_text_atomic

log = logging.getLogger("autonuma_jax.cli")

ID_COLUMNS = ("stage", "cell", "machine", "workload", "rung", "candidate", "knobs_from", "is_default", "seed",
              "budget_s")


def records_frame(records: list[dict], dims: list[str]) -> pd.DataFrame:
    rows = []
    for r in records:
        row = {k: r.get(k) for k in ID_COLUMNS}
        for p in dims:
            row[p] = r["knobs"].get(p)
        row.update({k: v for k, v in r.items() if k not in ID_COLUMNS and k != "knobs"})
        rows.append(row)
    # candidate is NaN on evaluation rows (float); rung and seed stay integers
    return pd.DataFrame(rows)


def best_knobs(records: list[dict], cells: list[str]) -> dict[str, dict]:
    """The knob set each cell's evaluation ran as its own best."""
    out = {}
    for c in cells:
        for r in records:
            if r["stage"] == "evaluate" and r["cell"] == c and r["knobs_from"] == c:
                out[c] = dict(r["knobs"])
                break
    return out


def _fmt(x: float, nd: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}g}"


def _pct(x: float, h: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:+.1f} %" + ("" if h is None or not math.isfinite(h) else f" ± {100 * h:.1f}")


def verdict_lines(comp: list[dict], objective: str) -> list[str]:
    out = []
    for c in comp:
        if c["metric"] != "objective":
            continue
        gain = -c["rel_diff"] if math.isfinite(c["rel_diff"]) else float("nan")
        ci = c["rel_diff_ci95"]
        if c["verdict"] == "better":
            out.append(f"{c['cell']}: the tuned knobs beat the defaults by {_pct(gain, ci)} of the {objective} "
                       f"(95 % CI, {c['seeds']} fresh seeds)")
        elif c["verdict"] == "within noise":
            out.append(f"{c['cell']}: the defaults are within noise of the best found ({_pct(gain, ci)} of the "
                       f"{objective}, 95 % CI includes 0, {c['seeds']} fresh seeds)")
        elif c["verdict"] == "worse":
            out.append(f"{c['cell']}: the best of the search is WORSE than the defaults on fresh seeds "
                       f"({_pct(gain, ci)} of the {objective}): the search chased noise")
        else:
            out.append(f"{c['cell']}: {c['verdict']}")
    return out


def readme(meta: dict, df: pd.DataFrame, best: dict, comp: list[dict], trans: list[dict], files: list[str]) -> str:
    obj = meta.get("objective", "runtime")
    L = [f"# Tuning {meta.get('policy')}: {obj}", ""]
    L.append(f"Cells: {', '.join(meta.get('cells', []))}. Successive halving: {meta.get('candidates')} candidates "
             f"(the kernel defaults included), keep 1/{meta.get('eta')} per rung; rungs "
             + ", ".join(f"{r['fraction']:g} of the run x {r['seeds']} seed(s)" for r in meta.get("rungs", []))
             + f"; evaluation on fresh seeds {meta.get('fresh_seeds')} (never used by the search).")
    L += ["", "| knob | range | scale | default |", "|---|---|---|---:|"]
    for d in meta.get("dims", []):
        L.append(f"| `{d['path']}` | [{d['lo']:g}, {d['hi']:g}] | {'log' if d['log'] else 'linear'} | "
                 f"{meta.get('defaults', {}).get(d['path'])} |")
    L += ["", "## Verdicts", ""] + [f"- {v}" for v in verdict_lines(comp, obj)]
    L += ["", "## Best knobs per cell", ""]
    for c, k in best.items():
        L.append(f"- **{c}**: " + ", ".join(f"`{p.rsplit('.', 1)[-1]}={v}`" for p, v in k.items()))
    L += ["", "## Fresh-seed comparison (best - defaults; paired by seed, 95 % CI)", "",
          "| cell | metric | defaults | tuned | difference | relative | verdict |", "|---|---|---:|---:|---:|---:|---|"]
    for c in comp:
        L.append(f"| {c['cell']} | {c['metric']} | {_fmt(c['defaults_mean'])} ± {_fmt(c['defaults_ci95'], 2)} | "
                 f"{_fmt(c['tuned_mean'])} ± {_fmt(c['tuned_ci95'], 2)} | {_fmt(c['diff'])} ± {_fmt(c['diff_ci95'], 2)} | "
                 f"{_pct(c['rel_diff'], c['rel_diff_ci95'])} | {c['verdict']} |")
    if len(meta.get("cells", [])) > 1 and trans:
        cells = meta["cells"]
        L += ["", f"## Transfer: gain in {obj} over the defaults (rows: tuned on; columns: evaluated on)", "",
              "| tuned on | " + " | ".join(cells) + " |", "|---|" + "---:|" * len(cells)]
        by = {(t["tuned_on"], t["evaluated_on"]): t for t in trans}
        for src in cells:
            cellv = []
            for dst in cells:
                t = by.get((src, dst))
                if t is None:
                    cellv.append("")
                    continue
                kept = "" if not math.isfinite(t["kept"]) else f" (keeps {100 * t['kept']:.0f} %)"
                cellv.append(_pct(t["gain"], t["gain_ci95"]) + kept)
            L.append(f"| {src} | " + " | ".join(cellv) + " |")
        L += ["", "A gain is the share of the defaults' mean saved on the evaluated cell (positive: better); "
              "\"keeps\" is that gain over the evaluated cell's own tuned gain, shown when the own gain is significant."]
    n_search = int((df["stage"] == "search").sum()) if len(df) else 0
    sim_s = float(df["sim_s"].sum()) if len(df) else 0.0
    L += ["", f"{len(df)} simulated runs ({n_search} in the search), {sim_s:.0f} simulated configuration-seconds.",
          "", "Files: " + ", ".join(f"`{f}`" for f in files), ""]
    return "\n".join(L)


def write_outputs(out_dir: str, store, cfg: dict, group: str | None = None, plots: bool = True) -> dict:
    meta = store.meta
    cells = list(meta.get("cells", []))
    dims = [d["path"] for d in meta.get("dims", [])]
    df = records_frame(store.records, dims)
    files = [write_atomic(df, os.path.join(out_dir, "results.parquet"), True)]
    best = best_knobs(store.records, cells)
    comp = fresh_seed_table(store.records, cells)
    trans = transfer_table(store.records, cells)
    pd.DataFrame(comp).to_csv(os.path.join(out_dir, "comparison.csv"), index=False)
    pd.DataFrame(trans).to_csv(os.path.join(out_dir, "transfer.csv"), index=False)
    files += [os.path.join(out_dir, "comparison.csv"), os.path.join(out_dir, "transfer.csv")]
    import yaml
    best_doc = {c: {"knobs": k, "overrides": " ".join(f"policy.{p}={v}" for p, v in k.items())} for c, k in best.items()}
    files.append(write_text_atomic(yaml.safe_dump(best_doc, sort_keys=False), os.path.join(out_dir, "best.yaml")))
    plot_files: list[str] = []
    if plots:
        try:
            from .tune_plots import plot_all
            plot_files = plot_all(df, meta, os.path.join(out_dir, "plots"))
        except Exception as e:  # noqa: BLE001  (plots never cost the results)
            log.warning(f"plots failed: {type(e).__name__}: {e}")
    files += plot_files
    names = [os.path.relpath(f, out_dir) for f in files] + ["README.md", "store.json"]
    files.append(write_text_atomic(readme(meta, df, best, comp, trans, names), os.path.join(out_dir, "README.md")))
    verdicts = verdict_lines(comp, meta.get("objective", "runtime"))
    from .tune_wandb import log_tuning
    wandb_dir = log_tuning(cfg.get("logger") or {}, out_dir, group, str(cfg.get("name", "tune")), meta, df, best,
                           comp, trans, plot_files)
    return {"files": files, "verdicts": verdicts, "wandb_dir": wandb_dir, "best": best}


def rung_history(df: pd.DataFrame, cell: str) -> list[dict]:
    """Per search rung of a cell: candidates, budget, best and median mean objective."""
    out = []
    sub = df[(df["stage"] == "search") & (df["cell"] == cell)]
    for r, g in sub.groupby("rung", sort=True):
        means = g.groupby("candidate")["objective"].mean()
        out.append({"rung": int(r), "candidates": int(len(means)), "budget_s": float(g["budget_s"].iloc[0]),
                    "best_objective": float(np.nanmin(means)), "median_objective": float(np.nanmedian(means))})
    return out


def main(argv=None) -> None:
    """``python -m autonuma_jax.cli.tune_outputs <job folder>``: rebuild a tuning job's tables, README
    and plots from its store.json (no simulation, no wandb)."""
    import sys
    from ..tune import Store
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not os.path.exists(os.path.join(args[0], "store.json")):
        print("usage: python -m autonuma_jax.cli.tune_outputs <tuning job folder with store.json>", file=sys.stderr)
        sys.exit(2)
    info = write_outputs(args[0], Store(os.path.join(args[0], "store.json")), {"logger": {"mode": "disabled"}})
    for line in info["verdicts"]:
        print(line)


if __name__ == "__main__":
    main()
