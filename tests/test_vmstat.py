"""The kernel's NUMA counters (vmstat.py): counted where the kernel counts them, consistent with
each other and with the state, NaN where the policy's kernel had no such counter, and dumped in
/proc/vmstat's format."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import autonuma_jax as an
from autonuma_jax.machine import PRESETS, Machine
from autonuma_jax.vmstat import (ALLOC_NAMES, AUTONUMA_SYSFS, BALANCING_NAMES, KERNEL_COUNTERS, autonuma_cost,
                                 kernel_counters,
                                 mmtests_figures, vmstat_text)
from autonuma_jax.workloads.autonuma_benchmark import numa01

SIM = an.SimConfig(duration_s=6, report_interval_ms=500)
POLICIES = ("autonuma24", "numa_balancing", "sched_numa", "numa_core", "none", "hard_bind", "inverse_bind")
ROW_COUNTERS = ("numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults_local", "numa_hit", "numa_miss",
                "numa_local", "numa_other")


@pytest.fixture(scope="module")
def runs():
    m = PRESETS["2node_24cpu"]
    def wl(p):  # the binding policies run their own builds of the benchmark
        return numa01(m, p if p in ("hard_bind", "inverse_bind") else "default", size=384 << 20, loops=6)
    cfgs = [an.RunConfig(machine="2node_24cpu", workload=wl(p), policy=p, sim=SIM) for p in POLICIES]
    return {r.config.policy: r for r in an.simulate(cfgs, progress=False)}


def test_rows_sum_to_the_run_totals(runs):
    for p, r in runs.items():
        for k in ROW_COUNTERS:
            assert int(np.asarray(r.rows[k]).sum()) == int(r.final[f"tot_{k}"]), (p, k)


def test_allocations_are_first_touches_plus_migrations(runs):
    """zone_statistics counts every page allocated once as hit or miss and once as local or other:
    each page of the workload is first-touched once, and each migration allocates its target."""
    for p, r in runs.items():
        s = r.summary()
        first_touched = sum(pr.mem_bytes for pr in r.config.workload.processes) // 4096
        allocated = first_touched + s["pages_migrated"]
        assert s["numa_hit"] + s["numa_miss"] == allocated, p
        assert s["numa_local"] + s["numa_other"] == allocated, p
        assert s["numa_foreign"] == s["numa_miss"] and s["numa_interleave"] == 0


def test_hint_faults_and_scanner_counters(runs):
    for p in ("numa_balancing", "sched_numa", "numa_core"):
        s = runs[p].summary()
        assert 0 < s["numa_hint_faults_local"] <= s["numa_hint_faults"], p
        assert s["numa_pte_updates"] > 0, p
        # 2 MiB units with THP on: every armed pmd is huge and counts its 512 pages
        assert s["numa_pte_updates"] == 512 * s["numa_huge_pte_updates"], p
        assert s["mmtests_pte_updates_base"] == 0
        assert math.isclose(s["mmtests_hint_local_pct"], 100 * s["numa_hint_faults_local"] / s["numa_hint_faults"])
        for k in AUTONUMA_SYSFS:
            assert math.isnan(s[k]), (p, k)


def test_autonuma24_has_its_sysfs_counters_and_no_balancing_vmstat(runs):
    s = runs["autonuma24"].summary()
    for k in BALANCING_NAMES:
        assert math.isnan(s[k]), k
    assert s["autonuma.knuma_scand.full_scans"] == s["full_scans"] > 0
    assert s["autonuma.knuma_scand.pages_scanned"] == s["pages_scanned"] > 0
    assert s["autonuma.knuma_migrated.pages_migrated"] == s["pages_migrated"] > 0
    # the engine still counts what its scanner did (rows), the summary hides it as the kernel did
    assert int(runs["autonuma24"].final["tot_numa_pte_updates"]) > 0


def test_baselines_count_no_balancing_but_allocation(runs):
    for p in ("none", "hard_bind", "inverse_bind"):
        s = runs[p].summary()
        for k in ("numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
                  "numa_pages_migrated"):
            assert s[k] == 0, (p, k)
        assert s["numa_hit"] > 0 and s["numa_miss"] == 0, p  # every node has room: no fallback
    # inverse bind (this build): process 0's memory bound to the other node than its CPUs
    s = runs["inverse_bind"].summary()
    assert math.isclose(s["numa_other"], 0.5 * (s["numa_local"] + s["numa_other"]), rel_tol=0.01)
    assert runs["hard_bind"].summary()["numa_other"] == 0


def test_cpu_only_node_allocations_miss():
    """A node without memory: its threads' first touches fall back to the other node (miss, other)."""
    m = Machine(name="cpu_only", n_nodes=2, cpus_per_node=4, threads_per_core=1, mem_per_node_mib=1024,
                distance=((10, 20), (20, 10)), lat_local_ns=80.0, lat_remote_ns=130.0, core_mlp=10.0,
                socket_mlp=20.0, node_bw_gbs=20.0, link_bw_gbs=10.0, node_mem_mib=(0, 1024)).validate()
    wl = numa01(m, "no_force", size=96 << 20, loops=2).validate(2)
    r = an.simulate([an.RunConfig(machine=m, workload=wl, policy="none", sim=SIM)], progress=False)[0]
    s = r.summary()
    assert s["numa_miss"] > 0 and s["numa_other"] > 0
    assert s["numa_hit"] + s["numa_miss"] == sum(p.mem_bytes for p in wl.processes) // 4096


def test_kernel_counters_nan_rules_and_derived_figures():
    tot = dict(numa_pte_updates=5120, numa_huge_pte_updates=8, hinting_faults=40, numa_hint_faults_local=30,
               numa_hit=100, numa_miss=5, numa_local=90, numa_other=15)
    c = kernel_counters(tot, "numa_balancing", 0, 0, 12)
    assert set(c) == set(KERNEL_COUNTERS)
    assert c["numa_pages_migrated"] == 12 and c["mmtests_pte_updates_base"] == 5120 - 512 * 8
    assert c["mmtests_hint_local_pct"] == 75.0
    a = kernel_counters(tot, "autonuma24", 3, 999, 12)
    assert math.isnan(a["numa_hint_faults"]) and a["autonuma.knuma_scand.full_scans"] == 3
    assert math.isnan(a["mmtests_hint_local_pct"])
    assert mmtests_figures({"numa_hint_faults": 0, "numa_hint_faults_local": 0})["mmtests_hint_local_pct"] == 100.0


@pytest.mark.parametrize("pte, hint, migrated, printed", [
    (1041416, 263296, 258021, 1328.67), (394429, 1001, 288, 7.77), (5948, 4639, 1528, 23.27),
    (556489407, 1538964, 7329212, 11729.5)])
def test_autonuma_cost_reproduces_published_mmtests_figures(pte, hint, migrated, printed):
    """mmtests compare reports posted to linux-mm (Ops rows, two decimals)."""
    c = {"numa_pte_updates": pte, "numa_hint_faults": hint, "numa_pages_migrated": migrated}
    assert round(autonuma_cost(c), 2) == pytest.approx(printed, abs=0.01)


def test_vmstat_dump_format():
    tot = dict(numa_pte_updates=5120, numa_huge_pte_updates=8, hinting_faults=40, numa_hint_faults_local=30,
               numa_hit=100, numa_miss=5, numa_local=90, numa_other=15)
    lines = vmstat_text(kernel_counters(tot, "numa_balancing", 0, 0, 12)).splitlines()
    assert [ln.split()[0] for ln in lines] == list(ALLOC_NAMES + BALANCING_NAMES)
    assert "numa_hint_faults 40" in lines and "numa_foreign 5" in lines
    assert all(len(ln.split()) == 2 and ln.split()[1].isdigit() for ln in lines)
    an_lines = vmstat_text(kernel_counters(tot, "autonuma24", 3, 999, 12)).splitlines()
    assert "numa_hint_faults 40" not in " ".join(an_lines)
    assert an_lines[-3:] == ["/sys/kernel/mm/autonuma/knuma_scand/full_scans 3",
                             "/sys/kernel/mm/autonuma/knuma_scand/pages_scanned 999",
                             "/sys/kernel/mm/autonuma/knuma_migrated/pages_migrated 12"]


def test_4k_pages_count_base_ptes():
    """pte-mode scanning on 4 KiB pages with THP off: no huge pmd, every update a base pte."""
    knobs = an.Knobs()
    knobs = replace(knobs, transparent_hugepage=replace(knobs.transparent_hugepage, enabled=0))
    m = PRESETS["2node_24cpu"]
    wl = numa01(m, size=48 << 20, loops=40)  # ~5 s: past the scanner's first delay
    sim = an.SimConfig(duration_s=6, report_interval_ms=500, page_unit="4K")
    r = an.simulate([an.RunConfig(machine="2node_24cpu", workload=wl, policy="numa_balancing", knobs=knobs, sim=sim)],
                    progress=False)[0]
    s = r.summary()
    assert s["numa_huge_pte_updates"] == 0 and s["numa_pte_updates"] > 0
    assert s["mmtests_pte_updates_base"] == s["numa_pte_updates"]
