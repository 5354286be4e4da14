"""The dated builds of the autonuma-benchmark (workloads/autonuma_benchmark.py BUILDS): what each
compiled for the unbound run and for INVERSE_BIND, checked on the placement the workload asks for
(bind masks, cpus_allowed, the main thread's split first touch), not by running it."""
from __future__ import annotations

import pytest

from autonuma_jax import RunConfig
from autonuma_jax.config import validate_run
from autonuma_jax.errors import ConfigError
from autonuma_jax.machine import get_machine
from autonuma_jax.workloads import BUILDS, build_variant, make_workload

M2 = get_machine("2node_24cpu")
M4 = get_machine("4node_32cpu")


def wl(name, policy, build, machine="2node_24cpu", seed=0):
    return RunConfig(machine=machine, workload=name, policy=policy, build=build, seed=seed).resolved_workload()


@pytest.mark.parametrize("build,forced,ta_forced,both,split", [
    ("2012-03", True, False, True, True),
    ("2012-06-06", False, False, False, False),
    ("2012-07-05", True, False, False, False),
    ("2012-07-15", True, True, False, False),
    ("latest", True, True, False, False),
])
def test_build_table(build, forced, ta_forced, both, split):
    assert build_variant("numa01", "default", build) == ("default" if forced else "no_force")
    assert build_variant("numa01_THREAD_ALLOC", "default", build) == ("default" if ta_forced else "no_force")
    assert build_variant("numa01", "inverse_bind", build) == ("inverse_bind_both" if both else "inverse_bind")
    assert build_variant("numa02", "default", build) == ("split_init" if split else "default")
    assert build_variant("numa01", "hard_bind", build) == "hard_bind"  # explicit variants pass through
    assert build_variant("stream", "default", build) == "default"


def test_forced_init_binds_every_thread_to_one_node():
    w = wl("numa01", "none", "latest")
    masks = {t.init_bind_mask for t in w.threads}
    assert len(masks) == 1 and bin(masks.pop()).count("1") == 1
    w = wl("numa01_THREAD_ALLOC", "none", "2012-03")  # March 2012: THREAD_ALLOC not forced
    assert {t.init_bind_mask for t in w.threads} == {0}


def test_inverse_bind_one_direction_and_both():
    one = wl("numa01", "inverse_bind", "latest")
    both = wl("numa01", "inverse_bind", "2012-03")
    T = len(one.threads) // 2
    # process 0 runs on the first half, process 1 on the second half, in both builds
    for w in (one, both):
        assert {t.cpus_allowed for t in w.threads[:T]} == {0b01} and {t.cpus_allowed for t in w.threads[T:]} == {0b10}
    # 2012-06-06 on: both memories on the second half (process 1 stays local)
    assert {t.work_bind_mask for t in one.threads} == {0b10}
    # the original: each process's memory on the other half
    assert {t.work_bind_mask for t in both.threads[:T]} == {0b10}
    assert {t.work_bind_mask for t in both.threads[T:]} == {0b01}


def test_numa02_split_first_touch_of_the_january_source():
    split = wl("numa02", "none", "2012-03")
    later = wl("numa02", "none", "latest")
    main_split, main_later = split.threads[0], later.threads[0]
    assert main_split.init_bind_by_slice and not main_later.init_bind_by_slice
    # the workers are not bound in either
    assert {t.cpus_allowed for t in split.threads[1:]} == {0} and {t.work_bind_mask for t in split.threads[1:]} == {0}


def test_unknown_build_is_one_line_error():
    with pytest.raises(ConfigError, match=r"workload.build='1999': must be one of"):
        validate_run(RunConfig(workload="numa01", build="1999"))
    with pytest.raises(ConfigError, match="workload.build"):
        make_workload("numa01", M2, build="nope")


def test_build_is_ignored_by_other_workloads():
    assert make_workload("stream", M2, build="2012-03") == make_workload("stream", M2)


def test_every_build_validates_on_four_nodes():
    for b in BUILDS:
        for name in ("numa01", "numa01_THREAD_ALLOC", "numa02", "numa02_SMT"):
            for policy in ("none", "hard_bind", "inverse_bind"):
                validate_run(RunConfig(machine="4node_32cpu", workload=name, policy=policy, build=b))
