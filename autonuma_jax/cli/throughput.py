"""Recorded throughput of this machine, for the wall-time estimate of ``--dry-run``.

Every batch a job simulates appends one JSON line to ``sim.throughput_log`` (default
``~/.cache/autonuma-jax/throughput.jsonl``; null turns it off): the host, the JAX backend, the
batch's shape (nodes, CPUs, threads, page units), its size, the configuration-ticks it ran, the
wall seconds of its steady chunks, an estimate of its compile time (first chunk minus a steady
one) and the fraction of ``sim.duration_s`` it ran before every thread was done. A dry run
estimates each planned batch from the closest record of the same host and backend (same shape
and size when there is one, whose early stop it then expects again), scaled by the thread count
(a tick's work grows with the threads streaming), and says which records it used. Without records it uses a rough
default for a 2-core CPU and says so.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass

# Without any record: roughly what a 2-core CPU does on the 2-node 24-thread preset (BENCHMARKS.md,
# speed round two), scaled by threads; and a typical compile of one bucket there.
DEFAULT_RATE = 20000.0  # configuration-ticks per wall second at DEFAULT_THREADS threads
DEFAULT_THREADS = 24
DEFAULT_COMPILE_S = 25.0
MAX_RECORDS = 2000  # the newest are read; the file is rewritten shorter past twice this


def default_path() -> str:
    return os.path.expanduser(os.environ.get("AUTONUMA_JAX_THROUGHPUT_LOG", "~/.cache/autonuma-jax/throughput.jsonl"))


def host() -> dict:
    try:
        import jax
        backend = jax.default_backend()
        kind = jax.devices()[0].device_kind
    except Exception:  # noqa: BLE001
        backend, kind = "?", "?"
    return {"host": platform.node(), "backend": backend, "device": kind}


def shape_of(static) -> dict:
    return {"n_nodes": int(static.n_nodes), "n_cpus": int(static.n_cpus), "n_tasks": int(static.n_tasks),
            "n_units": int(static.n_units)}


@dataclass
class ChunkTimer:
    """Times the chunks of one batch (``Bucket.run``'s ``on_chunk``)."""
    t0: float = 0.0
    first: float = float("nan")
    last: float = float("nan")
    chunks: int = 0
    reports_first: int = 0

    def start(self):
        self.t0 = time.perf_counter()

    def __call__(self, bucket):
        now = time.perf_counter()
        self.chunks += 1
        if self.chunks == 1:
            self.first, self.reports_first = now, int(bucket.reports_done)
        self.last = now


def record(path: str | None, static, batch: int, timer: ChunkTimer, reports_done: int, resumed: bool) -> None:
    """Append this batch's figures (quietly does nothing when it cannot: an estimate is optional)."""
    if not path or timer.chunks < 2 or resumed:
        return  # one chunk cannot tell the compile from the steady rate; a resumed batch did not compile here
    steady_s = timer.last - timer.first
    steady_ticks = (reports_done - timer.reports_first) * int(static.report_ticks) * batch
    if steady_s <= 0 or steady_ticks <= 0:
        return
    per_chunk = steady_s / (timer.chunks - 1)
    rec = {"time": round(time.time(), 1), **host(), **shape_of(static), "batch": int(batch),
           "config_ticks_per_s": steady_ticks / steady_s,
           "compile_s": max(0.0, (timer.first - timer.t0) - per_chunk),
           # how much of sim.duration_s the batch ran before every thread was done (stop_when_done)
           "done_fraction": min(1.0, reports_done / max(1, int(static.n_reports)))}
    try:
        path = os.path.expanduser(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if os.path.getsize(path) > 400 * 2 * MAX_RECORDS:
            recs = load(path)
            with open(path + ".tmp", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in recs[-MAX_RECORDS:])
            os.replace(path + ".tmp", path)
    except OSError:
        pass


def load(path: str | None) -> list[dict]:
    if not path:
        return []
    try:
        with open(os.path.expanduser(path)) as f:
            lines = f.readlines()[-MAX_RECORDS:]
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def estimate(shape: dict, batch: int, config_ticks: int, records: list[dict]) -> dict:
    """Seconds for one batch: ``run_s`` (steady), ``compile_s``, and ``source`` (what it is based on)."""
    me = host()
    frac = 1.0
    mine = [r for r in records if r.get("host") == me["host"] and r.get("backend") == me["backend"]]
    if mine:
        def distance(r):
            return (abs(math.log(max(1, r["batch"]) / max(1, batch)))
                    + abs(math.log(max(1, r["n_units"]) / max(1, shape["n_units"])))
                    + 2 * abs(math.log(max(1, r["n_tasks"]) / max(1, shape["n_tasks"])))
                    + abs(r["n_nodes"] - shape["n_nodes"]))
        best = min(mine, key=distance)
        same = [r for r in mine if distance(r) == distance(best)]
        rate = sorted(r["config_ticks_per_s"] for r in same)[len(same) // 2]
        rate *= best["n_tasks"] / max(1, shape["n_tasks"])
        comp = sorted(r["compile_s"] for r in same)[len(same) // 2]
        exact = distance(best) == 0
        fracs = sorted(r["done_fraction"] for r in same if "done_fraction" in r)
        if exact and fracs:  # the same shape stopped this early before: expect it again
            frac = fracs[len(fracs) // 2]
        src = (f"{len(same)} recorded run(s) of this shape and batch" if exact else
               f"{len(same)} recorded run(s) of the closest shape ({best['n_tasks']} threads, "
               f"{best['n_units']} units, batch {best['batch']})")
        if frac < 1.0:
            src += f", which stopped at {frac:.0%} of sim.duration_s (every thread done)"
    else:
        rate = DEFAULT_RATE * DEFAULT_THREADS / max(1, shape["n_tasks"])
        comp = DEFAULT_COMPILE_S
        src = "a rough default (no recorded run on this machine yet)"
    return {"run_s": config_ticks * frac / rate, "compile_s": comp, "source": src}
