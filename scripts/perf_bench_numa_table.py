"""Markdown tables of perf bench numa results (docs/perf_bench_numa.md): one row per case, one
column per policy. Convergence cases: "secs latency to NUMA-converge" (or "no": did not converge
in the window) and GB/sec/thread; bandwidth cases: GB/sec/thread and GB/sec total.

Usage: python scripts/perf_bench_numa_table.py DIR [DIR ...] [--csv OUT.csv]
(DIRs: run or multirun folders; every results.parquet under them is read, oldest first: a
configuration found again in a later file replaces the earlier one)."""
from __future__ import annotations

import argparse
import glob
import os
import sys

import pandas as pd

POLICIES = ("hard_bind", "autonuma24", "balancenuma", "numa_balancing", "sched_numa", "numa_core", "none",
            "inverse_bind")


def load(dirs):
    # oldest first: a configuration run again later (a rerun of some policies) replaces its first run
    files = sorted((f for d in dirs for f in glob.glob(os.path.join(d, "**", "results.parquet"), recursive=True)),
                   key=os.path.getmtime)
    if not files:
        sys.exit(f"error: no results.parquet under {', '.join(dirs)}")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    df = df[df["perf_runtime_max_s"].notna()].copy()
    df["case"] = df["label"].str.split("/").str[1].str.replace("perf_bench_numa.", "", regex=False)
    return df.drop_duplicates(["machine", "case", "policy", "seed"], keep="last")


def cell(sub, conv: bool) -> str:
    if sub.empty:
        return ""
    r = sub.iloc[0]
    speed = f"{r['perf_thread_speed_gbs']:.2f}"
    flag = " (cut)" if r["perf_cut_short"] else ""
    if conv:
        lat = f"{r['perf_convergence_latency_s']:.0f} s" if r["perf_converged"] else "no"
        return f"{lat} / {speed}{flag}"
    return f"{speed} / {r['perf_total_speed_gbs']:.1f}{flag}"


def table(df, conv: bool) -> str:
    cases = [c for c in dict.fromkeys(df["case"]) if c.endswith("convergence") == conv]
    pols = [p for p in POLICIES if p in set(df["policy"])]
    lines = ["| case | " + " | ".join(pols) + " |", "|---|" + "---|" * len(pols)]
    for c in cases:
        sub = df[df["case"] == c]
        lines.append(f"| {c} | " + " | ".join(cell(sub[sub["policy"] == p], conv) for p in pols) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--csv", default=None, help="also write the rows read (case, policy, perf_* columns)")
    a = ap.parse_args(argv)
    df = load(a.dirs)
    if a.csv:
        cols = ["case", "policy", "seed", "machine"] + [c for c in df.columns if c.startswith("perf_")] + [
            "local_fraction_final", "numa_pages_migrated", "autonuma.knuma_migrated.pages_migrated"]
        df[[c for c in cols if c in df.columns]].to_csv(a.csv, index=False)
    for conv in (True, False):
        if (df["case"].str.endswith("convergence") == conv).any():
            print(("Convergence cases: latency to NUMA-converge / GB/sec/thread" if conv else
                   "Bandwidth cases: GB/sec/thread / GB/sec total") + "\n")
            print(table(df, conv) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
