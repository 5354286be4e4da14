"""``--dry-run`` (or ``dry_run=true``): what a command expands to, and how long it should take.

For every job the command would run (one, or each job of a ``-m`` multirun, composed exactly as
the sweeper composes it): the configurations, the compiled batches (one per shape, split by
``sim.batch_size``), the compiles (one per distinct batch shape and size; fewer when the
persistent compilation cache already holds them), the simulated seconds (an upper bound: a run
stops once every thread is done) and an estimated wall time from this machine's recorded
throughput (``throughput.py``). Everything is validated as a real run validates it (a bad value
fails with the same one line). Nothing is simulated, compiled or written; hydra is stopped before
it creates an output folder.
"""
from __future__ import annotations

import math

from ..config import build_static
from . import throughput
from .job import plan, prepare


def _fmt_s(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def job_plan(cfg: dict, records: list[dict]) -> dict:
    runs = prepare(cfg)
    sim = cfg.get("sim", {})
    batches = []
    statics = set()
    for idx in plan(runs, int(sim.get("batch_size", 0) or 0)):
        configs = [runs[i].config for i in idx]
        st = build_static(configs)
        key = (st, len(idx))
        new = key not in statics
        statics.add(key)
        ticks = st.n_ticks * len(idx)
        est = throughput.estimate(throughput.shape_of(st), len(idx), ticks, records)
        batches.append({"configs": len(idx), "ticks": st.n_ticks, "threads": st.n_tasks, "units": st.n_units,
                        "sim_s": sum(c.sim.duration_s for c in configs), "compile": new, **est})
    return {"configs": len(runs), "batches": batches, "compiles": len(statics), "keys": statics,
            "sim_s": sum(b["sim_s"] for b in batches),
            "wall_s": sum(b["run_s"] + (b["compile_s"] if b["compile"] else 0.0) for b in batches)}


def report(jobs: list[tuple[str, dict]], log_path: str | None = None) -> str:
    """The dry-run text for ``jobs`` = [(description, job config dict)]."""
    records = throughput.load(log_path if log_path is not None else throughput.default_path())
    plans = [(name, job_plan(cfg, records)) for name, cfg in jobs]
    n_cfg = sum(p["configs"] for _, p in plans)
    n_b = sum(len(p["batches"]) for _, p in plans)
    # jobs in one process (hydra's basic launcher) share compiled batches of the same shape
    n_c = len(set().union(*(p["keys"] for _, p in plans))) if plans else 0
    sim_s = sum(p["sim_s"] for _, p in plans)
    wall = sum(p["wall_s"] for _, p in plans)
    lines = [f"dry run: {len(plans)} job(s), {n_cfg} configuration(s) in {n_b} compiled batch(es), up to {n_c} "
             f"compile(s) (jobs in separate processes compile their own); {sim_s:,.0f} simulated configuration-seconds at most (a run stops when its threads are done)"]
    sources = set()
    for name, p in plans:
        lines.append(f"  job {name}: {p['configs']} configuration(s), {len(p['batches'])} batch(es), "
                     f"{p['compiles']} compile(s), ~{_fmt_s(p['wall_s'])}")
        for b in p["batches"]:
            lines.append(f"    batch of {b['configs']}: {b['threads']} threads, {b['units']} page units, "
                         f"{b['ticks']} ticks; ~{_fmt_s(b['run_s'])} simulating"
                         + (f" + ~{_fmt_s(b['compile_s'])} compiling" if b["compile"] else ""))
            sources.add(b["source"])
    lines.append(f"estimated wall time on this machine: ~{_fmt_s(wall)} (from {'; '.join(sorted(sources))}; "
                 f"less when the compilation cache holds the batches or runs stop early)")
    lines.append("nothing was run or written (drop --dry-run to run it)")
    return "\n".join(lines)
