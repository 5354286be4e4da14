"""``python -m autonuma_jax.demo``: one workload on one machine preset under AutoNUMA24 and the
baselines it was measured against (hard_bind, none, inverse_bind), as one CPU batch, without hydra.

By default numa01 on the 2-node 24-CPU machine until every thread is done (about two minutes on
two CPU cores plus the compile). Writes results.csv, summary.json and plots (nmstat per policy, the
locality curves; with matplotlib) to the output folder and prints a summary table.

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

from .config import RunConfig, SimConfig, validate_run
from .errors import ConfigError
from .machine import PRESETS
from .simulate import simulate
from .workloads import BENCHMARKS

POLICIES = ("hard_bind", "autonuma24", "none", "inverse_bind")


def machine_error(name: str) -> str | None:
    """Why --machine NAME cannot run, or None. tiny2 / tiny4 are not presets but hydra machine
    configs (conf/machine/), sized for shrunken workloads the demo does not build (the benchmarks
    at their own size need GiBs per node), so they get a pointer to the command that runs them."""
    if name in PRESETS:
        return None
    hint = (f"; {name} is a test machine of the hydra configs: autonuma-sim experiment=quick machine={name}"
            if name in ("tiny2", "tiny4") else "")
    return f"--machine {name}: not a machine preset (choose from {', '.join(PRESETS)}){hint}"


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be > 0")
        return v
    return parse


def main(argv=None) -> int:
    # the whole docstring but its Usage lines (argparse writes its own) is the help text
    ap = argparse.ArgumentParser(prog="python -m autonuma_jax.demo", description=__doc__.split("\nUsage:")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="numa01", choices=sorted(BENCHMARKS), metavar="WORKLOAD",
                    help=f"benchmark at its own size (default numa01; one of {', '.join(sorted(BENCHMARKS))})")
    ap.add_argument("--machine", default="2node_24cpu",
                    help=f"machine preset (default 2node_24cpu; one of {', '.join(PRESETS)})")
    ap.add_argument("--duration", type=_positive(float), default=400.0,
                    help="simulated seconds at most (default 400; stops early once every thread is done)")
    ap.add_argument("--seeds", type=_positive(int), default=1, help="seeds per policy (default 1)")
    ap.add_argument("--out", default=os.path.join("outputs", "demo"), help="output folder (default outputs/demo)")
    args = ap.parse_args(argv)
    bad = machine_error(args.machine)
    if bad:
        print(f"error: {bad}", file=sys.stderr)
        return 2
    cfgs = [RunConfig(machine=args.machine, workload=args.workload, policy=p, seed=s,
                      sim=SimConfig(duration_s=args.duration, report_interval_ms=1000))
            for p in POLICIES for s in range(args.seeds)]
    try:  # e.g. a workload too big for the machine: one line, before the output folder or a compile
        cfgs = [validate_run(c, i if len(cfgs) > 1 else None) for i, c in enumerate(cfgs)]
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    def progress(b):
        print(f"  simulated {b.reports_done * b.static.report_ticks * b.static.tick_s:7.0f} s "
              f"of {b.static.n_ticks * b.static.tick_s:.0f} s  ({time.time() - t0:5.1f} s wall)", flush=True)

    print(f"simulating {len(cfgs)} configurations: {args.workload} on {args.machine}", flush=True)
    results = simulate(cfgs, reports_per_chunk=20, on_chunk=progress, progress=False)  # its own lines
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
