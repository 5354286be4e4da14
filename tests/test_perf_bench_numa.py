"""perf bench numa mem as a workload family: its argument syntax, the -a cases' layouts, the
convergence criterion and print_res figures on hand-made rows, and small simulations whose figures
must follow the machine's physics (local vs remote bandwidth, a hard bind converged at once)."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import autonuma_jax as an
from autonuma_jax.config import validate_run
from autonuma_jax.errors import ConfigError
from autonuma_jax.machine import PRESETS
from autonuma_jax.workloads import PERF_CASES, WORKLOADS, make_workload
from autonuma_jax.workloads.perf_bench_numa import ALIASES, PerfBench, parse_args, parse_list
from autonuma_jax.workloads.perf_figures import converged_rows, last_known_node, perf_figures, perf_text

M4 = PRESETS["4node_32cpu"]
MiB = 1 << 20


def test_case_arguments_expand_perf_macros():
    p = parse_args(PERF_CASES["4x4-convergence"])
    assert p == dict(nr_proc=4, nr_threads=4, mb_proc=512.0, nr_secs=100, init_cpu0=True, measure_convergence=True,
                     thp=1)
    p = parse_args(PERF_CASES["RAM-bw-remote"])
    assert p["cpus"] == "0" and p["memnodes"] == "1" and p["data_rand_walk"] is False and "init_cpu0" not in p
    assert parse_args(PERF_CASES["numa02-bw-NOTHP"])["thp"] == -1  # the last --thp wins, as in perf
    assert PERF_CASES["2x3-convergence"].startswith("-p 2 -t 3")
    assert {"1x3-convergence", "4x4-convergence", "4x8-convergence", "8x4-convergence", "1x4-convergence",
            "1x6-convergence", "2x16-bw-thread", "4x8-bw-thread", "8x1-bw-process", "numa01-bw-thread",
            "numa02-bw"} <= set(PERF_CASES)
    assert all(v in PERF_CASES for v in ALIASES.values())


def test_list_syntax():
    assert parse_list("0,2", 32, "-C", True) == [(0, 1), (2, 1)]
    assert parse_list("0x2", 4, "-M", False) == [(0, 1), (0, 1)]  # "0 twice", not hex
    assert parse_list("8_4-16#4", 32, "-C", True) == [(8, 4), (12, 4), (16, 4)]
    assert parse_list("1-3", 4, "-M", False) == [(1, 1), (2, 1), (3, 1)]
    with pytest.raises(ConfigError, match="Test not applicable, system has only 2 nodes"):
        parse_list("1,2", 2, "-M", False)
    with pytest.raises(ConfigError, match="'_len' is for CPU lists only"):
        parse_list("0_2", 4, "-M", False)


@pytest.mark.parametrize("kw, msg", [
    (dict(case="9x9-convergence"), "workload.case='9x9-convergence': must be one of"),
    (dict(case="custom", mb_proc=0, mb_thread=0), "one of them must be at least 4 KiB"),
    (dict(mb_global=64), r"workload.mb_global=64: must be in \[0, 1\] MiB"),
    (dict(nr_proc=0), r"workload.nr_proc=0: must be an integer in \[1, 4096\]"),
    (dict(thp=2), "workload.thp=2: must be -1"),
    (dict(case="custom", mb_proc=8, nr_secs=0), "the run has no end"),
])
def test_bad_parameters_are_one_line(kw, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        make_workload("perf_bench_numa", M4, **kw)
    assert "\n" not in str(e.value)


def test_refused_options_and_inapplicable_cases():
    with pytest.raises(ConfigError, match="-L: mb_proc_locked .* is not modelled"):
        parse_args("-p 1 -t 2 -P 64 -L 32")
    with pytest.raises(ConfigError, match="Test not applicable, system has only 24 CPUs"):
        make_workload("perf_bench_numa", PRESETS["2node_24cpu"], case="RAM-bw-cross", cpus="0,30")


def test_layouts_follow_perf():
    # -P: one process buffer shared by the threads, first-touched by thread 0 on node 0 (-0)
    wl = make_workload("perf_bench_numa", M4, case="4x8-convergence")
    assert wl.n_mms == 4 and wl.n_tasks == 32 and {p.mem_bytes for p in wl.processes} == {512 * MiB}
    t0, t1 = wl.threads[0], wl.threads[1]
    assert (t0.init_len, t0.init_bind_mask, t0.work_bind_mask, t0.cpus_allowed) == (512 * MiB, 1, 0, 0)
    assert t1.init_passes == 0 and t1.start_after == 0 and (t1.work_offset, t1.work_len) == (0, 512 * MiB)
    assert isinstance(wl.bench, PerfBench) and wl.bench.measure_convergence and wl.bench.nr_secs == 100
    # -T: private buffers, each first-touched by its own thread
    wl = make_workload("perf_bench_numa", M4, case="numa02-bw")
    assert wl.n_mms == 1 and wl.processes[0].mem_bytes == 32 * 32 * MiB
    t5 = wl.threads[5]
    assert (t5.init_offset, t5.init_len, t5.work_offset, t5.work_len) == (5 * 32 * MiB, 32 * MiB, 5 * 32 * MiB, 32 * MiB)
    assert t5.start_after == -1 and t5.init_bind_mask == 1
    # -P and -T together: a loop is one pass over each (a two-region cycle)
    wl = make_workload("perf_bench_numa", M4, case="custom", nr_proc=1, nr_threads=2, mb_proc=64, mb_thread=16, nr_loops=5)
    t = wl.threads[1]
    assert (t.work_offset, t.work_len, t.alt_offset, t.alt_len) == (80 * MiB, 16 * MiB, 0, 64 * MiB)
    assert (t.cycle_work, t.cycle_alt, t.work_passes) == (1, 1, 10) and wl.threads[0].init_len == 80 * MiB
    # -C / -M: CPU 8 is on node 1 of 4node_32cpu; the first tasks only
    wl = make_workload("perf_bench_numa", M4, case="RAM-bw-cross")
    assert [(t.cpus_allowed, t.work_bind_mask, t.init_bind_mask) for t in wl.threads] == [(1, 2, 2), (2, 1, 1)]
    wl = make_workload("perf_bench_numa", M4, case="RAM-bw-local-2x")
    assert [(t.cpus_allowed, t.work_bind_mask) for t in wl.threads] == [(1, 1), (1, 1)]
    # the binding policies' layout: each process on its own node
    wl = make_workload("perf_bench_numa", M4, "hard_bind", case="4x8-convergence")
    assert [wl.threads[8 * p].cpus_allowed for p in range(4)] == [1, 2, 4, 8]
    assert [wl.threads[8 * p].init_bind_mask for p in range(4)] == [1, 2, 4, 8]  # -0 replaced
    assert all(t.work_bind_mask == t.cpus_allowed for t in wl.threads)
    # processes that fit in a node stay on one: 8x4 two per node, 1x6 on node 0; 2x16 on 4 x 8 CPUs: blocks
    wl = make_workload("perf_bench_numa", M4, "hard_bind", case="8x4-convergence")
    assert [wl.threads[4 * p].cpus_allowed for p in range(8)] == [1, 1, 2, 2, 4, 4, 8, 8]
    assert {t.cpus_allowed for t in make_workload("perf_bench_numa", M4, "hard_bind", case="1x6-convergence").threads} == {1}
    wl = make_workload("perf_bench_numa", M4, "hard_bind", case="2x16-bw-thread")
    assert [t.cpus_allowed for t in wl.threads[::8]] == [1, 2, 4, 8]
    inv = make_workload("perf_bench_numa", M4, "inverse_bind", case="4x4-convergence")
    assert [(t.cpus_allowed, t.work_bind_mask) for t in inv.threads[::4]] == [(1, 4), (2, 8), (4, 1), (8, 2)]


def test_every_case_builds_on_4node_32cpu_and_nothp_needs_thp_off():
    for case in PERF_CASES:
        wl = make_workload("perf_bench_numa", M4, case=case)
        cfg = an.RunConfig(machine="4node_32cpu", workload=wl, policy="autonuma24")
        if case.endswith("NOTHP"):
            with pytest.raises(ConfigError, match="transparent_hugepage.enabled=1: must be 0 for perf_bench_numa"):
                validate_run(cfg)
            k = an.Knobs()
            k = replace(k, transparent_hugepage=replace(k.transparent_hugepage, enabled=0))
            validate_run(replace(cfg, knobs=k, sim=an.SimConfig(page_unit="4K")))
        else:
            validate_run(cfg)
    assert WORKLOADS["perf_bench_numa"].size_param == "mb_proc"


def _rows(task_node, total_kib, working, done=None, tick_ms=1000):
    r = len(task_node)
    return {"tick": np.arange(1, r + 1) * tick_ms, "task_node": np.asarray(task_node), "total_kib": np.asarray(total_kib),
            "tasks_working": np.asarray(working), "tasks_done": np.zeros(r, int) if done is None else np.asarray(done)}


def test_convergence_criterion_on_hand_made_rows():
    tn = np.array([[-1, -1, -1, -1], [0, 1, -1, 2], [0, -1, 2, 2], [1, 1, 2, 2]])
    assert last_known_node(tn).tolist() == [[-1, -1, -1, -1], [0, 1, -1, 2], [0, 1, 2, 2], [1, 1, 2, 2]]
    mm = np.array([0, 0, 1, 1])
    assert converged_rows(tn, mm, 2).tolist() == [False, False, False, True]
    # two processes on the same node also count as converged (perf does not ask for exclusivity)
    assert converged_rows(np.array([[3, 3, 3, 3]]), mm, 2).tolist() == [True]


def test_perf_figures_window_and_formulas():
    bench = PerfBench(case="t", nr_proc=2, nr_threads=2, mb_global=1, mb_proc=64, mb_thread=0, nr_loops=0, nr_secs=3,
                      thp=1, init_cpu0=True, measure_convergence=True, data_rand_walk=True)
    mm = np.array([0, 0, 1, 1])
    tn = [[0, 1, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]
    kib = [999, 999, 2 << 20, 2 << 20, 2 << 20, 2 << 20]
    working = [2, 4, 4, 4, 4, 4]  # the barrier: row 1 (t = 2 s)
    f = perf_figures(_rows(tn, kib, working), 0.001, np.full(4, -1), bench, mm)
    # checks at t = 3 s (row 2, converged): latency 1 s, and -m closes the window there
    assert f["perf_converged"] and f["perf_convergence_latency_s"] == pytest.approx(1.0)
    assert f["perf_runtime_max_s"] == pytest.approx(1.0) and not f["perf_cut_short"]
    gb = (2 << 20) * 1024 / 1e9
    assert f["perf_data_total_gb"] == pytest.approx(gb) and f["perf_data_thread_gb"] == pytest.approx(gb / 4)
    assert f["perf_thread_speed_gbs"] == pytest.approx(gb / 4) and f["perf_total_speed_gbs"] == pytest.approx(gb)
    assert f["perf_runtime_byte_thread_ns"] == pytest.approx(1e9 / (gb / 4 * 1e9))
    assert f["perf_spread_runtime_pct"] == 0
    # without -m: the window is nr_secs = 3 s long; two threads ran out of loops after 2 s
    nom = replace(bench, measure_convergence=False)
    ft = np.array([4000, 4000, -1, -1])
    f = perf_figures(_rows(tn, kib, working), 0.001, ft, nom, mm)
    assert f["perf_runtime_max_s"] == pytest.approx(3.0) and f["perf_data_total_gb"] == pytest.approx(3 * gb)
    assert f["perf_runtime_min_s"] == pytest.approx(2.0) and f["perf_runtime_avg_s"] == pytest.approx(2.5)
    assert f["perf_spread_runtime_pct"] == pytest.approx((3 - 2) / 2 / 3 * 100)
    # a simulation shorter than the window: flagged, figures over what was simulated
    f = perf_figures(_rows(tn[:4], kib[:4], working[:4]), 0.001, np.full(4, -1), replace(nom, nr_secs=10), mm)
    assert f["perf_cut_short"] and f["perf_runtime_max_s"] == pytest.approx(2.0)
    # never initialised: nothing to measure
    f = perf_figures(_rows(tn[:2], kib[:2], [1, 3]), 0.001, np.full(4, -1), bench, mm)
    assert f["perf_cut_short"] and math.isnan(f["perf_thread_speed_gbs"]) and not f["perf_converged"]
    assert "did not converge" in perf_text(f, "t")


SIM = an.SimConfig(duration_s=5, report_interval_ms=500)


@pytest.fixture(scope="module")
def small_runs():
    m = PRESETS["2node_24cpu"]
    cases = {"local": dict(case="RAM-bw-local", mb_proc=64, nr_secs=3),
             "remote": dict(case="RAM-bw-remote", mb_proc=64, nr_secs=3)}
    cfgs = [an.RunConfig(machine="2node_24cpu", workload=make_workload("perf_bench_numa", m, **kw), policy="none",
                         sim=SIM) for kw in cases.values()]
    conv = dict(case="custom", nr_proc=2, nr_threads=3, mb_proc=32, nr_secs=3, init_cpu0=True, measure_convergence=True)
    for pol in ("hard_bind", "autonuma24"):
        wl = make_workload("perf_bench_numa", m, "hard_bind" if pol == "hard_bind" else "default", **conv)
        cfgs.append(an.RunConfig(machine="2node_24cpu", workload=wl, policy=pol, sim=SIM))
    res = an.simulate(cfgs, progress=False)
    return {k: r.summary() for k, r in zip(["local", "remote", "hard_bind", "autonuma24"], res)}


def test_ram_bandwidth_follows_the_machine(small_runs):
    """One bound thread: local write bandwidth is the machine's single-thread figure, remote slower
    (memory bound to the other node cannot move: MPOL_BIND)."""
    loc, rem = small_runs["local"], small_runs["remote"]
    for s in (loc, rem):
        assert not s["perf_cut_short"] and s["perf_runtime_max_s"] == pytest.approx(3.0)
        assert s["perf_data_total_gb"] == pytest.approx(s["perf_total_speed_gbs"] * 3.0)
    assert loc["local_fraction_final"] == 1.0 and rem["local_fraction_final"] == 0.0
    assert 1.2 < loc["perf_thread_speed_gbs"] / rem["perf_thread_speed_gbs"] < 4
    assert loc["perf_thread_speed_gbs"] <= PRESETS["2node_24cpu"].thread_peak_gbs * 1.074  # GiB vs GB


def test_hard_bind_is_converged_at_the_first_check(small_runs):
    s = small_runs["hard_bind"]
    assert s["perf_converged"] and s["perf_convergence_latency_s"] == pytest.approx(1.0)
    assert s["perf_runtime_max_s"] == pytest.approx(1.0)  # -m: the window closes at convergence
    a = small_runs["autonuma24"]
    assert a["perf_runtime_max_s"] <= 3.0 + 1e-9 and a["perf_thread_speed_gbs"] > 0


def test_cli_composes_a_case():
    pytest.importorskip("hydra")
    from autonuma_jax.cli.job import prepare
    from cli_helpers import compose, to_dict
    runs = prepare(to_dict(compose(["workload=perf_bench_numa", "workload.params.case=8x1-bw-process",
                                    "machine=4node_32cpu", "policy=hard_bind"])))
    wl = runs[0].config.resolved_workload()
    assert wl.name == "perf_bench_numa.8x1-bw-process" and wl.n_mms == 8
    assert [t.cpus_allowed for t in wl.threads] == [1, 1, 2, 2, 4, 4, 8, 8]  # the policy's layout


def test_duration_ends_after_perfs_window():
    """perf exits after -s: a longer sim.duration_s is cut to nr_secs + 3 s (whole report rows)."""
    wl = make_workload("perf_bench_numa", M4, case="4x4-bw-thread")
    cfg = validate_run(an.RunConfig(machine="4node_32cpu", workload=wl, sim=an.SimConfig(duration_s=400)))
    assert cfg.sim.duration_s == 23.0
    cfg = validate_run(an.RunConfig(machine="4node_32cpu", workload=wl,
                                    sim=an.SimConfig(duration_s=400, report_interval_ms=2000)))
    assert cfg.sim.duration_s == 24.0
    cfg = validate_run(an.RunConfig(machine="4node_32cpu", workload=wl, sim=an.SimConfig(duration_s=10)))
    assert cfg.sim.duration_s == 10.0  # shorter: kept (the figures say perf_cut_short)


def test_job_writes_perfs_text_per_configuration(tmp_path):
    pd = pytest.importorskip("pandas")
    from autonuma_jax.cli.results import write_perf
    from autonuma_jax.workloads.perf_figures import FIGURES
    fig = {k: 1.5 for k in FIGURES} | {"perf_converged": True, "perf_cut_short": False}
    df = pd.DataFrame([dict(fig, config_index=0, label="m/perf_bench_numa.4x4-convergence/none/seed0",
                            workload="perf_bench_numa"),
                       {k: float("nan") for k in FIGURES} | dict(config_index=1, label="m/numa01/none/seed0",
                                                               workload="numa01")])
    files = write_perf(df, str(tmp_path))
    assert [f.rsplit("/", 1)[1] for f in files] == ["config_0000.txt"]  # only the perf configuration
    text = (tmp_path / "perf_bench_numa" / "config_0000.txt").read_text()
    assert "1.500 secs latency to NUMA-converge" in text and "1.500 GB/sec/thread speed" in text
