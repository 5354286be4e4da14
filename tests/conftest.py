"""Shared fixtures: small machines and shrunken benchmark instances that run in seconds on a CPU."""
from __future__ import annotations

import gc
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# In-process CLI jobs must not turn on JAX's persistent compilation cache for the rest of the session
# (it is process-global, and its default folder is in the user's home); subprocess jobs get one
# (pytest_configure below).
os.environ["AUTONUMA_JAX_CACHE_DIR"] = ""

import pytest

from autonuma_jax import Knobs, RunConfig, SimConfig, with_overrides
from autonuma_jax.machine import Machine
from autonuma_jax.workloads import numa01, numa02

TINY2 = Machine(name="tiny2", n_nodes=2, cpus_per_node=4, threads_per_core=2, mem_per_node_mib=1024,
                distance=((10, 20), (20, 10)), lat_local_ns=70.0, lat_remote_ns=130.0, core_mlp=10.0,
                socket_mlp=12.0, node_bw_gbs=20.0, link_bw_gbs=12.8, bzero_traffic=2.0,
                description="test machine: 2 nodes x 4 CPUs, 2 GiB")
TINY4 = Machine(name="tiny4", n_nodes=4, cpus_per_node=2, threads_per_core=1, mem_per_node_mib=512,
                distance=((10, 16, 16, 22), (16, 10, 22, 16), (16, 22, 10, 16), (22, 16, 16, 10)),
                lat_local_ns=100.0, lat_remote_ns=142.0, core_mlp=10.0, socket_mlp=16.0, node_bw_gbs=11.0,
                link_bw_gbs=3.5, bzero_traffic=1.0,
                description="test machine: 4 nodes x 2 CPUs, 2 GiB, Opteron-like SLIT")

MiB = 1 << 20

# Faster daemons so that a few simulated seconds exercise every mechanism.
FAST = {
    "autonuma.knuma_scand.scan_sleep_pass_millisecs": 1000,
    "autonuma.knuma_scand.pages_to_scan": 8192,
    "autonuma.knuma_migrated.pages_to_migrate": 4096,
}


def mini(machine=TINY2, bench="numa01", policy="autonuma24", seed=0, duration_s=4.0, knobs=None,
         page_unit="2M", variant="default", report_ms=250.0, size_mib=None, loops=None, **sim):
    """A shrunken benchmark instance as a RunConfig."""
    from autonuma_jax.config import POLICIES
    v = POLICIES[policy][1] or variant
    fn = int((seed * 2654435761 >> 7) & 1)
    if bench == "numa01":
        wl = numa01(machine, v, force_node=fn, size=(size_mib or 128) * MiB, loops=loops or 20)
    elif bench == "numa01_THREAD_ALLOC":
        wl = numa01(machine, v, thread_alloc=True, force_node=fn, size=(size_mib or 128) * MiB, loops=loops or 40)
    elif bench == "numa02":
        wl = numa02(machine, v, size=(size_mib or 64) * MiB, loops=loops or 600)
    elif bench == "numa02_SMT":
        wl = numa02(machine, v, smt=True, size=(size_mib or 64) * MiB, loops=loops or 400)
    else:
        raise ValueError(bench)
    k = with_overrides(Knobs(), {**FAST, **(knobs or {})})
    return RunConfig(machine=machine, workload=wl, policy=policy, knobs=k, seed=seed,
                     sim=SimConfig(duration_s=duration_s, report_interval_ms=report_ms, page_unit=page_unit, **sim))


@pytest.fixture
def tiny2():
    return TINY2


@pytest.fixture
def tiny4():
    return TINY4


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Free every compiled executable after each test module. On the CPU backend an executable keeps
    its machine code in memory mappings; over the whole suite these reached vm.max_map_count (65530)
    and XLA aborted inside a later compile (SIGSEGV/SIGABRT in backend_compile_and_load)."""
    yield
    from autonuma_jax.simulate import release_compiled
    release_compiled()
    gc.collect()


def pytest_configure(config):
    """One persistent XLA compilation cache for the CLI subprocesses of the session (cli_helpers.cli_env):
    they run the same one-configuration shape, so it is compiled once per worker, not once per test
    module. (In-process tests keep no persistent cache: measured on four modules, a cold one saved
    nothing, their shapes do not repeat across modules.) AUTONUMA_TEST_XLA_CACHE names the folder
    (default: a private one in the temporary directory, kept between sessions: entries are keyed by
    the program and the jax/XLA versions); AUTONUMA_TEST_XLA_CACHE=off: one cache per module."""
    import tempfile
    where = os.environ.get("AUTONUMA_TEST_XLA_CACHE", "")
    if where == "off":
        return
    if not where:
        where = os.path.join(tempfile.gettempdir(), f"autonuma-test-xla-{os.getuid()}")
    # one folder per xdist worker: jax writes an entry in place, and a worker could read another's
    # half-written file
    where = os.path.join(where, os.environ.get("PYTEST_XDIST_WORKER", "main"))
    os.makedirs(where, mode=0o700, exist_ok=True)
    os.chmod(os.path.dirname(where), 0o700)
    os.environ["AUTONUMA_TEST_XLA_DIR"] = where


# AUTONUMA_TEST_COMPILE_LOG=FILE: for every test, the seconds jax spent tracing, lowering and compiling
# (jax.monitoring's compile events) and how many programs it compiled, written as JSON lines to FILE
# (one file per xdist worker: FILE.<worker>). Tells which tests pay for compiling, not running.
_COMPILE_EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
                   "/jax/core/compile/backend_compile_duration": "compile_s"}
_compile_now: dict = {}


def _on_compile_event(event, duration, **_):
    key = _COMPILE_EVENTS.get(event)
    if key is not None and _compile_now:
        _compile_now[key] = _compile_now.get(key, 0.0) + duration
        if key == "compile_s":
            _compile_now["programs"] = _compile_now.get("programs", 0) + 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    path = os.environ.get("AUTONUMA_TEST_COMPILE_LOG", "")
    if not path:
        yield
        return
    import json
    import time
    if not getattr(pytest_runtest_protocol, "registered", False):
        import jax.monitoring
        jax.monitoring.register_event_duration_secs_listener(_on_compile_event)
        pytest_runtest_protocol.registered = True
    _compile_now.clear()
    _compile_now.update(test=item.nodeid, programs=0)
    t0 = time.perf_counter()
    yield
    _compile_now["wall_s"] = time.perf_counter() - t0
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(f"{path}.{worker}", "a") as f:
        f.write(json.dumps(_compile_now) + "\n")
    _compile_now.clear()


# Every module, longest first (seconds of one serial run on a 2-core machine, `pytest --durations`,
# 2026-12-03); scripts/test.sh runs xdist with --no-loadscope-reorder so that the workers take the
# modules in this order (longest-processing-time first: the two workers finish close together). By
# default xdist's loadfile orders modules by their number of tests, which started three of the
# longest in the last third of a run. A module missing here runs last.
LONGEST_FIRST = ("test_lockstep", "test_engine_properties", "test_slurm_jobs", "test_policies_upstream",  # 425-215
                 "test_cli_tune", "test_smoke", "test_vmstat", "test_tune", "test_workloads",  # 205-150
                 "test_preempt", "test_cli_run", "test_topology", "test_failure_paths", "test_cli_inprocess",  # 142-104
                 "test_devices", "test_memsys", "test_validate", "test_fuzz", "test_retire", "test_cli_sweep_outputs",  # 93-63
                 "test_cli_checks", "test_perf_bench_numa", "test_api", "test_input_checks", "test_checkpoint",  # 60-25
                 "test_slurm_basic", "test_rules", "test_analysis", "test_builds", "test_validation",
                 "test_rng", "test_ops", "test_slurm_state_dir", "test_compilation_cache_dir",
                 "test_cli_hygiene", "test_cli_config")


def _module(item):
    return item.module.__name__.rsplit(".", 1)[-1]


def pytest_collection_modifyitems(config, items):
    """The longest modules first (a stable sort: the order inside a module is kept). Under
    pytest-xdist (`scripts/test.sh` runs `-n 2 --dist loadfile`) a module's tests stay on one
    worker (its module-scoped fixtures are built once), taken in this order (above)."""
    rank = {m: i for i, m in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda it: rank.get(_module(it), len(rank)))
