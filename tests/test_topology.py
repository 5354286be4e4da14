"""Machines from topology files (numactl --hardware, sysfs, hwloc XML) and uneven machines in the
engine: parsing on real-format fixtures (tests/fixtures/topology), one-line errors, the physics
borrowed and marked uncalibrated, and simulations on uneven, memory-only and CPU-only nodes."""
from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import autonuma_jax as an
from autonuma_jax.errors import ConfigError
from autonuma_jax.machine import PRESETS, Machine
from autonuma_jax.topology import load, parse_hwloc, parse_numactl, read_sysfs, to_machine
from autonuma_jax.workloads import Process, Thread, Workload
from autonuma_jax.workloads.autonuma_benchmark import numa01, numa02

FIX = Path(__file__).parent / "fixtures" / "topology"


def test_numactl_two_nodes_interleaved_cpu_numbers():
    t = parse_numactl((FIX / "numactl_2node_slit20.txt").read_text())
    assert t.node_ids == (0, 1) and t.cpus[0] == (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17)
    assert t.mem_mib == (8192, 8192) and t.distance == ((10, 20), (20, 10)) and t.threads_per_core is None
    m = to_machine(t, threads_per_core=2)  # numactl cannot show SMT: the user says so
    assert (m.n_nodes, m.n_cpus, m.threads_per_core) == (2, 24, 2) and not m.uneven
    assert m.calibration.startswith("uncalibrated") and "2node_24cpu" in m.calibration
    # same shape and physics as the preset of this box: the engine sees the same numbers
    p = PRESETS["2node_24cpu"]
    assert np.array_equal(m.cpu_node(), p.cpu_node()) and np.array_equal(m.node_pages, p.node_pages)
    assert m.thread_peak_gbs == p.thread_peak_gbs


def test_numactl_opteron_slit_two_hops():
    m = load(str(FIX / "numactl_4node_opteron.txt"))
    assert m.distance[0] == (10, 16, 16, 22) and m.mib_of_nodes().tolist() == [16382, 16384, 16384, 16368]
    lat = m.latency_matrix()  # SLIT 22 is two hops of 16: twice the remote step
    assert math.isclose(lat[0, 3] - lat[0, 0], 2 * (lat[0, 1] - lat[0, 0]), rel_tol=1e-9)


def test_numactl_eight_uneven_nodes():
    m = load(str(FIX / "numactl_8node_uneven.txt"), name="m6_uneven")
    assert m.name == "m6_uneven" and m.uneven and m.n_cpus == 64
    assert m.mib_of_nodes().tolist() == [32764] + [32768] * 5 + [65536] * 2  # 32765 MB: whole 2 MiB units
    assert m.groups == 2 and m.lat_group_ns == PRESETS["8node_64cpu"].lat_group_ns  # physics of its class
    mn, low, high = m.watermarks_pages()  # each node's share of min_free_kbytes follows its size
    assert mn[6] == 2 * mn[1] and np.all(low > mn) and np.all(high > low)
    assert np.array_equal(m.node_pages, m.mib_of_nodes() * 256)


def test_numactl_cpuless_node_and_numbering_hole():
    m = load(str(FIX / "numactl_cpuless_node.txt"))
    assert m.node_ids == (0, 1, 2, 4) and m.cpus_of_nodes().tolist() == [8, 8, 8, 0]
    assert m.node_label(3) == 4 and m.cpu_nodes_mask() == 0b0111
    assert 3 not in m.cpu_node().tolist() and m.distance[3] == (31, 31, 31, 10)
    assert "numbered 0,1,2,4" in m.description


def test_sysfs_copy_with_smt_siblings(tmp_path):
    t = read_sysfs(str(FIX / "sysfs_2node_smt"))
    assert t.cpus == ((0, 1, 4, 5), (2, 3, 6, 7)) and t.threads_per_core == 2
    assert t.mem_mib == (3934, 4096) and t.distance == ((10, 21), (21, 10))
    # the node directory alone (no cpu/ beside it): SMT unknown, the rest the same
    shutil.copytree(FIX / "sysfs_2node_smt" / "node", tmp_path / "node")
    t2 = read_sysfs(str(tmp_path / "node"))
    assert t2.threads_per_core is None and t2.cpus == t.cpus and t2.mem_mib == t.mem_mib


def test_hwloc2_and_hwloc1():
    t = parse_hwloc((FIX / "hwloc2_2node_smt.xml").read_text())
    assert t.node_ids == (0, 1) and t.threads_per_core == 2
    assert t.cpus == ((0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15))
    assert t.mem_mib == (16384, 16378) and t.distance == ((10, 21), (21, 10))
    t1 = parse_hwloc((FIX / "hwloc1_4node.xml").read_text())
    assert t1.distance[0] == (10, 16, 16, 22) and t1.threads_per_core == 1
    assert t1.mem_mib == (4096,) * 4  # hugetlb page_type reserves left out


def test_three_formats_agree_on_one_box(tmp_path):
    sys_t = read_sysfs(str(FIX / "sysfs_2node_smt"))
    text = ("available: 2 nodes (0-1)\nnode 0 cpus: 0 1 4 5\nnode 0 size: 3934 MB\nnode 0 free: 3000 MB\n"
            "node 1 cpus: 2 3 6 7\nnode 1 size: 4096 MB\nnode 1 free: 3900 MB\n"
            "node distances:\nnode   0   1 \n  0:  10  21 \n  1:  21  10 \n")
    (tmp_path / "hw.txt").write_text(text)
    a = load(str(tmp_path / "hw.txt"), threads_per_core=2, name="box")
    b = to_machine(sys_t, name="box")
    for f in ("n_nodes", "node_cpus", "node_mem_mib", "distance", "threads_per_core", "lat_local_ns", "calibration"):
        assert getattr(a, f) == getattr(b, f), f


@pytest.mark.parametrize("text, field", [
    ("hello\n", "no 'available: N nodes' line"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 64 MB\nnode 1 cpus: 1\nnode 1 size: 64 MB\n",
     "no 'node distances:' matrix"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0 1\nnode 0 size: 64 MB\nnode 1 cpus: 1\nnode 1 size: 64 MB\n"
     "node distances:\nnode 0 1\n 0: 10 20\n 1: 20 10\n", "CPU 1 is listed on node 0 and node 1"),
    ("available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 64 MB\nnode 1 cpus: 1\n"
     "node distances:\nnode 0 1\n 0: 10 20\n 1: 20 10\n", "node 1 has no 'node 1 size"),
    ("available: 2 nodes (0-1)\nnode 0 cpus:\nnode 0 size: 64 MB\nnode 1 cpus:\nnode 1 size: 64 MB\n"
     "node distances:\nnode 0 1\n 0: 10 20\n 1: 20 10\n", "no node has CPUs"),
])
def test_numactl_errors_are_one_line(text, field):
    with pytest.raises(ConfigError, match=field) as e:
        parse_numactl(text)
    assert "\n" not in str(e.value)


def test_file_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"machine.path=.*no such file"):
        load(str(tmp_path / "missing.txt"))
    (tmp_path / "x.txt").write_text("just text\n")
    with pytest.raises(ConfigError, match="set machine.format"):
        load(str(tmp_path / "x.txt"))
    with pytest.raises(ConfigError, match="machine.format='lstopo'"):
        load(str(tmp_path / "x.txt"), "lstopo")
    (tmp_path / "bad.xml").write_text("<?xml version='1.0'?><topology><object type='Machine'/></topology>")
    with pytest.raises(ConfigError, match="no NUMANode"):
        load(str(tmp_path / "bad.xml"))
    (tmp_path / "broken.xml").write_text("<?xml version='1.0'?><topology><object")
    with pytest.raises(ConfigError, match="not XML"):
        load(str(tmp_path / "broken.xml"))
    shutil.copytree(FIX / "sysfs_2node_smt", tmp_path / "sys")
    (tmp_path / "sys" / "node" / "node1" / "meminfo").unlink()
    with pytest.raises(ConfigError, match="node1 lacks meminfo"):
        load(str(tmp_path / "sys"))
    with pytest.raises(ConfigError, match=r"threads_per_core=4 does not divide.*\[8, 8, 8, 0\]|"
                                          r"threads_per_core=3 does not divide"):
        load(str(FIX / "numactl_cpuless_node.txt"), threads_per_core=3)
    with pytest.raises(ConfigError, match="machine.physics_from='nope'"):
        load(str(FIX / "numactl_2node_slit20.txt"), physics_from="nope")
    with pytest.raises(ConfigError, match="machine.node_bw_gbs"):
        load(str(FIX / "numactl_2node_slit20.txt"), node_bw_gbs=0.0)


def test_given_physics_replaces_the_borrowed_and_says_so():
    m = load(str(FIX / "numactl_2node_slit20.txt"), node_bw_gbs=25.0, lat_local_ns=85.0)
    assert m.node_bw_gbs == 25.0 and m.lat_local_ns == 85.0
    assert m.calibration.endswith("except lat_local_ns, node_bw_gbs (given)")
    m2 = load(str(FIX / "numactl_2node_slit20.txt"), calibration="calibrated")
    assert m2.calibration == "calibrated"


def test_machine_validation_of_per_node_fields():
    base = PRESETS["2node_24cpu"]
    with pytest.raises(ConfigError, match=r"machine.node_cpus=.*list of 2 integers"):
        replace(base, node_cpus=(12,)).validate()
    with pytest.raises(ConfigError, match=r"machine.node_mem_mib.*0 \(a CPU-only node\) or an even number"):
        replace(base, node_mem_mib=(8192, 33)).validate()
    with pytest.raises(ConfigError, match="dividing every node's CPU count"):
        replace(base, node_cpus=(12, 11)).validate()
    with pytest.raises(ConfigError, match=r"machine.node_cpus\[1\]"):
        replace(base, node_cpus=(12, -1)).validate()


def test_presets_keep_their_numbers():
    """Uniform machines: the per-node arrays equal the old scalars (results of presets unchanged)."""
    import math as _m
    for m in PRESETS.values():
        assert m.node_cpus is None and m.calibration == "calibrated"
        assert np.array_equal(m.cpu_node(), np.repeat(np.arange(m.n_nodes), m.cpus_per_node))
        total_kb = m.n_nodes * m.mem_per_node_mib * 1024
        per = int(min(65536, max(128, _m.isqrt(total_kb * 16)))) // 4 // m.n_nodes
        assert m.watermarks_pages()[0].tolist() == [per] * m.n_nodes


SIM = an.SimConfig(duration_s=20, report_interval_ms=500, check_invariants=True)


def test_uneven_machine_runs_every_policy_with_invariants():
    """A CPU-less (memory-only) node with a numbering hole: every policy runs with the invariants
    checked in the compiled code, no thread ever runs on the CPU-less node, binding variants too."""
    m = load(str(FIX / "numactl_cpuless_node.txt"))
    m = replace(m, node_mem_mib=(1024, 1024, 1024, 2048)).validate()
    wl1 = numa01(m, size=192 << 20, loops=4).validate(m.n_nodes)
    cfgs = [an.RunConfig(machine=m, workload=wl1, policy=p, sim=SIM)
            for p in ("autonuma24", "numa_balancing", "sched_numa", "numa_core", "none", "hard_bind")]
    cfgs.append(an.RunConfig(machine=m, workload=numa02(m, "hard_bind", size=96 << 20, loops=40).validate(m.n_nodes),
                             policy="hard_bind", sim=SIM))
    res = an.simulate(cfgs, progress=False)
    for r in res:
        assert r.summary()["finished"], r.config.policy
        assert not np.any(np.asarray(r.rows["task_node"]) == 3), r.config.policy
    # numa02 hard bind: threads spread over the three nodes with CPUs only
    wl2 = numa02(m, "hard_bind")
    assert {t.cpus_allowed for t in wl2.threads[1:]} == {1, 2, 4}


def test_binding_to_a_cpuless_node_is_refused():
    m = load(str(FIX / "numactl_cpuless_node.txt"))
    wl = Workload(name="bound", processes=(Process(mem_bytes=64 << 20),),
                  threads=(Thread(mm=0, work_offset=0, work_len=64 << 20, work_passes=1, cpus_allowed=0b1000),))
    with pytest.raises(ConfigError, match=r"thread 0 may run only on node\(s\) \[4\], which have no CPUs"):
        an.simulate([an.RunConfig(machine=m, workload=wl, policy="none", sim=SIM)], progress=False)


def test_cpu_only_node_never_gets_memory():
    m = Machine(name="cpu_only", n_nodes=2, cpus_per_node=4, threads_per_core=1, mem_per_node_mib=1024,
                distance=((10, 20), (20, 10)), lat_local_ns=80.0, lat_remote_ns=130.0, core_mlp=10.0,
                socket_mlp=20.0, node_bw_gbs=20.0, link_bw_gbs=10.0, node_mem_mib=(0, 1024)).validate()
    # numa01's forced node would MPOL_BIND the memory to node 0: refused (it holds nothing), so
    # the build without the force, where first touch falls back from node 0 to node 1
    with pytest.raises(ConfigError, match="bind mask 0x1 holds 0.00 GiB"):
        an.simulate([an.RunConfig(machine=m, workload=numa01(m, size=96 << 20, loops=3).validate(2), sim=SIM)],
                    progress=False)
    wl = numa01(m, "no_force", size=96 << 20, loops=3).validate(2)
    res = an.simulate([an.RunConfig(machine=m, workload=wl, policy=p, sim=SIM)
                       for p in ("autonuma24", "numa_balancing")], progress=False)
    for r in res:
        assert r.summary()["finished"]
        assert np.all(np.asarray(r.rows["mm_node_pages"])[:, :, 0] == 0)
        assert r.summary()["local_fraction_final"] < 0.75  # node 0's threads can only reach node 1


# ---- the command line: machine=from_file -------------------------------------------------

def _cli_runs(overrides):
    pytest.importorskip("hydra")
    from autonuma_jax.cli.job import prepare
    from cli_helpers import compose, to_dict
    return prepare(to_dict(compose(overrides)))


def test_cli_machine_from_file_composes_with_overrides():
    from autonuma_jax.cli.build import describe
    runs = _cli_runs(["machine=from_file", f"machine.path={FIX / 'numactl_8node_uneven.txt'}", "machine.name=m6",
                      "machine.node_bw_gbs=12.0", "policy=numa_balancing"])
    m = runs[0].config.resolved_machine()
    assert (m.name, m.n_nodes, m.node_bw_gbs) == ("m6", 8, 12.0)
    row = describe(runs[0])
    assert row["machine.node_mem_mib"] == "32764 32768 32768 32768 32768 32768 65536 65536"
    assert row["machine.calibration"].startswith("uncalibrated") and "node_bw_gbs (given)" in row["machine.calibration"]


@pytest.mark.parametrize("overrides, msg", [
    (["machine=from_file"], "machine=from_file needs machine.path"),
    (["machine=from_file", "machine.path=/nonexistent/x.txt"], "no such file"),
    (["machine=from_file", f"machine.path={FIX / 'numactl_2node_slit20.txt'}", "machine.cpus_per_node=4"],
     "machine.cpus_per_node: comes from machine.path"),
    (["machine.path=" + str(FIX / "numactl_2node_slit20.txt")], "not both"),
    (["machine.format=numactl"], "only used with machine.path"),
])
def test_cli_machine_from_file_errors(overrides, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        _cli_runs(overrides)
    assert "\n" not in str(e.value)
