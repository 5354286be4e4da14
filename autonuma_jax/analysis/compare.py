"""Compare two sets of results metric by metric: the difference of the means over seeds with its
confidence interval (Welch), per cell, and a verdict line a reader can quote.

    autonuma-sim-compare A_DIR B_DIR                          # two result folders
    autonuma-sim-compare DIR --a policy=autonuma24 --b policy=numa_balancing   # two groups of one
    autonuma-sim-compare A B --metric converge_s --metrics runtime_s,overhead_cpu_s --level 0.9

Configurations are paired by *cell*: machine, workload, and every other identity column that
takes the same values on both sides (a knob swept on both sides is matched value by value); the
columns whose values differ between A and B are what is compared, and the header names them.
Within a cell every seed of A is one sample and every seed of B another (unpaired: seeds of
different policies do not share their random draws). "B is 12 +- 3 % faster" means mean(B) is
12 % below mean(A), and the 95 % interval of that difference is 9-15 %; an interval that contains
zero is "no significant difference". Writes ``compare.csv`` into ``--out`` when given.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from . import stats
from .columns import CELL_COLUMNS, fmt, identity_columns, metric_columns

DEFAULT_METRICS = ("runtime_s", "converge_s", "local_fraction_final", "overhead_cpu_s", "pages_migrated",
                   "hinting_faults", "exchanges")
TIME_METRICS = ("runtime_s", "converge_s")


class CompareError(ValueError):
    """Inputs that cannot be compared as asked: one line, exit 2."""


def parse_filter(text: str) -> list[tuple[str, str]]:
    """``policy=autonuma24,autonuma.knuma_scand.pages_to_scan=8192`` -> [(column, value)]."""
    out = []
    for part in text.split(","):
        if "=" not in part:
            raise CompareError(f"group filter {text!r}: expected column=value[,column=value]")
        k, v = part.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


def select(df, flt: list[tuple[str, str]], what: str):
    mask = None
    for col, val in flt:
        if col not in df.columns:
            raise CompareError(f"{what}: no column {col!r} in these results")
        m = df[col].astype(str) == val
        if df[col].dtype.kind in "if":
            try:
                m = m | (df[col].astype(float) == float(val))
            except ValueError:
                pass
        mask = m if mask is None else (mask & m)
    sub = df[mask] if mask is not None else df
    if sub.empty:
        raise CompareError(f"{what}: no configuration matches {','.join(f'{c}={v}' for c, v in flt)}")
    return sub


def match_columns(a, b) -> tuple[list[str], list[str]]:
    """(columns that pair the cells, columns that differ between the sides)."""
    ident = [c for c in identity_columns(a) if c in b.columns]
    match, differ = [], []
    for c in ident:
        va, vb = set(a[c].astype(str)), set(b[c].astype(str))
        if c in CELL_COLUMNS or (va == vb and len(va) > 1):
            match.append(c)
        elif va != vb:
            differ.append(c)
    return match, differ


def compare(a, b, metrics=DEFAULT_METRICS, level: float = 0.95):
    """One row per cell and metric: means, difference, its CI, relative difference, significance."""
    import pandas as pd
    metrics = [m for m in metrics if m in a.columns and m in b.columns]
    if not metrics:
        raise CompareError("no metric is present on both sides")
    match, differ = match_columns(a, b)
    rows = []
    ga = dict(list(a.groupby(match, sort=False))) if match else {(): a}
    for key, sb in (b.groupby(match, sort=False) if match else [((), b)]):
        sa = ga.get(key)
        if sa is None:
            continue
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            d = stats.diff_ci(sa[m].astype(float), sb[m].astype(float), level)
            rows.append({**dict(zip(match, key)), "metric": m, "n_a": d["n_a"], "n_b": d["n_b"],
                         "mean_a": d["mean_a"], "mean_b": d["mean_b"], "diff": d["diff"], "ci": d["half"],
                         "rel_pct": 100 * d["rel"], "rel_ci_pct": 100 * d["rel_half"],
                         "significant": stats.significant(d)})
    if not rows:
        raise CompareError(f"no cell ({', '.join(match) or 'all'}) is present on both sides")
    return pd.DataFrame(rows), match, differ


def _cell_name(row, match) -> str:
    parts = [fmt(row[c]) for c in ("workload", "machine") if c in match]
    extra = [f"{c.split('.')[-1]}={fmt(row[c])}" for c in match if c not in ("workload", "machine")]
    name = parts[0] if parts else "all"
    if len(parts) > 1:
        name += f" ({', '.join(parts[1:])})"
    return name + (f" [{', '.join(extra)}]" if extra else "")


def verdict(row, match, level: float) -> str:
    """``B is 12 +- 3 % faster on numa01 (2node_24cpu)`` or ``no significant difference ...``."""
    m = row["metric"]
    where = _cell_name(row, match)
    rel, half = row["rel_pct"], row["rel_ci_pct"]
    if not math.isfinite(row["diff"]):
        return f"{m}: not comparable on {where} (no values on a side)"
    if not row["significant"]:
        why = "" if math.isfinite(row["ci"]) else " (too few seeds for an interval)"
        spread = f" ({rel:+.1f} +- {half:.1f} %)" if math.isfinite(rel) and math.isfinite(half) else ""
        return f"{m}: no significant difference on {where}{spread}{why}"
    if m in TIME_METRICS:
        word = "faster" if rel < 0 else "slower"
    else:
        word = "higher" if row["diff"] > 0 else "lower"
    if math.isfinite(rel):
        return f"{m}: B is {abs(rel):.1f} +- {half:.1f} % {word} than A on {where} ({level:.0%} CI)"
    return f"{m}: B is {abs(row['diff']):.4g} +- {row['ci']:.4g} {word} than A on {where} ({level:.0%} CI)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="autonuma-sim-compare",
                                 description="Compare two result folders (or two groups of one) metric by metric, "
                                             "with confidence intervals over seeds and a verdict per cell.")
    ap.add_argument("dirs", nargs="+", metavar="DIR", help="A and B folders, or one folder with --a and --b")
    ap.add_argument("--a", default=None, help="filter of side A in a single folder: column=value[,column=value]")
    ap.add_argument("--b", default=None, help="filter of side B")
    ap.add_argument("--metric", default="runtime_s", help="metric of the verdict lines (default runtime_s)")
    ap.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="metrics of the table (comma separated)")
    ap.add_argument("--level", type=float, default=0.95, help="confidence level, in (0, 1) (default 0.95)")
    ap.add_argument("--out", default=None, help="folder to write compare.csv into")
    args = ap.parse_args(argv)
    try:
        return _main(args)
    except (CompareError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args) -> int:
    import pandas as pd
    from .load import load
    if not 0 < args.level < 1:
        raise CompareError(f"--level={args.level}: must be in (0, 1)")
    if len(args.dirs) == 2 and not (args.a or args.b):
        a, _ = load(args.dirs[0], timeseries=False)
        b, _ = load(args.dirs[1], timeseries=False)
        names = (args.dirs[0], args.dirs[1])
    elif len(args.dirs) == 1 and args.a and args.b:
        df, _ = load(args.dirs[0], timeseries=False)
        a, b = select(df, parse_filter(args.a), "--a"), select(df, parse_filter(args.b), "--b")
        names = (args.a, args.b)
    else:
        raise CompareError("give two folders, or one folder with --a and --b")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    allowed = set(metric_columns(a)) & set(metric_columns(b))
    for m in metrics + [args.metric]:
        if m not in allowed:
            raise CompareError(f"metric {m!r}: not a metric of both sides; one of {', '.join(sorted(allowed))}")
    if args.metric not in metrics:
        metrics.insert(0, args.metric)
    table, match, differ = compare(a, b, metrics, args.level)
    print(f"A = {names[0]} ({len(a)} configurations), B = {names[1]} ({len(b)} configurations)")
    if differ:
        def vals(df, c):
            return ",".join(sorted(set(df[c].astype(str))))
        print("compared: " + "; ".join(f"{c}: A={vals(a, c)} B={vals(b, c)}" for c in differ))
    print(f"cells matched on: {', '.join(match) or '(nothing: all pooled)'}")
    show = table.copy()
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:.4g}".format):
        print(show.to_string(index=False))
    for _, row in table[table["metric"] == args.metric].iterrows():
        print(verdict(row, match, args.level))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        table.to_csv(os.path.join(args.out, "compare.csv"), index=False)
        print(f"wrote {os.path.join(args.out, 'compare.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

