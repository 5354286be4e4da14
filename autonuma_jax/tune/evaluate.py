"""The honest answer of a tuning job: fresh-seed comparison with the defaults, and transfer.

Both read the evaluation records (``job.Tuner.evaluate``): every cell ran the kernel defaults and
the best knobs of each tuned cell on the same fresh seeds, seeds no rung of the search used (the
search's own numbers are optimistic: the best of many noisy candidates is partly the luckiest).
The difference is paired seed by seed (``analysis.stats.paired_diff_ci``: the same seed gives both
runs the same scheduler noise and speed wander, so the pairs cancel most of it) with a Student's t
95 % interval.

Verdicts, for "best - defaults" in the objective (lower is better):
- ``better``: the whole interval is below zero: the tuned knobs beat the defaults;
- ``worse``: the whole interval is above zero (possible: the search saw other seeds);
- ``within noise``: the interval contains zero: the defaults are within noise of the best found.
"""
from __future__ import annotations

import math

from ..analysis.stats import mean_ci, paired_diff_ci

LEVEL = 0.95


def _by_seed(records: list[dict], cell: str, knobs_from: str, metric: str) -> dict[int, float]:
    return {r["seed"]: float(r[metric]) for r in records
            if r["stage"] == "evaluate" and r["cell"] == cell and r["knobs_from"] == knobs_from}


def verdict(d: dict) -> str:
    if math.isnan(d["diff"]):
        return "no data"
    if math.isnan(d["half"]):
        return "no interval (one seed)"
    if d["diff"] + d["half"] < 0:
        return "better"
    if d["diff"] - d["half"] > 0:
        return "worse"
    return "within noise"


def compare(records: list[dict], cell: str, knobs_from: str, metric: str = "objective") -> dict:
    """``knobs_from``'s best on ``cell`` against the defaults on the same fresh seeds."""
    base = _by_seed(records, cell, "defaults", metric)
    tuned = _by_seed(records, cell, knobs_from, metric)
    seeds = sorted(set(base) & set(tuned))
    d = paired_diff_ci([base[s] for s in seeds], [tuned[s] for s in seeds], LEVEL)
    bm, bh, _ = mean_ci([base[s] for s in seeds], LEVEL)
    tm, th, _ = mean_ci([tuned[s] for s in seeds], LEVEL)
    return {"cell": cell, "knobs_from": knobs_from, "metric": metric, "seeds": len(seeds),
            "defaults_mean": bm, "defaults_ci95": bh, "tuned_mean": tm, "tuned_ci95": th,
            "diff": d["diff"], "diff_ci95": d["half"], "rel_diff": d["rel"], "rel_diff_ci95": d["rel_half"],
            "verdict": verdict(d)}


def fresh_seed_table(records: list[dict], cells: list[str],
                     metrics: tuple[str, ...] = ("objective", "runtime_s", "overhead_cpu_s")) -> list[dict]:
    """Per cell and metric: the cell's own best against the defaults on fresh seeds."""
    return [compare(records, c, c, m) for c in cells for m in metrics]


def transfer_table(records: list[dict], cells: list[str]) -> list[dict]:
    """Per (tuned on, evaluated on): the objective's gain over the defaults, as a share of the
    defaults' mean (positive: better), with its interval, and the share of the evaluated cell's
    own gain it keeps (``kept``: NaN unless the own gain is significant)."""
    own = {c: compare(records, c, c) for c in cells}
    out = []
    for src in cells:
        for dst in cells:
            d = compare(records, dst, src)
            if d["seeds"] == 0:
                continue
            o = own[dst]
            gain = -d["rel_diff"]
            own_gain = -o["rel_diff"]
            sig = o["verdict"] == "better"
            out.append({"tuned_on": src, "evaluated_on": dst, "gain": gain, "gain_ci95": d["rel_diff_ci95"],
                        "verdict": d["verdict"], "own_gain": own_gain,
                        "kept": gain / own_gain if sig and own_gain > 0 else float("nan")})
    return out
