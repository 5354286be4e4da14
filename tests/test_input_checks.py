"""One checked type system for every entry point: the Python API, the command line, the in-process
sweep's parameters. Each bad value is one ConfigError line naming the field as the user wrote it,
before anything is built; values that are right but spelled loosely (2.0 for 2) are normalised."""
from __future__ import annotations

import dataclasses
import math
import time

import pytest

import autonuma_jax as an
from autonuma_jax.config import RunConfig, SimConfig, validate_run
from autonuma_jax.errors import ConfigError
from autonuma_jax.machine import get_machine

M = get_machine("2node_24cpu")


def m(**kw):
    return dataclasses.replace(M, **kw)


BAD = [
    (RunConfig(sim=SimConfig(report_interval_ms=math.inf)), "sim.report_interval_ms=inf"),
    (RunConfig(sim=SimConfig(tick_ms=math.nan)), "sim.tick_ms=nan"),
    (RunConfig(machine=m(n_nodes="2")), "machine.n_nodes='2': must be an integer"),
    (RunConfig(machine=m(n_nodes=2.5)), "machine.n_nodes=2.5: must be an integer"),
    (RunConfig(machine=m(distance=((10, 20), (20,)))), "machine.distance=((10, 20), (20,)): must be a 2x2 matrix"),
    (RunConfig(machine=m(distance=((10, 25.9), (25.9, 10)))), "matrix of integers"),
    (RunConfig(machine=m(distance="10 20 20 10")), "machine.distance='10 20 20 10': must be a 2x2 matrix"),
    (RunConfig(machine=m(cpus_per_node=4.5)), "machine.cpus_per_node=4.5: must be an integer"),
    (RunConfig(machine=m(cpus_per_node=100_000)), "machine.cpus_per_node=100000"),
    (RunConfig(machine=m(mem_per_node_mib="big")), "machine.mem_per_node_mib='big'"),
    (RunConfig(machine=m(node_bw_gbs="fast")), "machine.node_bw_gbs='fast': must be a finite number"),
    (RunConfig(machine=m(lat_local_ns=True)), "machine.lat_local_ns=True"),
    (RunConfig(sim=SimConfig(page_unit=["2M"])), "sim.page_unit=['2M']: must be one of"),
    (RunConfig(policy=["none"]), "policy=['none']: must be one of"),
    (RunConfig(sim=SimConfig(tick_ms=True)), "sim.tick_ms=True"),
    (RunConfig(sim=SimConfig(duration_s=True)), "sim.duration_s=True"),
    (RunConfig(sim=SimConfig(check_invariants="no")), "sim.check_invariants='no': must be true or false"),
    (RunConfig(sim=SimConfig(duration_s=1.1)), "sim.duration_s=1.1: must be a whole multiple of sim.report_interval_ms"),
    (RunConfig(seed=1.5), "seed=1.5"),
    (RunConfig(seed=True), "seed=True"),
    (RunConfig(machine=3), "machine=3: must be a preset name or a Machine"),
    (RunConfig(workload=7), "workload=7: must be a workload name or a Workload"),
    (RunConfig(knobs=an.with_overrides(an.Knobs(), {"numa_balancing.numa_balancing_scan_period_min_ms": 70000})),
     "numa_balancing.numa_balancing_scan_period_min_ms=70000: must be <= numa_balancing.numa_balancing_scan_period_max_ms"),
    (RunConfig(knobs=an.with_overrides(an.Knobs(), {"autonuma.knuma_scand.pages_to_scan": True})),
     "autonuma.knuma_scand.pages_to_scan=True"),
    (RunConfig(knobs=an.with_overrides(an.Knobs(), {"sched.noise_migrations_per_sec": math.inf})),
     "sched.noise_migrations_per_sec=inf"),
]


@pytest.mark.parametrize("cfg,needle", BAD, ids=[n.split(":")[0][:40] for _, n in BAD])
def test_bad_values_are_one_line_naming_the_field(cfg, needle):
    t = time.time()
    with pytest.raises(ConfigError) as e:
        validate_run(cfg)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg, msg
    assert time.time() - t < 5  # cheap bounds come first (no O(threads^2) walk before the size check)


def test_loose_but_right_values_are_normalised():
    cfg = validate_run(RunConfig(machine=m(n_nodes=2.0, cpus_per_node=12.0), seed=3.0,
                                 knobs=an.with_overrides(an.Knobs(), {"autonuma.knuma_scand.pages_to_scan": 4096.0}),
                                 sim=SimConfig(duration_s=2, check_invariants=0)))
    assert type(cfg.machine.n_nodes) is int and type(cfg.machine.cpus_per_node) is int and cfg.seed == 3
    assert type(cfg.knobs.autonuma.knuma_scand.pages_to_scan) is int
    assert cfg.sim.check_invariants is False and type(cfg.sim.duration_s) is float
    r = an.simulate([dataclasses.replace(cfg, machine="2node_24cpu", workload="numa02",
                                         sim=SimConfig(duration_s=1.0, report_interval_ms=500))])
    assert r[0].config.seed == 3


def test_a_batch_names_the_bad_configuration():
    cfgs = [RunConfig(), RunConfig(seed=-1)]
    with pytest.raises(ConfigError, match=r"^config\[1\]\.seed=-1"):
        an.simulate(cfgs)


def test_memory_is_checked_before_anything_is_allocated():
    from autonuma_jax.simulate import make_buckets
    from autonuma_jax.workloads import make_workload
    m8 = get_machine("8node_64cpu")
    cfg = RunConfig(machine="8node_64cpu", workload=make_workload("numa02", m8, size_mib=150_000), policy="autonuma24",
                    sim=SimConfig(page_unit="4K", duration_s=10))
    t = time.time()
    with pytest.raises(ConfigError) as e:
        make_buckets([cfg])
    msg = str(e.value)
    assert msg.startswith("memory: this batch needs ~") and "GiB" in msg and "may use" in msg, msg
    assert "queue rings" in msg and time.time() - t < 5


def test_the_memory_estimate_grows_with_the_batch():
    from autonuma_jax import resources
    from autonuma_jax.config import build_static
    s = build_static([validate_run(RunConfig())])
    assert resources.estimate(s, 8, 10) == pytest.approx(8 * resources.estimate(s, 1, 10), rel=0.01)
    assert resources.estimate(s, 1, 10) < 1 << 30  # a default run is small
