"""Merge the results of a run or multirun folder and draw its plots (no hydra needed).

Usage: python -m autonuma_jax.report DIR [--out DIR/report] [--metric runtime_s]
       [--baseline auto|hard_bind|default|best] [--max-nmstat 6] [--no-timeseries]
       (console script: autonuma-sim-report)

DIR is searched recursively for ``results.parquet`` (one per job, written by ``autonuma-sim``).
Writes into ``--out``:
- ``results_merged.parquet`` / ``.csv``: every configuration of every job, with ``job_dir``;
- ``summary.csv``: per parameter combination (every identity column that varies, seeds pooled):
  mean and spread of the summary metrics;
- ``convergence.png``: local fraction, migrations, exchanges and progress against simulated time,
  mean per combination with the min-max band over seeds;
- ``nmstat_*.png``: per-node memory of each process over time for a few configurations;
- ``heatmap_<metric>_<x>__<y>.png``: the runtime ratio over every pair of swept numeric knobs
  (other swept numbers averaged), one panel per machine / workload / policy. The ratio divides by
  the hard_bind runtime of the same machine and workload when the folder has one, else by the
  default-knob cell, else by the best cell (``--baseline``).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from itertools import combinations

import numpy as np

from .plots import pyplot

RESULTS = "results.parquet"
TIMESERIES = "timeseries.parquet"
REPORT_DIR = "report"

# identity (what was simulated) vs metrics (what came out)
NAME_COLUMNS = ("machine", "workload", "variant", "policy")
NON_METRIC = {"config_index", "combo", "combo_label", "label", "seed", "n_tasks", "reports", "job_dir", "group"}


def _pd():
    import pandas as pd
    return pd


def knob_columns(df) -> list[str]:
    from .knobs import Knobs, flatten
    return [c for c in flatten(Knobs()) if c in df.columns]


def identity_columns(df) -> list[str]:
    """Columns that say what was simulated (everything but the seed and the bookkeeping)."""
    cols = [c for c in NAME_COLUMNS if c in df.columns]
    cols += [c for c in df.columns if c.startswith(("machine.", "workload.", "sim."))]
    cols += knob_columns(df)
    return cols


def metric_columns(df) -> list[str]:
    ident = set(identity_columns(df))
    out = []
    for c in df.columns:
        if c in ident or c in NON_METRIC or c.startswith("job."):
            continue
        if df[c].dtype == bool or np.issubdtype(df[c].dtype, np.number):
            out.append(c)
    return out


def _nunique(s) -> int:
    return s.astype(str).nunique(dropna=False)


def varying(df, cols) -> list[str]:
    return [c for c in cols if c in df.columns and _nunique(df[c]) > 1]


def short_names(cols) -> dict:
    lasts = [c.split(".")[-1] for c in cols]
    return {c: (c.split(".")[-1] if lasts.count(c.split(".")[-1]) == 1 else c) for c in cols}


def _val(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.6g}"
    return str(v)


def label_columns(df) -> list[str]:
    """The identity columns that name a combination (derived machine numbers and a variant implied
    by the policy left out)."""
    var = varying(df, [c for c in NAME_COLUMNS if c in df.columns]
                  + [c for c in df.columns if c.startswith(("workload.", "sim."))] + knob_columns(df))
    if "variant" in var and "policy" in df.columns and (df.groupby("policy")["variant"].nunique() <= 1).all():
        var.remove("variant")
    if "machine" not in var:  # a preset with field overrides keeps its name
        var += varying(df, [c for c in df.columns if c.startswith("machine.")])
    return var


def add_groups(df):
    """Adds ``group``: one label per parameter combination (the varying identity columns; the
    policy name when nothing varies). Seeds of one combination share a group."""
    df = df.copy()
    var = label_columns(df)
    names = short_names(var)
    if not var:
        df["group"] = df["policy"].astype(str) if "policy" in df.columns else "all"
    else:
        df["group"] = [",".join(f"{names[c]}={_val(v)}" for c, v in zip(var, vals))
                       for vals in df[var].itertuples(index=False, name=None)]
    return df


# ------------------------------------------------------------------------------------------
# loading

def find_results(root: str) -> list[str]:
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in (REPORT_DIR, "wandb", ".submitit", ".hydra"))
        if RESULTS in files:
            out.append(os.path.join(d, RESULTS))
    return sorted(out)


def load(root: str, timeseries: bool = True):
    """(results, timeseries or None) of every job under ``root``; ``job_dir`` tells them apart."""
    pd = _pd()
    paths = find_results(root)
    if not paths:
        raise FileNotFoundError(f"no {RESULTS} under {root}")
    res, ts = [], []
    for p in paths:
        d = os.path.dirname(p)
        rel = os.path.relpath(d, root)
        r = pd.read_parquet(p)
        r.insert(0, "job_dir", rel)
        res.append(r)
        tp = os.path.join(d, TIMESERIES)
        if timeseries and os.path.exists(tp):
            t = pd.read_parquet(tp)
            t.insert(0, "job_dir", rel)
            ts.append(t)
    results = pd.concat(res, ignore_index=True, sort=False)
    series = pd.concat(ts, ignore_index=True, sort=False) if ts else None
    return results, series


# ------------------------------------------------------------------------------------------
# tables

def summary_table(results, metrics=("runtime_s", "local_fraction_final", "converge_s", "pages_migrated",
                                    "exchanges", "overhead_cpu_s")):
    pd = _pd()
    df = results if "group" in results.columns else add_groups(results)
    metrics = [m for m in metrics if m in df.columns]
    g = df.groupby("group", sort=False)
    out = pd.DataFrame({"seeds": g.size()})
    for m in metrics:
        col = g[m]
        out[f"{m}_mean"] = col.mean()
        out[f"{m}_std"] = col.std(ddof=0)
        out[f"{m}_min"] = col.min()
        out[f"{m}_max"] = col.max()
    return out.reset_index()


def add_runtime_ratio(results, metric: str = "runtime_s", baseline: str = "auto"):
    """``<metric>_ratio``: the metric over a baseline of the same machine and workload, and the
    name of that baseline in ``ratio_baseline``."""
    from .knobs import Knobs, flatten
    df = results.copy()
    keys = [c for c in ("machine", "workload") if c in df.columns]
    defaults = flatten(Knobs())
    knobs = varying(df, knob_columns(df))
    ratio = np.full(len(df), np.nan)
    base_name = np.array([""] * len(df), dtype=object)
    groups = df.groupby(keys, sort=False).groups if keys else {None: df.index}
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


# ------------------------------------------------------------------------------------------
# plots

CURVES = (("local_fraction", "local fraction of accesses", None),
          ("pages_migrated", "MiB migrated per interval", 4 / 1024),
          ("exchanges", "task exchanges per interval", None),
          ("progress", "threads done (fraction)", None))


def convergence_plot(results, series, path, max_groups: int = 12, title: str | None = None):
    """Mean over seeds per combination with the min-max band, against simulated time."""
    plt = pyplot()
    df = results if "group" in results.columns else add_groups(results)
    key = ["job_dir", "config_index"] if "job_dir" in series.columns and "job_dir" in df.columns else ["config_index"]
    ts = series.merge(df[key + ["group"]], on=key, how="inner")
    groups = list(dict.fromkeys(df["group"]))
    shown = groups[:max_groups]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharex=True)
    cmap = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")
    for (col, ylabel, scale), ax in zip(CURVES, axes.flat):
        if col not in ts.columns:
            ax.set_visible(False)
            continue
        for gi, g in enumerate(shown):
            sub = ts[ts["group"] == g]
            agg = sub.groupby("sim_time_s")[col].agg(["mean", "min", "max"])
            x = agg.index.to_numpy(float)
            s = scale or 1.0
            ax.plot(x, agg["mean"] * s, color=cmap(gi % cmap.N), label=g, lw=1.3)
            if len(sub[key].drop_duplicates()) > 1:  # several seeds (or jobs) in this combination
                ax.fill_between(x, agg["min"] * s, agg["max"] * s, color=cmap(gi % cmap.N), alpha=0.18, lw=0)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if col in ("local_fraction", "progress"):
            ax.set_ylim(-0.02, 1.02)
    for ax in axes[-1]:
        ax.set_xlabel("simulated time [s]")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    extra = f" (first {max_groups} of {len(groups)})" if len(groups) > max_groups else ""
    longest = max([len(lb) for lb in labels] or [1])
    ncol = max(1, min(4, len(labels), 130 // longest))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7)
    fig.suptitle(title or f"convergence: mean over seeds, band = min..max{extra}")
    fig.tight_layout(rect=(0, 0.02 + 0.025 * math.ceil(len(labels) / ncol), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def nmstat_plot(series_one, path, title: str = ""):
    """Per-node memory of each process over time for one configuration (the nmstat view, spec §9)."""
    plt = pyplot()
    cols = [c for c in series_one.columns if c.startswith("mm") and c.endswith(".pages")
            and series_one[c].notna().any()]
    t = series_one["sim_time_s"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = ["-", "--", ":", "-."]
    for c in cols:
        mm, node = c.split(".")[0][2:], c.split(".")[1][4:]
        ax.plot(t, series_one[c].to_numpy(float) * 4 / 1024, styles[int(mm) % 4], label=f"process {mm} node {node}")
    ax.set_xlabel("simulated time [s]")
    ax.set_ylabel("memory [MiB]")
    ax.set_title(title or "per-node memory of each process")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def nmstat_plots(results, series, out_dir, max_plots: int = 4) -> list[str]:
    """One nmstat plot for the first seed of the first ``max_plots`` combinations."""
    df = results if "group" in results.columns else add_groups(results)
    first = df.drop_duplicates("group").head(max_plots)
    paths = []
    for _, row in first.iterrows():
        sel = series["config_index"] == row["config_index"]
        if "job_dir" in series.columns and "job_dir" in row.index:
            sel &= series["job_dir"] == row["job_dir"]
        sub = series[sel].sort_values("sim_time_s")
        if sub.empty:
            continue
        name = _safe(f"{row.get('job_dir', '')}_{row['config_index']}".strip("_."))
        p = os.path.join(out_dir, f"nmstat_{name}.png")
        nmstat_plot(sub, p, title=f"per-node memory: {row.get('label', '')} [{row['group']}]")
        paths.append(p)
    return paths


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)[:80]


def heatmaps(results, out_dir, metric: str = "runtime_s", baseline: str = "auto", max_pairs: int = 6) -> list[str]:
    """Heatmaps of ``<metric>_ratio`` over every pair of swept numeric knobs / sim settings."""
    plt = pyplot()
    df = results
    if metric not in df.columns:
        return []
    if not np.isfinite(df[metric].to_numpy(float)).any():
        fallback = "local_fraction_final"
        print(f"report: every {metric} is NaN (runs did not finish); heatmaps show {fallback} instead",
              file=sys.stderr)
        metric, use_ratio = fallback, False
    else:
        use_ratio = True
    if use_ratio:
        df = add_runtime_ratio(df, metric, baseline)
        value, vlabel = f"{metric}_ratio", f"{metric} / baseline"
    else:
        value, vlabel = metric, metric
    numeric = [c for c in varying(df, knob_columns(df) + [c for c in df.columns if c.startswith(("sim.", "workload."))])
               if np.issubdtype(df[c].dtype, np.number)]
    facets = varying(df, [c for c in NAME_COLUMNS if c in df.columns])
    if use_ratio and "policy" in facets:
        # a baseline policy is a reference, not a panel of its own, when knobs are swept
        df = df[df["policy"] != "hard_bind"] if (df["policy"] != "hard_bind").any() else df
        facets = varying(df, facets)
    paths = []
    for x, y in list(combinations(numeric, 2))[:max_pairs]:
        panels = list(df.groupby(facets, sort=False)) if facets else [((), df)]
        n = len(panels)
        ncol = min(3, n)
        nrow = math.ceil(n / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 4.2 * nrow), squeeze=False)
        for ax, (key, sub) in zip(axes.flat, panels):
            piv = sub.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
            im = ax.imshow(piv.to_numpy(float), origin="lower", aspect="auto", cmap="viridis_r")
            ax.set_xticks(range(len(piv.columns)), [_val(v) for v in piv.columns], rotation=45, fontsize=7)
            ax.set_yticks(range(len(piv.index)), [_val(v) for v in piv.index], fontsize=7)
            ax.set_xlabel(x, fontsize=8)
            ax.set_ylabel(y, fontsize=8)
            arr = piv.to_numpy(float)
            lo, hi = (np.nanmin(arr), np.nanmax(arr)) if np.isfinite(arr).any() else (0.0, 1.0)
            for (i, j), v in np.ndenumerate(arr):
                dark = v == v and hi > lo and (v - lo) / (hi - lo) > 0.5  # viridis_r: high values are dark
                ax.text(j, i, "nan" if v != v else f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="w" if dark else "k")
            key = key if isinstance(key, tuple) else (key,)
            base = ""
            if use_ratio and "ratio_baseline" in sub.columns:
                base = f" (baseline: {', '.join(sorted(set(sub['ratio_baseline']) - {''}))})"
            ax.set_title(", ".join(f"{f}={k}" for f, k in zip(facets, key)) + base, fontsize=8)
            fig.colorbar(im, ax=ax, label=vlabel)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.suptitle(f"{vlabel}\n(mean over seeds and other swept parameters)", fontsize=9)
        fig.tight_layout()
        p = os.path.join(out_dir, f"heatmap_{value}_{_safe(x)}__{_safe(y)}.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def plot_all(results, series, out_dir, max_nmstat: int = 4, metric: str = "runtime_s",
             baseline: str = "auto") -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    df = add_groups(results)
    paths = []
    if series is not None and len(series):
        paths.append(convergence_plot(df, series, os.path.join(out_dir, "convergence.png")))
        paths += nmstat_plots(df, series, out_dir, max_nmstat)
    paths += heatmaps(df, out_dir, metric=metric, baseline=baseline)
    return paths


# ------------------------------------------------------------------------------------------

def make_report(root: str, out: str | None = None, timeseries: bool = True, max_nmstat: int = 6,
                metric: str = "runtime_s", baseline: str = "auto", quiet: bool = False) -> dict:
    out = out or os.path.join(root, REPORT_DIR)
    os.makedirs(out, exist_ok=True)
    results, series = load(root, timeseries=timeseries)
    results = add_groups(results)
    if metric in results.columns and np.isfinite(results[metric].to_numpy(float)).any():
        results = add_runtime_ratio(results, metric, baseline)
    _write(results, os.path.join(out, "results_merged.parquet"))
    results.to_csv(os.path.join(out, "results_merged.csv"), index=False)
    summ = summary_table(results)
    summ.to_csv(os.path.join(out, "summary.csv"), index=False)
    plots = plot_all(results, series, out, max_nmstat=max_nmstat, metric=metric, baseline=baseline)
    if not quiet:
        jobs = results["job_dir"].nunique()
        print(f"merged {len(results)} configurations from {jobs} job(s) under {root}")
        cols = [c for c in ("group", "seeds", "runtime_s_mean", "local_fraction_final_mean", "converge_s_mean",
                            "pages_migrated_mean") if c in summ.columns]
        with _pd().option_context("display.width", 160, "display.max_colwidth", 60, "display.max_rows", 60):
            print(summ[cols].to_string(index=False))
        print(f"wrote {out}: results_merged.parquet, results_merged.csv, summary.csv, {len(plots)} plot(s)")
    return {"out": out, "results": results, "summary": summ, "plots": plots}


def _write(df, path):
    tmp = path + f".tmp{os.getpid()}"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="autonuma-sim-report", description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="a run or multirun output folder (searched recursively for results.parquet)")
    ap.add_argument("--out", default=None, help="output folder (default: DIR/report)")
    ap.add_argument("--metric", default="runtime_s", help="metric of the heatmaps (default runtime_s)")
    ap.add_argument("--baseline", default="auto", choices=["auto", "hard_bind", "default", "best"])
    ap.add_argument("--max-nmstat", type=int, default=6)
    ap.add_argument("--no-timeseries", action="store_true", help="skip timeseries (no convergence/nmstat plots)")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.dir):
        print(f"error: {args.dir} is not a folder", file=sys.stderr)
        return 2
    try:
        make_report(args.dir, args.out, timeseries=not args.no_timeseries, max_nmstat=args.max_nmstat,
                    metric=args.metric, baseline=args.baseline)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
