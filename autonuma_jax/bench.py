"""``python -m autonuma_jax.bench``: how fast the simulator is (no hydra, no wandb: runs on the GPU box).

Sections (each can be skipped):
- throughput: configuration-ticks per second and simulated configuration-seconds per wall second
  of numa01 on the 2-node 24-CPU preset (2 MiB units) for batch sizes 1..4096; compile time apart;
- reference: the NumPy reference on the same work, and the ratio at the largest batch;
- scaling: per-tick time at fixed events while memory per configuration grows from 1 GiB to
  64 GiB (4 KiB units, pte mode), and the ratio of the two ends;
- memory: bytes of state per page unit and per configuration;
- bound: the minimum bytes a tick must touch over this machine's measured memory bandwidth,
  against the real tick time;
- compiles: compilations over a sweep of knob values (must be one per shape bucket);
- ops: XLA's own profile of the compiled tick (``jax.profiler``): the kernels (thunks) a tick
  executes and their share of the profiled time, per phase (the ``jax.named_scope`` of each phase
  in ``tick.py``). On a GPU each kernel is a launch, so at small batches the count sets the speed;
  the profiler's own cost per event inflates small kernels, so read the times as shares.

Usage: python -m autonuma_jax.bench [--batches 1,16,256,1024] [--ticks 2000] [--skip scaling,...]
       [--json] [--budget-s 60]
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


def _now():
    return time.perf_counter()


def _block(x):
    import jax
    return jax.block_until_ready(x)


def _cfgs(n, duration_s, machine="2node_24cpu", workload="numa01", page_unit="2M", knobs=None, seed0=0):
    from .config import RunConfig, SimConfig
    from .knobs import Knobs
    return [RunConfig(machine=machine, workload=workload, policy="autonuma24", seed=seed0 + i, knobs=knobs or Knobs(),
                      sim=SimConfig(duration_s=duration_s, report_interval_ms=1000, page_unit=page_unit))
            for i in range(n)]


def _warm_state(bucket, ticks: int):
    """Advance a fresh bucket past the start-up (threads created, memory touched)."""
    from .simulate import compiled_chunk
    import jax
    bucket.init()
    st = bucket.static
    if ticks > 0:
        from .simulate import run_chunk
        fn = jax.jit(lambda s, p: _run_ticks(s, p, st, ticks), donate_argnums=(0,))
        bucket.state = _block(fn(bucket.state, bucket.params))


def _run_ticks(state, params, static, n):
    import jax
    from .tick import step_batch
    return jax.lax.fori_loop(0, n, lambda i, s: step_batch(s, params, static), state)


def measure_batch(batch: int, ticks: int, warm_ticks: int, machine="2node_24cpu", workload="numa01"):
    """(compile_s, s_per_tick) for one batch size, measured on ``ticks`` ticks after a warm-up."""
    import jax
    from .simulate import Bucket
    b = Bucket.build(_cfgs(batch, duration_s=max(1.0, (warm_ticks + ticks) / 1000 + 1), machine=machine,
                           workload=workload))
    _warm_state(b, warm_ticks)
    st = b.static
    f = jax.jit(lambda s, p: _run_ticks(s, p, st, ticks), donate_argnums=(0,))
    t0 = _now()
    comp = f.lower(b.state, b.params).compile()
    compile_s = _now() - t0
    t0 = _now()
    b.state = _block(comp(b.state, b.params))
    run_s = _now() - t0
    return compile_s, run_s / ticks, b


def throughput(batches, ticks, warm_ticks, budget_s):
    rows = []
    for B in batches:
        est = rows[-1]["s_per_tick"] / rows[-1]["batch"] * B if rows else None
        n = ticks
        if est and est * ticks > budget_s:
            n = max(20, int(budget_s / est))
        try:
            comp, spt, b = measure_batch(B, n, warm_ticks)
        except Exception as e:  # out of memory on this machine
            rows.append(dict(batch=B, error=f"{type(e).__name__}: {str(e)[:120]}"))
            break
        tick_s = b.static.tick_s
        rows.append(dict(batch=B, ticks=n, compile_s=round(comp, 2), s_per_tick=spt,
                         config_ticks_per_s=B / spt, sim_config_s_per_s=B * tick_s / spt))
        print(f"  batch {B:5d}: compile {comp:6.1f} s, {spt * 1e3:8.3f} ms/tick, "
              f"{B / spt:12.0f} config-ticks/s, {B * tick_s / spt:9.1f} sim config-s per s", flush=True)
    return rows


def reference(ticks, warm_ticks):
    """Per config-tick time of the NumPy reference on the same work."""
    try:
        from .reference.numpy_model import ReferenceModel
    except ImportError as e:
        return dict(error=str(e))
    import jax
    from .simulate import Bucket
    from . import params as P
    b = Bucket.build(_cfgs(1, duration_s=max(1.0, (warm_ticks + ticks) / 1000 + 1)))
    _warm_state(b, warm_ticks)
    single = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], b.state)
    pr = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], b.params)
    ref = ReferenceModel.from_state(b.static, pr, single)
    t0 = _now()
    for _ in range(ticks):
        ref.step()
    dt = (_now() - t0) / ticks
    print(f"  numpy reference: {dt * 1e3:.2f} ms per config-tick", flush=True)
    return dict(ticks=ticks, s_per_config_tick=dt)


def prefault(bucket):
    """Bench helper: make every page unit of every process present (spread over the nodes)."""
    import jax
    from .pytree import replace
    st, s = bucket.static, bucket.state
    node = np.asarray(s.pages.node).copy()
    B, U = node.shape
    N = st.n_nodes
    mm_start = np.asarray(bucket.params.workload.mm_start)[0]
    mm_len = np.asarray(bucket.params.workload.mm_len)[0]
    node_pages = np.zeros((B, st.n_mms, N), np.int32)
    for m in range(st.n_mms):
        idx = np.arange(mm_start[m], mm_start[m] + mm_len[m])
        node[:, idx] = (idx % N).astype(np.int8)
        node_pages[:, m] = np.bincount(idx % N, minlength=N) * st.unit_pages
    cap = np.asarray(bucket.params.machine.node_pages)
    mms = replace(s.mms, node_pages=node_pages)
    bucket.state = bucket.place(replace(s, pages=replace(s.pages, node=node), mms=mms,
                                        free_pages=cap - node_pages.sum(axis=1)))


def scaling(sizes_gib, ticks):
    """Per-tick time, 4 KiB units in pte mode, fixed events, growing memory per configuration."""
    import jax
    from .config import RunConfig, SimConfig
    from .knobs import Knobs, with_overrides
    from .machine import Machine
    from .simulate import Bucket
    from .workloads import Process, Thread, Workload
    out = []
    for g in sizes_gib:
        size = int(g) << 30
        m = Machine(name=f"bench_{g}g", n_nodes=2, cpus_per_node=4, threads_per_core=1,
                    mem_per_node_mib=max(2048, int(g * 1024 * 0.75)), distance=((10, 20), (20, 10)),
                    lat_local_ns=70.0, lat_remote_ns=130.0, core_mlp=6.0, socket_mlp=32.0, node_bw_gbs=20.0,
                    link_bw_gbs=12.8)
        hot = 256 << 20  # every thread streams the same 256 MiB: the events per tick do not change
        th = tuple(Thread(mm=0, work_offset=0, work_len=hot, work_passes=1_000_000) for _ in range(4))
        wl = Workload(name=f"hot256M_of_{g}G", processes=(Process(mem_bytes=size),), threads=th)
        k = with_overrides(Knobs(), {"autonuma.knuma_scand.pmd": 0, "autonuma.knuma_scand.scan_sleep_millisecs": 10})
        cfg = RunConfig(machine=m, workload=wl, policy="autonuma24", knobs=k,
                        sim=SimConfig(duration_s=10, page_unit="4K", report_interval_ms=1000))
        b = Bucket.build([cfg])
        b.init()
        prefault(b)
        st = b.static
        f = jax.jit(lambda s, p: _run_ticks(s, p, st, ticks), donate_argnums=(0,))
        comp = f.lower(b.state, b.params).compile()
        b.state = _block(comp(b.state, b.params))  # warm
        t0 = _now()
        b.state = _block(comp(b.state, b.params))
        spt = (_now() - t0) / ticks
        print(f"  {g:3d} GiB ({st.n_units:9d} units): {spt * 1e3:8.3f} ms/tick", flush=True)
        out.append(dict(gib=g, units=st.n_units, s_per_tick=spt))
    if len(out) >= 2:
        out.append(dict(ratio_last_first=out[-1]["s_per_tick"] / out[0]["s_per_tick"]))
    return out


def memory_report():
    from .config import build_static
    from .state import bytes_per_unit
    from . import params as P
    import jax
    res = {}
    for pu in ("2M", "4K"):
        cfgs = _cfgs(1, 1.0, page_unit=pu)
        st = build_static(cfgs)
        from .state import init_state
        shp = jax.eval_shape(lambda p: init_state(st, p), P.build_params(cfgs[0], st))
        total = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(shp))
        pages = shp.pages
        per_page = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(pages))
        res[pu] = dict(units=st.n_units, page_bytes_per_unit=per_page / st.n_units,
                       ring_bytes_per_unit=st.n_rings * st.ring_capacity * 4 / st.n_units,
                       bytes_per_unit_total=bytes_per_unit(st), state_bytes_per_config=total)
        print(f"  {pu}: {per_page / st.n_units:.2f} B/unit in page arrays, "
              f"{st.n_rings * st.ring_capacity * 4 / st.n_units:.2f} B/unit in queue rings, "
              f"{total / 2**20:.1f} MiB of state per configuration (numa01)", flush=True)
    return res


def host_bandwidth():
    a = np.ones(64 << 20, np.uint8)
    b = np.empty_like(a)
    np.copyto(b, a)
    t0 = _now()
    for _ in range(5):
        np.copyto(b, a)
    dt = (_now() - t0) / 5
    return 2 * a.nbytes / dt  # read + write


def bound(s_per_tick_b1):
    """Minimum bytes touched per tick (one numa01 configuration) over the host memory bandwidth."""
    from .config import build_static
    st = build_static(_cfgs(1, 1.0))
    T, A = st.n_tasks, st.units_per_tick
    access = T * A * (1 + 1 + 1 + 1 + 4)  # node, last_nid, migrate_nid, pmd flags, migrate_seq
    scan = st.scan_pmds_per_tick * st.units_per_pmd * 3 + st.scan_pmds_per_tick
    migrate = st.n_rings * st.migrate_window * (4 + 1 + 1 + 4)
    total = access + scan + migrate
    bw = host_bandwidth()
    t_min = total / bw
    print(f"  bytes/tick >= {total}, host bandwidth {bw / 1e9:.1f} GB/s -> bound {t_min * 1e6:.2f} us/tick; "
          f"measured {s_per_tick_b1 * 1e6:.1f} us/tick at batch 1 ({s_per_tick_b1 / t_min:.0f}x the bound)", flush=True)
    return dict(bytes_per_tick=total, host_bw_gbs=bw / 1e9, bound_s=t_min, measured_s=s_per_tick_b1,
                ratio=s_per_tick_b1 / t_min)


def compiles(n_values=8):
    """Run a sweep of n knob values as one bucket twice; count backend compilations."""
    import jax
    from .knobs import Knobs, with_overrides
    from .simulate import simulate
    count = [0]

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    vals = [8192 * (i + 1) for i in range(n_values)]
    cfgs = [c for v in vals for c in _cfgs(1, 1.0, knobs=with_overrides(
        Knobs(), {"autonuma.knuma_scand.pages_to_scan": v}))]
    simulate(cfgs)
    first = count[0]
    vals2 = [4096 * (i + 1) for i in range(n_values)]
    cfgs2 = [c for v in vals2 for c in _cfgs(1, 1.0, knobs=with_overrides(
        Knobs(), {"autonuma.knuma_scand.pages_to_scan": v}))]
    simulate(cfgs2)
    print(f"  {n_values} knob values: {first} backend compiles in the first sweep, "
          f"{count[0] - first} in a second sweep with other values", flush=True)
    return dict(n_values=n_values, compiles_first=first, compiles_second=count[0] - first)


PHASES = ("live", "freeze", "draws", "respawn", "start", "noise", "lb", "active", "balance", "stream",
          "memsys_solve", "access", "advance", "scand", "tscan", "placement", "migrated", "compact", "khugepaged",
          "account")


def op_profile(batch: int, ticks: int, warm_ticks: int, machine="2node_24cpu", workload="numa01", top: int = 0):
    """Kernels per tick and profiled time per phase, from a ``jax.profiler`` trace of ``ticks`` ticks;
    with ``top``, also the ``top`` kernels of most self time (name, phase, us per tick, op_name)."""
    import collections
    import glob
    import gzip
    import re
    import tempfile
    import jax
    _, _, b = measure_batch(batch, 10, warm_ticks, machine=machine, workload=workload)
    st = b.static
    comp = jax.jit(lambda s, p: _run_ticks(s, p, st, ticks), donate_argnums=(0,)).lower(b.state, b.params).compile()
    op_name = dict(re.findall(r'^\s*(?:ROOT )?%([\w.\-]+) = .*?op_name="([^"]*)"', comp.as_text(), re.M))

    def phase(name):
        parts = [re.sub(r"^vmap\((.*)\)$", r"\1", x) for x in op_name.get(name, "").split("/")]
        hit = [x for x in parts if x in PHASES]
        return hit[-1] if hit else ("xla" if name not in op_name else "other")

    b.state = _block(comp(b.state, b.params))
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d, create_perfetto_trace=True)
        b.state = _block(comp(b.state, b.params))
        jax.profiler.stop_trace()
        files = sorted(glob.glob(d + "/**/perfetto_trace.json.gz", recursive=True))
        if not files:
            return dict(error="the profiler wrote no trace")
        trace = json.load(gzip.open(files[-1]))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    host = ("end:", "Thunk", "$", "Pjit", "Common", "Threadpool", "Wait", "Python", "Parse", "Handle", "Allocate")
    X = sorted((e for e in events if e.get("ph") == "X" and not e["name"].startswith(host)),
               key=lambda e: (e["tid"], e["ts"], -e["dur"]))
    stack, last_tid = [], None
    for e in X:  # self time: minus the events nested inside (a cond's branch, a loop's body)
        if e["tid"] != last_tid:
            stack, last_tid = [], e["tid"]
        while stack and stack[-1]["ts"] + stack[-1]["dur"] < e["ts"] + e["dur"] - 1e-3:
            stack.pop()
        e["self"] = e["dur"]
        if stack:
            stack[-1]["self"] -= e["dur"]
        stack.append(e)
    n, t = collections.Counter(), collections.Counter()
    for e in X:
        p = phase(e["name"])
        n[p] += 1
        t[p] += e["self"]
    tot = sum(t.values()) or 1.0
    rows = {p: dict(kernels_per_tick=n[p] / ticks, share=t[p] / tot) for p in sorted(t, key=lambda k: -t[k])}
    total = sum(n.values()) / ticks
    print(f"  batch {batch}: {total:.0f} kernels per tick; by phase (kernels/tick, share of profiled time; "
          f"'xla' = copies and scans XLA added):", flush=True)
    for p, r in rows.items():
        print(f"    {p:13s} {r['kernels_per_tick']:7.1f}  {100 * r['share']:5.1f} %", flush=True)
    cp = [e for e in X if e["name"].startswith("copy")]
    copy_share = sum(e["self"] for e in cp) / tot
    print(f"    of which buffer copies: {len(cp) / ticks:.1f} kernels per tick, {100 * copy_share:.1f} % of the time",
          flush=True)
    if top:
        per = collections.Counter()
        for e in X:
            per[e["name"]] += e["self"]
        print(f"  top {top} kernels (us per tick, phase, XLA name, op_name):", flush=True)
        for name, us in per.most_common(top):
            print(f"    {us / ticks:9.1f}  {phase(name):12s} {name[:28]:28s} {op_name.get(name, '')[-90:]}", flush=True)
    return dict(batch=batch, kernels_per_tick=total, phases=rows, copy_share=copy_share)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="autonuma-jax benchmark harness")
    ap.add_argument("--batches", default="1,4,16,64,256,1024,4096")
    ap.add_argument("--ticks", type=int, default=1000)
    ap.add_argument("--warm-ticks", type=int, default=2000)
    ap.add_argument("--budget-s", type=float, default=60.0, help="wall seconds allowed per batch size")
    ap.add_argument("--sizes-gib", default="1,4,16,64")
    ap.add_argument("--ref-ticks", type=int, default=100)
    ap.add_argument("--skip", default="", help="comma list of sections to skip")
    ap.add_argument("--op-batches", default="1,64", help="batch sizes of the kernel-count profile (ops)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    import jax
    out = dict(devices=[str(d) for d in jax.devices()], jax=jax.__version__)
    print(f"devices: {out['devices']}", flush=True)
    if "throughput" not in skip:
        print("throughput (numa01, 2node_24cpu, 2 MiB units):", flush=True)
        out["throughput"] = throughput([int(x) for x in args.batches.split(",")], args.ticks, args.warm_ticks,
                                       args.budget_s)
    if "reference" not in skip:
        print("numpy reference:", flush=True)
        out["reference"] = reference(args.ref_ticks, args.warm_ticks)
        tp = [r for r in out.get("throughput", []) if "config_ticks_per_s" in r]
        if tp and "s_per_config_tick" in out["reference"]:
            best = tp[-1]
            out["reference"]["ratio_at_batch"] = best["batch"]
            out["reference"]["ratio"] = best["config_ticks_per_s"] * out["reference"]["s_per_config_tick"]
            print(f"  JAX batch {best['batch']} is {out['reference']['ratio']:.0f}x the reference", flush=True)
    if "scaling" not in skip:
        print("scaling (4 KiB units, pte mode, fixed events):", flush=True)
        out["scaling"] = scaling([int(x) for x in args.sizes_gib.split(",")], max(50, args.ticks // 4))
    if "memory" not in skip:
        print("memory:", flush=True)
        out["memory"] = memory_report()
    if "bound" not in skip:
        print("bandwidth bound:", flush=True)
        tp = [r for r in out.get("throughput", []) if r.get("batch") == 1 and "s_per_tick" in r]
        spt = tp[0]["s_per_tick"] if tp else measure_batch(1, args.ticks, args.warm_ticks)[1]
        out["bound"] = bound(spt)
    if "compiles" not in skip:
        print("compilations over a knob sweep:", flush=True)
        out["compiles"] = compiles()
    if "ops" not in skip:
        print("kernels per tick (XLA profile, numa01 2node_24cpu):", flush=True)
        out["ops"] = [op_profile(int(x), 50, args.warm_ticks) for x in args.op_batches.split(",")]
    if args.json:
        print(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
