"""Bad input is refused before any compile with one line naming the field, the value and the range."""
import dataclasses

import pytest

from autonuma_jax import ConfigError, Knobs, RunConfig, SimConfig, simulate, with_overrides
from autonuma_jax.config import validate_run
from autonuma_jax.machine import get_machine
from autonuma_jax.workloads import Process, Thread, Workload

from conftest import TINY2, mini


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("path,value,needle", [
    ("autonuma.enabled", 2, "autonuma.enabled=2: must be 0 or 1"),
    ("autonuma.knuma_scand.pages_to_scan", 0, "autonuma.knuma_scand.pages_to_scan=0: must be an integer in [1,"),
    ("autonuma.knuma_migrated.pages_to_migrate", -5, "pages_to_migrate=-5"),
    ("autonuma.knuma_scand.scan_sleep_millisecs", -1, "scan_sleep_millisecs=-1"),
    ("autonuma.knuma_migrated.allow_first_fault", 1.5, "allow_first_fault=1.5"),
    ("autonuma.scheduler.load_balance_strict", True, "load_balance_strict=True"),
    ("sched.noise_migrations_per_sec", float("nan"), "noise_migrations_per_sec=nan"),
    ("costs.migrate_per_page_ns", "fast", "migrate_per_page_ns='fast'"),
])
def test_bad_knob(path, value, needle):
    cfg = RunConfig(knobs=with_overrides(Knobs(), {path: value}))
    with pytest.raises(ConfigError) as e:
        validate_run(cfg)
    assert needle in one_line(e)


def test_unknown_knob_names_the_path():
    with pytest.raises(ConfigError) as e:
        with_overrides(Knobs(), {"autonuma.knuma_scand.pages_to_scann": 1})
    assert "pages_to_scann" in one_line(e)


@pytest.mark.parametrize("field,value,needle", [
    ("tick_ms", 0, "sim.tick_ms=0"),
    ("duration_s", -1, "sim.duration_s=-1"),
    ("page_unit", "1G", "sim.page_unit='1G'"),
    ("report_interval_ms", 1.5, "sim.report_interval_ms=1.5"),
])
def test_bad_sim(field, value, needle):
    cfg = RunConfig(sim=dataclasses.replace(SimConfig(), **{field: value}))
    with pytest.raises(ConfigError) as e:
        validate_run(cfg)
    assert needle in one_line(e)


@pytest.mark.parametrize("change,needle", [
    (dict(distance=((10, 20), (20, 12))), "diagonal"),
    (dict(distance=((10, 9), (9, 10))), "in (10, 254]"),
    (dict(distance=((10, 20, 20), (20, 10, 20), (20, 20, 10))), "must be a 2x2 matrix (n_nodes = 2)"),
    (dict(cpus_per_node=0), "machine.cpus_per_node=0"),
    (dict(mem_per_node_mib=0), "machine.mem_per_node_mib=0"),
    (dict(mem_per_node_mib=1023), "whole 2 MiB page units"),
    (dict(node_bw_gbs=0), "machine.node_bw_gbs=0"),
    (dict(core_mlp=40.0), "machine.core_mlp=40.0"),
    (dict(socket_mlp=0.5), "machine.socket_mlp=0.5"),
    (dict(lat_local_ns=5.0), "machine.lat_local_ns=5.0"),
    (dict(lat_remote_ns=50.0), "machine.lat_remote_ns=50.0: must be a latency in [lat_local_ns"),
    (dict(bzero_traffic=2.5), "machine.bzero_traffic=2.5"),
    (dict(link_bw_gbs=0.0), "machine.link_bw_gbs=0.0"),
    (dict(latency_ns=((70, 90, 1), (90, 70, 1))), "machine.latency_ns"),
    (dict(link_matrix_gbs=((0, 0.01), (12.8, 0))), "machine.link_matrix_gbs"),
])
def test_bad_machine(change, needle):
    m = dataclasses.replace(TINY2, **change)
    with pytest.raises(ConfigError) as e:
        validate_run(RunConfig(machine=m, workload="numa02"))
    assert needle in one_line(e)


def test_workload_too_big_says_by_how_much():
    with pytest.raises(ConfigError) as e:
        validate_run(RunConfig(machine=TINY2, workload="numa01"))  # 2 x 3 GiB on a 2 GiB machine
    msg = one_line(e)
    assert "needs 6.00 GiB" in msg and "short by" in msg


def test_bad_workload_fields():
    wl = Workload(name="w", processes=(Process(mem_bytes=1 << 26),),
                  threads=(Thread(mm=3, work_offset=0, work_len=1 << 20, work_passes=1),))
    with pytest.raises(ConfigError) as e:
        validate_run(RunConfig(machine=TINY2, workload=wl))
    assert "threads[0].mm=3" in one_line(e)


def test_unknown_names():
    for cfg, needle in [(RunConfig(machine="3node"), "machine='3node'"),
                        (RunConfig(workload="numa03"), "workload='numa03'"),
                        (RunConfig(policy="autonuma25"), "policy='autonuma25'")]:
        with pytest.raises(ConfigError) as e:
            validate_run(cfg)
        assert needle in one_line(e)


def test_batch_error_names_index_and_config_and_nothing_runs():
    good = mini(duration_s=1.0)
    bad = mini(duration_s=1.0, knobs={"autonuma.knuma_migrated.defer": 7}, seed=5)
    with pytest.raises(ConfigError) as e:
        simulate([good, good, bad])
    msg = one_line(e)
    assert msg.startswith("config[2].") and "defer=7" in msg and "seed5" in msg
