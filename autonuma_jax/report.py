"""Merge the results of run and multirun folders and draw their plots (no hydra needed).

Usage: autonuma-sim-report DIR [DIR ...] [--out OUT] [--metric runtime_s]
       [--baseline auto|hard_bind|default|best] [--max-nmstat 6] [--no-timeseries]
       (also ``python -m autonuma_jax.report``)

Each DIR is searched recursively for ``results.parquet`` (one per job, written by ``autonuma-sim``).
Writes into ``--out`` (default: DIR/report for one folder, ./report for several):
- ``results_merged.parquet`` / ``.csv``: every configuration of every job, with ``job_dir`` and
  ``group`` (the parameter combination: seeds pooled, never machines or workloads);
- ``timeseries_merged.parquet``: every report interval of every job, with ``job_dir`` and ``group``;
- ``summary.csv``: per machine, workload and combination: seeds, and per metric the mean, the 95 %
  confidence interval of the mean (Student's t over seeds), sd, min and max;
- ``convergence.png``: local fraction, MiB migrated, hinting faults, exchanges, kernel CPU and
  threads done against simulated time, mean per combination with the min-max band over seeds;
- ``knob_<knob>.png`` (one swept knob): each main metric against the knob with its CI;
- ``heatmap_<metric>_<x>__<y>.png`` (two or more swept knobs): runtime as a ratio to the cell's
  baseline (hard_bind of the same machine and workload when present, else the default knobs, else
  the best cell: ``--baseline``); any other ``--metric`` in its own unit;
- ``tradeoff.png``: runtime against kernel CPU overhead per combination, Pareto front marked;
- ``nmstat_*.png``: per-node memory of each process over time for a few configurations.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .analysis.columns import add_groups, metric_columns
from .analysis.convergence import convergence_plot, nmstat_plots
from .analysis.knob_plots import heatmaps, one_knob_plots
from .analysis.load import load
from .analysis.tables import add_runtime_ratio, summary_table
from .workloads.perf_figures import FIGURES as PERF_FIGURES
from .analysis.tradeoff import tradeoff_plot

REPORT_DIR = "report"
PRINT_COLUMNS = ("machine", "workload", "group", "seeds", "runtime_s_mean", "runtime_s_ci95", "local_fraction_final_mean",
                 "converge_s_mean", "converged_mean", "pages_migrated_mean", "overhead_cpu_s_mean")


def _pd():
    import pandas as pd
    return pd


class ReportError(ValueError):
    """A report that cannot be made as asked (unknown metric, no results): one line, exit 2."""


def check_metric(results, metric: str) -> None:
    allowed = metric_columns(results)
    if metric not in allowed:
        raise ReportError(f"--metric={metric!r}: not a metric of these results; one of {', '.join(sorted(allowed))}")


def plot_all(results, series, out_dir, max_nmstat: int = 4, metric: str = "runtime_s",
             baseline: str = "auto") -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    df = results if "group" in results.columns else add_groups(results)
    paths = []
    if series is not None and len(series):
        paths.append(convergence_plot(df, series, os.path.join(out_dir, "convergence.png")))
        paths += nmstat_plots(df, series, out_dir, max_nmstat)
    paths += one_knob_plots(df, out_dir)
    paths += heatmaps(df, out_dir, metric=metric, baseline=baseline)
    p = tradeoff_plot(df, os.path.join(out_dir, "tradeoff.png"))
    if p:
        paths.append(p)
    return paths


def make_report(roots, out: str | None = None, timeseries: bool = True, max_nmstat: int = 6,
                metric: str = "runtime_s", baseline: str = "auto", quiet: bool = False) -> dict:
    roots = [roots] if isinstance(roots, str) else list(roots)
    out = out or (os.path.join(roots[0], REPORT_DIR) if len(roots) == 1 else REPORT_DIR)
    results, series = load(roots, timeseries=timeseries)
    check_metric(results, metric)
    os.makedirs(out, exist_ok=True)
    results = add_groups(results)
    if metric == "runtime_s" and np.isfinite(results[metric].to_numpy(float)).any():
        results = add_runtime_ratio(results, metric, baseline)
    _write(results, os.path.join(out, "results_merged.parquet"))
    results.to_csv(os.path.join(out, "results_merged.csv"), index=False)
    if series is not None:
        key = ["job_dir", "config_index"]
        merged = series.merge(results[key + ["group"]], on=key, how="left")
        _write(merged, os.path.join(out, "timeseries_merged.parquet"))
    summ = summary_table(results)
    summ.to_csv(os.path.join(out, "summary.csv"), index=False)
    from .vmstat import KERNEL_COUNTERS
    kc = [c for c in KERNEL_COUNTERS if c in results.columns]
    counters = summary_table(results, metrics=kc) if kc else None
    if counters is not None:
        counters.to_csv(os.path.join(out, "counters.csv"), index=False)
    pf = [c for c in PERF_FIGURES if c in results.columns and results[c].notna().any()]
    perf = summary_table(results[results["perf_runtime_max_s"].notna()], metrics=pf) if pf else None
    if perf is not None:
        perf.to_csv(os.path.join(out, "perf_bench_numa.csv"), index=False)
    plots = plot_all(results, series, out, max_nmstat=max_nmstat, metric=metric, baseline=baseline)
    if not quiet:
        jobs = results["job_dir"].nunique()
        print(f"merged {len(results)} configurations from {jobs} job(s) under {', '.join(roots)}")
        cols = [c for c in PRINT_COLUMNS if c in summ.columns and (c not in ("machine", "workload")
                                                                    or summ[c].nunique() > 1)]
        with _pd().option_context("display.width", 200, "display.max_colwidth", 60, "display.max_rows", 80,
                                  "display.float_format", "{:.4g}".format):
            print(summ[cols].to_string(index=False))
        if counters is not None:
            show = ["group"] + [f"{c}_mean" for c in ("numa_hint_faults", "mmtests_hint_local_pct", "numa_pages_migrated",
                                                     "numa_pte_updates", "autonuma.knuma_scand.full_scans",
                                                     "autonuma.knuma_migrated.pages_migrated", "numa_miss", "numa_other")
                                if f"{c}_mean" in counters.columns]
            with _pd().option_context("display.width", 200, "display.max_rows", 80, "display.float_format", "{:.4g}".format):
                print("kernel counters (means; NaN: the policy's kernel had no such counter):")
                print(counters[show].rename(columns=lambda c: c[:-5] if c.endswith("_mean") else c).to_string(index=False))
        if perf is not None:
            show = ["group"] + [f"{c}_mean" for c in ("perf_converged", "perf_convergence_latency_s", "perf_thread_speed_gbs",
                                                     "perf_total_speed_gbs", "perf_runtime_max_s",
                                                     "perf_spread_runtime_pct") if f"{c}_mean" in perf.columns]
            with _pd().option_context("display.width", 200, "display.max_rows", 80, "display.float_format", "{:.4g}".format):
                print("perf bench numa (means; latency NaN: did not converge):")
                print(perf[show].rename(columns=lambda c: c[:-5] if c.endswith("_mean") else c).to_string(index=False))
        if "machine.calibration" in results.columns:
            cal = results.drop_duplicates("machine")[["machine", "machine.calibration"]]
            for name, c in cal.itertuples(index=False):
                if isinstance(c, str) and c != "calibrated":
                    print(f"note: machine {name!r} is {c} (absolute times borrow that physics)")
        print(f"wrote {out}: results_merged.parquet, results_merged.csv, summary.csv{', counters.csv' if counters is not None else ''}{', perf_bench_numa.csv' if perf is not None else ''}, {len(plots)} plot(s)")
    return {"out": out, "results": results, "summary": summ, "plots": plots}


def _write(df, path):
    tmp = path + f".tmp{os.getpid()}"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="autonuma-sim-report",
                                 description="Merge the results of run and multirun folders and draw their plots.")
    ap.add_argument("dirs", nargs="+", metavar="DIR",
                    help="run or multirun output folders (each searched recursively for results.parquet)")
    ap.add_argument("--out", default=None, help="output folder (default: DIR/report, or ./report for several DIRs)")
    ap.add_argument("--metric", default="runtime_s", help="metric of the heatmaps (default runtime_s)")
    ap.add_argument("--baseline", default="auto", choices=["auto", "hard_bind", "default", "best"],
                    help="what runtime ratios divide by (default auto: hard_bind, else default knobs, else best)")
    ap.add_argument("--max-nmstat", type=int, default=6, help="nmstat plots drawn (default 6)")
    ap.add_argument("--no-timeseries", action="store_true", help="skip timeseries (no convergence/nmstat plots)")
    args = ap.parse_args(argv)
    for d in args.dirs:
        if not os.path.isdir(d):
            print(f"error: {d} is not a folder", file=sys.stderr)
            return 2
    try:
        make_report(args.dirs, args.out, timeseries=not args.no_timeseries, max_nmstat=args.max_nmstat,
                    metric=args.metric, baseline=args.baseline)
    except (FileNotFoundError, ReportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
