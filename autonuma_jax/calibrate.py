"""``python -m autonuma_jax.calibrate``: fit a few physical numbers of a machine preset to its
published baseline runs (``baselines.py``), and print the fit.

Only the baselines (none, hard_bind, inverse_bind: no balancing policy) are used, and only the
memory system's physics is fitted: by default the idle remote latency, the miss slots per core and
per node, the memory controller's and the links' capacity (``FIT``); the local latency and
``bzero_traffic`` stay at their priors. One set of numbers per machine for every benchmark.

Objective: the sum of squared log errors of the absolute hard_bind runtime and of the none /
hard_bind and inverse_bind / hard_bind ratios over the machine's published rows.

Each evaluation simulates every baseline row with the simulator itself (the same engine, CFS,
first touch and tail as every other run), shortened: each configuration runs at two loop counts
L1 = ``fraction`` x L and L2 = 2 x L1, and the full runtime is extrapolated linearly,
T(L) = T(L1) + (T(L2) - T(L1)) (L - L1) / (L2 - L1) (the baselines have no policy, so a loop
costs the same throughout; what does not scale - the init phase, thread start-up - is the
intercept). ``validate`` then checks the fitted preset with full-length runs.

Search: a pattern search in log space. Each round evaluates the current point and, for every
fitted parameter, the point moved by x step and / step (one vmapped batch per benchmark shape for
all candidates), combines the improving moves, keeps the better of that and the best single move,
and halves the step when nothing improves. Deterministic (fixed seeds).

Usage: python -m autonuma_jax.calibrate [--machines 2node_24cpu,...] [--rounds 6] [--step 1.3]
       [--fraction 0.1] [--fit lat_remote_ns,core_mlp,...] [--seeds 1] [--out DIR] [--json]

Writes ``calibration_<preset>.json`` and prints a table: each row simulated vs published, the
error, and the fitted numbers beside their priors. Imports only numpy and the core.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np

from . import baselines as B
from .config import RunConfig, SimConfig
from .machine import PRESETS, Machine
from .workloads import WORKLOADS

FIT = ("lat_remote_ns", "core_mlp", "socket_mlp", "node_bw_gbs", "link_bw_gbs")
# presets that model one box share one set of physics and are fitted together
GROUPS = ("2node_24cpu", "2node_12core+2node_12core_smt", "4node_32cpu", "8node_64cpu")
LOOPS = {"numa01": 50, "numa01_THREAD_ALLOC": 1000, "numa02": 800, "numa02_SMT": 800}


def loops_for(bench: str, fraction: float) -> tuple[int, int]:
    full = LOOPS[bench]
    l1 = max(2, int(round(full * fraction)))
    return l1, 2 * l1


def extrapolate(t1: float, t2: float, l1: int, l2: int, full: int) -> float:
    return t1 + (t2 - t1) * (full - l1) / (l2 - l1)


def baseline_config(machine: Machine, build: str, bench: str, policy: str, loops: int, seed: int,
                    duration_s: float) -> RunConfig:
    wl = WORKLOADS[bench]
    from .config import POLICIES
    variant = POLICIES[policy][1] or "default"
    workload = wl.build(machine, _built(bench, variant, build), RunConfig(seed=seed).force_node(), loops=loops)
    return RunConfig(machine=machine, workload=workload.validate(machine.n_nodes), policy=policy, seed=seed,
                     build=build, sim=SimConfig(duration_s=duration_s, report_interval_ms=1000.0))


def _built(bench, variant, build):
    from .workloads import build_variant
    return build_variant(bench, variant, build)


def predict(machines: list[Machine], preset: str, fraction: float = 0.1, seeds: int = 1) -> list[dict]:
    """Extrapolated full-length runtimes of every published baseline row of ``preset`` for each
    candidate machine: one dict {(benchmark, policy): seconds} per candidate (NaN: did not finish)."""
    return predict_group([{preset: m} for m in machines], (preset,), fraction, seeds)[0]


def predict_group(cands: list[dict], presets: tuple, fraction: float = 0.1, seeds: int = 1) -> list[list[dict]]:
    """``predict`` for presets that share their physics (one box with SMT off and on): ``cands`` are
    {preset: Machine} per candidate; returns, per preset, one prediction per candidate. One
    ``simulate`` call for everything."""
    from .simulate import simulate
    jobs = []
    for ci, cand in enumerate(cands):
        for preset in presets:
            m = cand[preset]
            bm = B.machine_for(preset)
            for r in B.rows_for(preset):
                l1, l2 = loops_for(r.benchmark, fraction)
                for pol in B.POLICIES:
                    pub = r.seconds(pol)
                    if pub is None:
                        continue
                    # room for a run 3x slower than published (scaled to the shortened loops), at least 60 s
                    dur = max(60.0, 3.0 * pub * l2 / LOOPS[r.benchmark] + 30.0)
                    dur = float(math.ceil(dur / 20.0) * 20.0)
                    for s in range(seeds):
                        for li, L in enumerate((l1, l2)):
                            jobs.append(((ci, preset, r.benchmark, pol, s, li),
                                         baseline_config(m, bm.build, r.benchmark, pol, L, s, dur)))
    res = simulate([c for _, c in jobs], reports_per_chunk=20)
    t = {key: out.summary()["runtime_s"] for (key, _), out in zip(jobs, res)}
    out = []
    for preset in presets:
        preds = []
        for ci in range(len(cands)):
            p = {}
            for r in B.rows_for(preset):
                l1, l2 = loops_for(r.benchmark, fraction)
                for pol in B.POLICIES:
                    if r.seconds(pol) is None:
                        continue
                    vals = [extrapolate(t[(ci, preset, r.benchmark, pol, s, 0)], t[(ci, preset, r.benchmark, pol, s, 1)],
                                        l1, l2, LOOPS[r.benchmark]) for s in range(seeds)]
                    p[(r.benchmark, pol)] = float(np.mean(vals))
            preds.append(p)
        out.append(preds)
    return out


def errors(pred: dict, preset: str) -> list[tuple]:
    """[(benchmark, quantity, simulated, published, relative error)] for the published rows."""
    out = []
    for r in B.rows_for(preset):
        hb = pred.get((r.benchmark, "hard_bind"))
        out.append((r.benchmark, "hard_bind_s", hb, r.hard_bind_s, hb / r.hard_bind_s - 1 if hb == hb else math.nan))
        for pol in ("none", "inverse_bind"):
            pub = r.seconds(pol)
            if pub is None:
                continue
            sim = pred[(r.benchmark, pol)] / hb
            want = pub / r.hard_bind_s
            out.append((r.benchmark, f"{pol}/hard_bind", sim, want, sim / want - 1 if sim == sim else math.nan))
    return out


def fitted(preset: str, bench: str, quantity: str) -> bool:
    """Whether the fit uses this published figure (``Row.unfitted`` says which it leaves out)."""
    return not any(r.benchmark == bench and quantity in r.unfitted for r in B.rows_for(preset))


def objective(pred: dict, preset: str) -> float:
    e = [math.log1p(x[4]) if x[4] == x[4] and x[4] > -1 else 10.0 for x in errors(pred, preset)
         if fitted(preset, x[0], x[1])]
    return float(sum(v * v for v in e))


def _clip(m: Machine, name: str, value: float) -> float:
    lo, hi = {"lat_remote_ns": (m.lat_local_ns, 4000.0), "core_mlp": (1.0, 32.0), "socket_mlp": (1.0, 256.0),
              "node_bw_gbs": (0.5, 10000.0), "link_bw_gbs": (0.05, 10000.0), "lat_local_ns": (10.0, 4000.0),
              "lat_group_ns": (m.lat_remote_ns, 4000.0), "link_group_gbs": (0.05, 10000.0)}[name]
    return float(min(max(value, lo), hi))


def _with(m: Machine, **kv) -> Machine:
    kv = {k: (_clip(m, k, v) if k != "bzero_traffic" and v is not None else v) for k, v in kv.items()}
    return dataclasses.replace(m, **kv).validate()


PHYSICS = ("lat_local_ns", "lat_remote_ns", "core_mlp", "socket_mlp", "node_bw_gbs", "link_bw_gbs", "bzero_traffic",
           "lat_group_ns", "link_group_gbs")


def fit(presets, params=FIT, rounds: int = 6, step: float = 1.3, fraction: float = 0.1, seeds: int = 1,
        start: dict | None = None, log=print) -> dict:
    """Pattern search of ``params`` shared by ``presets`` (one box: e.g. SMT off and on); returns
    a dict with the history, the fitted physics and each preset's prediction."""
    presets = (presets,) if isinstance(presets, str) else tuple(presets)
    base = PRESETS[presets[0]]
    phys = dict(start or {p: getattr(base, p) for p in PHYSICS})

    def machines(ph):
        return {p: _with(PRESETS[p], **ph) for p in presets}

    def evaluate(phs):
        per = predict_group([machines(ph) for ph in phs], presets, fraction, seeds)
        preds = [{p: per[i][c] for i, p in enumerate(presets)} for c in range(len(phs))]
        return [sum(objective(pr[p], p) for p in presets) for pr in preds], preds

    history = []
    (o0,), (p0,) = evaluate([phys])
    best = (o0, phys, p0)
    log(f"calibrate {'+'.join(presets)}: start objective {o0:.4f}")
    for rnd in range(rounds):
        cur_obj, cur, _ = best
        cands = []
        for p in params:
            for f in (step, 1 / step):
                ph = dict(cur)
                ph[p] = _clip(base, p, cur[p] * f)
                cands.append((p, ph))
        t0 = time.time()
        objs, preds = evaluate([ph for _, ph in cands])
        moves = {}
        for (p, ph), o in zip(cands, objs):
            if o < cur_obj and (p not in moves or o < moves[p][0]):
                moves[p] = (o, ph[p])
            history.append(dict(round=rnd, param=p, value=ph[p], objective=o))
        i = int(np.argmin(objs))
        single = (objs[i], cands[i][1], preds[i])
        improved = False
        if len(moves) > 1:
            comb = dict(cur, **{p: v for p, (_, v) in moves.items()})
            (co,), (cp,) = evaluate([comb])
            history.append(dict(round=rnd, param="+".join(moves), value=None, objective=co))
            if co < single[0] and co < cur_obj:
                best, improved = (co, comb, cp), True
        if not improved and single[0] < cur_obj:
            best, improved = single, True
        log(f"  round {rnd}: step x{step:.3f}, objective {cur_obj:.4f} -> {best[0]:.4f} "
            f"({', '.join(f'{p}={best[1][p]:.4g}' for p in params)}) [{time.time() - t0:.0f} s]")
        if not improved:
            step = math.sqrt(step)
    obj, phys, pred = best
    return dict(presets=presets, params=list(params), objective=obj, physics=phys, prediction=pred,
                history=history, fraction=fraction, seeds=seeds)


def report(result: dict) -> str:
    presets = result["presets"]
    phys = result["physics"]
    first = PRESETS[presets[0]]
    pri = B.PRIORS.get(presets[0], {})
    lines = [f"## {' + '.join(presets)} (objective {result['objective']:.4f})", ""]
    for preset in presets:
        tol = B.TOLERANCE.get(PRESETS[preset].n_nodes, 0.25)
        lines += [f"{preset} (tolerance {tol:.0%}; runtimes extrapolated from loops x {result['fraction']:g} "
                  f"and x {2 * result['fraction']:g}):", "",
                  "| benchmark | quantity | simulated | published | error |", "|---|---|---:|---:|---:|"]
        for bench, q, sim, pub, err in errors(result["prediction"][preset], preset):
            flag = "" if abs(err) <= tol else " **out**"
            if not fitted(preset, bench, q):
                flag += " (not fitted)"
            lines.append(f"| {bench} | {q} | {sim:.3f} | {pub:.3f} | {err:+.1%}{flag} |")
        lines.append("")
    lines += ["| parameter | fitted | preset before | datasheet prior | source |", "|---|---:|---:|---:|---|"]
    for p in PHYSICS:
        if phys.get(p) is None:
            continue
        pv, src = pri.get(p, (math.nan, ""))
        mark = " (fitted)" if p in result["params"] else ""
        before = getattr(first, p)
        lines.append(f"| {p}{mark} | {phys[p]:.4g} | {before if before is None else f'{before:.4g}'} | {pv:.4g} | {src} |")
    return "\n".join(lines)


def to_json(result: dict) -> dict:
    return dict(presets=list(result["presets"]), objective=result["objective"], fraction=result["fraction"],
                seeds=result["seeds"], params=result["params"], fitted=result["physics"],
                rows=[dict(preset=p, benchmark=b, quantity=q, simulated=s, published=pub, error=e)
                      for p in result["presets"] for b, q, s, pub, e in errors(result["prediction"][p], p)],
                history=result["history"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m autonuma_jax.calibrate", description=" ".join(__doc__.split("\n\n")[0].split()).replace("``", ""))
    ap.add_argument("--machines", default=",".join(GROUPS),
                    help="presets with published baselines; presets joined with + share one set of physics")
    ap.add_argument("--fit", default=",".join(FIT), help="machine fields to fit")
    ap.add_argument("--rounds", type=int, default=6, help="search rounds (0: evaluate the preset as it is)")
    ap.add_argument("--step", type=float, default=1.3, help="initial multiplicative step")
    ap.add_argument("--fraction", type=float, default=0.1, help="shortened loops: L1 = fraction x L, L2 = 2 L1")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder for calibration_<preset>.json / .md")
    ap.add_argument("--json", action="store_true", help="print the JSON results")
    a = ap.parse_args(argv)
    params = tuple(x for x in a.fit.split(",") if x)
    fittable = ("lat_local_ns",) + FIT + ("lat_group_ns", "link_group_gbs")
    bad = [p for p in params if p not in fittable]
    if bad:
        print(f"error: --fit={bad[0]}: must be among {', '.join(fittable)}", file=sys.stderr)
        return 2
    groups = [tuple(g.split("+")) for g in a.machines.split(",") if g]
    for g in groups:
        for p in g:
            if p not in B.presets():
                print(f"error: --machines={p}: must be one of {', '.join(B.presets())} (presets with baselines)",
                      file=sys.stderr)
                return 2
    if not (0 < a.fraction <= 0.5) or a.rounds < 0 or a.seeds < 1 or a.step <= 1:
        print("error: --fraction in (0, 0.5], --rounds >= 0, --seeds >= 1, --step > 1", file=sys.stderr)
        return 2
    out = []
    for g in groups:
        r = fit(g, params, a.rounds, a.step, a.fraction, a.seeds, log=lambda s: print(s, file=sys.stderr, flush=True))
        md = report(r)
        print(md + "\n", flush=True)
        j = to_json(r)
        out.append(j)
        if a.out:
            os.makedirs(a.out, exist_ok=True)
            name = "+".join(g)
            with open(os.path.join(a.out, f"calibration_{name}.json"), "w") as f:
                json.dump(j, f, indent=1)
            with open(os.path.join(a.out, f"calibration_{name}.md"), "w") as f:
                f.write(md + "\n")
    if a.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
