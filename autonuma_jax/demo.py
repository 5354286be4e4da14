"""``python -m autonuma_jax.demo``: numa01 on the 2-node 24-CPU machine under every baseline and
AutoNUMA24, in one CPU batch; writes results.csv, summary.json and plots to an output folder.

Usage: python -m autonuma_jax.demo [--workload numa01] [--machine 2node_24cpu] [--duration 400]
       [--seeds 1] [--out outputs/demo]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

from .config import RunConfig, SimConfig
from .simulate import simulate

POLICIES = ("hard_bind", "autonuma24", "none", "inverse_bind")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="numa01")
    ap.add_argument("--machine", default="2node_24cpu")
    ap.add_argument("--duration", type=float, default=400.0, help="simulated seconds (stops early when done)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default=os.path.join("outputs", "demo"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    cfgs = [RunConfig(machine=args.machine, workload=args.workload, policy=p, seed=s,
                      sim=SimConfig(duration_s=args.duration, report_interval_ms=1000))
            for p in POLICIES for s in range(args.seeds)]
    t0 = time.time()

    def progress(b):
        print(f"  simulated {b.reports_done * b.static.report_ticks * b.static.tick_s:7.0f} s "
              f"of {b.static.n_ticks * b.static.tick_s:.0f} s  ({time.time() - t0:5.1f} s wall)", flush=True)

    print(f"simulating {len(cfgs)} configurations: {args.workload} on {args.machine}", flush=True)
    results = simulate(cfgs, reports_per_chunk=20, on_chunk=progress)
    rows = [r.summary() for r in results]
    keys = list(rows[0])
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(f"{'policy':14s} {'runtime_s':>10s} {'local_final':>11s} {'converge_s':>10s} {'migrated_MiB':>12s} "
          f"{'overhead_s':>10s}")
    for r in rows:
        print(f"{r['policy']:14s} {r['runtime_s']:10.1f} {r['local_fraction_final']:11.3f} {r['converge_s']:10.1f} "
              f"{r['pages_migrated'] * 4 / 1024:12.0f} {r['overhead_cpu_s']:10.2f}")
    try:
        from . import plots
        for r in results:
            plots.nmstat(r, os.path.join(args.out, f"nmstat_{r.config.policy}_seed{r.config.seed}.png"))
        plots.locality(results, os.path.join(args.out, "locality.png"))
    except ImportError as e:  # matplotlib is an optional (cli) dependency
        print(f"plots skipped: {e}", file=sys.stderr)
    print(f"wrote {args.out} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
