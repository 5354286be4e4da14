"""The command line's checks: sweep parameters of any type, fields named as the command line names
them, a malformed or empty primary config, a multirun checked before its first job, an output
folder that cannot be written, two jobs into one folder. One line and exit 2, never a traceback."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("hydra")

from autonuma_jax.cli import preflight  # noqa: E402
from autonuma_jax.cli.app import check_output_writable, check_primary_config  # noqa: E402
from autonuma_jax.cli.job import check_memory, lock_job_folder, prepare, unlock_job_folder  # noqa: E402
from autonuma_jax.errors import ConfigError  # noqa: E402

from cli_helpers import cli_env, compose, run_cli, to_dict  # noqa: E402

BASE = ["experiment=quick", "sweep=none", "logger=disabled", "results.plots=false"]


@pytest.mark.parametrize("overrides,needle", [
    (["+sweep.params.machine.distance=[[[10,a],[a,10]]]", "sweep.mode=grid"], "machine.distance=((10, 'a'), ('a', 10))"),
    (["+sweep.params.machine.mem_per_node_mib=[big]", "sweep.mode=grid"], "machine.mem_per_node_mib='big'"),
    (["+sweep.params.machine.node_bw_gbs=[fast]", "sweep.mode=grid"], "machine.node_bw_gbs='fast'"),
    (["+sweep.params.machine.n_nodes=[2.5]", "sweep.mode=grid"], "machine.n_nodes=2.5: must be an integer"),
    (["+sweep.params.policy.autonuma.knuma_scand.pages_to_scan={min:a,max:b,num:3}", "sweep.mode=grid"],
     "a grid range needs finite numbers min and max"),
    (["+sweep.params.policy.autonuma.knuma_scand.pages_to_scan={min:nan,max:10,num:3}", "sweep.mode=grid"],
     "a grid range needs finite numbers min and max"),
    (["+sweep.params.policy.autonuma.knuma_scand.pages_to_scan={min:1,max:inf}", "sweep.mode=random"],
     "a random range needs finite numbers"),
    (["sim.report_interval_ms=inf"], "sim.report_interval_ms=inf"),
    (["sim.duration_s=1.1"], "sim.duration_s=1.1: must be a whole multiple"),
    (["policy.autonuma.knuma_scand.pages_to_scan=0"], "policy.autonuma.knuma_scand.pages_to_scan=0: must be"),
    (["policy.numa_balancing.numa_balancing_scan_period_min_ms=70000"],
     "policy.numa_balancing.numa_balancing_scan_period_min_ms=70000: must be <= policy.numa_balancing"),
    (["+sweep.params.machine.distance=[[[10,25.9],[25.9,10]]]", "sweep.mode=grid"], "SLIT distances are integers"),
])
def test_cli_values_are_checked_and_named_as_written(overrides, needle):
    with pytest.raises(ConfigError) as e:
        prepare(to_dict(compose(BASE + overrides)))
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_primary_config_checks(tmp_path):
    (tmp_path / "bad.yaml").write_text("defaults:\n  - x: [\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "ok.yaml").write_text("defaults:\n  - config\n  - _self_\n")
    assert "not a readable YAML config (line 3" in check_primary_config(["-cd", str(tmp_path), "-cn", "bad"])
    assert "the primary config is empty" in check_primary_config(["--config-dir", str(tmp_path), "--config-name=empty"])
    assert "must be a YAML mapping" in check_primary_config(["-cd", str(tmp_path), "-cn", "list"])
    assert check_primary_config(["-cd", str(tmp_path), "-cn", "ok"]) is None
    assert check_primary_config([]) is None  # the package's own config


def test_unwritable_output_folder_is_one_line(tmp_path):
    assert check_output_writable([f"hydra.run.dir={tmp_path}/a/b"]) is None
    msg = check_output_writable(["hydra.run.dir=/proc/sys/autonuma-test/run"])
    assert msg and "cannot be created under /proc" in msg
    assert "hydra.sweep.dir=" in check_output_writable(["-m", "hydra.sweep.dir=/proc/sys/x"])


def test_second_job_into_one_folder_refuses_before_writing(tmp_path):
    fd = lock_job_folder(str(tmp_path))
    try:
        with pytest.raises(ConfigError, match=r"another job is writing it \(pid \d+\)"):
            lock_job_folder(str(tmp_path))
    finally:
        unlock_job_folder(fd)
    unlock_job_folder(lock_job_folder(str(tmp_path)))  # free again


def test_cli_one_line_errors_and_a_multirun_checked_before_its_first_job(tmp_path):
    env = cli_env(str(tmp_path / "cache"), str(tmp_path))
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / "bad.yaml").write_text("a: [\n")
    p = run_cli(["-cd", str(tmp_path / "cd"), "-cn", "bad"], cwd=tmp_path, env=env, check=False)
    assert p.returncode == 2 and p.stderr.strip().startswith("error:") and "Traceback" not in p.stderr
    sweep_dir = tmp_path / "mr"
    p = run_cli(["-m", *BASE, "policy.autonuma.knuma_scand.pages_to_scan=4096,0", f"hydra.sweep.dir={sweep_dir}"],
                cwd=tmp_path, env=env, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: multirun job 1 (") and "pages_to_scan=0: must be" in last, last
    assert not sweep_dir.exists() or not any(sweep_dir.rglob("results.parquet"))  # job 0 never ran
    p = run_cli([*BASE, "hydra.run.dir=/proc/sys/autonuma-test/run"], cwd=tmp_path, env=env, check=False)
    assert p.returncode == 2 and "cannot be created" in p.stderr and "Traceback" not in p.stderr


def test_duplicate_keys_in_a_primary_config_are_one_line(tmp_path):
    (tmp_path / "dup.yaml").write_text("defaults: [config, _self_]\nsim: {duration_s: 2}\nsim: {duration_s: 3}\n")
    msg = check_primary_config(["-cd", str(tmp_path), "-cn", "dup"])
    assert msg and "duplicate key 'sim'" in msg and "line 3" in msg


@pytest.mark.parametrize("arg,needle", [
    ("sim.check_invariants=2", "sim.check_invariants=2: must be true or false"),
    ("sim.stop_when_done=5", "sim.stop_when_done=5: must be true or false"),
    ("results.overwrite=2", "results.overwrite=2: must be true or false"),
    ("++results.plots=maybe", "results.plots=maybe: must be true or false"),
])
def test_flags_take_true_or_false(arg, needle):
    assert preflight.check_flag_overrides(BASE + [arg]) == needle
    assert preflight.check_flag_overrides(BASE + [arg.split("=")[0].lstrip("+") + "=false"]) is None


@pytest.mark.parametrize("overrides,needle", [
    (["results.write_retries=-1"], "results.write_retries=-1: must be an integer in [0, "),
    (["results.write_retry_s=nan"], "results.write_retry_s=nan: must be a number in [0.0, "),
    (["results.checkpoint_every=-1"], "results.checkpoint_every=-1: must be an integer in [0, "),
    (["progress.interval_s=nan"], "progress.interval_s=nan: must be a number"),
    (["sweep.seeds=10000000"], "sweep.seeds=10000000: must be an integer in [1, 100000]"),
    (["sweep.mode=grid", "+sweep.params.autonuma.knuma_scand.pages_to_scan={min:1,max:2,num:5}"],
     "an integer knob has only 2 distinct values"),
    (["sweep.mode=grid", "+sweep.params.autonuma.knuma_scand.pages_to_scan={min:1,max:100000,num:1100}",
      "+sweep.params.autonuma.knuma_scand.scan_sleep_pass_millisecs={min:100,max:100000,num:1000}"],
     "the grid has 1,100,000 combinations"),
    (["sweep.seeds=10000", "sweep.mode=grid", "+sweep.params.autonuma.knuma_scand.pages_to_scan=[1024,2048,4096,8192,16384,32768,65536,131072,262144,524288,1048576]"],
     "11 combinations x sweep.seeds=10000 = 110,000"),
])
def test_job_settings_and_sweep_sizes_are_checked(overrides, needle):
    with pytest.raises(ConfigError) as e:
        prepare(to_dict(compose(BASE + overrides)))
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_duration_is_simulated_as_given_within_the_check_tolerance():
    import numpy as np

    from autonuma_jax.config import SimConfig
    for d in (1.1, np.float32(1.1), 1.10000005):
        assert SimConfig(duration_s=d, report_interval_ms=100).validate().n_reports == 11


def test_a_job_that_cannot_fit_is_refused_before_anything_is_built():
    cfg = to_dict(compose(["machine=8node_64cpu", "sweep=none", "sim.page_unit=4K", "workload.size_mib=150000",
                           "workload.variant=no_force", "policy=none", "logger=disabled"]))
    with pytest.raises(ConfigError, match=r"^memory: this batch needs ~\d+\.\d GiB .* may use \d+\.\d GiB"):
        check_memory(prepare(cfg), cfg["sim"])


def test_hydra_errors_are_one_line():
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ValidationError
    try:
        try:
            raise ValidationError("Value '4.0' of type 'float' could not be converted to Integer\n"
                                  "    full_key: machine.cpus_per_node\n    object_type=dict")
        except ValidationError as inner:
            raise ConfigCompositionException("Error merging override machine.cpus_per_node=4.0") from inner
    except ConfigCompositionException as e:
        line = preflight.one_line(e)
    assert line == ("Error merging override machine.cpus_per_node=4.0: Value '4.0' of type 'float' could not be "
                    "converted to Integer")
    assert preflight.user_error(ConfigCompositionException("x")) and not preflight.user_error(KeyError("x"))
    try:
        try:
            raise ConfigError("autonuma.knuma_scand.pages_to_scan=-1: must be ...")
        except ConfigError as inner:
            raise ConfigError("policy." + str(inner)) from None
    except ConfigError as e:
        assert preflight.one_line(e) == "policy.autonuma.knuma_scand.pages_to_scan=-1: must be ..."


def test_cli_hydra_refusals_are_one_line_exit_2(tmp_path):
    env = cli_env(str(tmp_path / "cache"), str(tmp_path))
    (tmp_path / "cd" / "machine").mkdir(parents=True)
    (tmp_path / "cd" / "machine" / "badm.yaml").write_text("n_nodes: 2\ndistance: [[10, 20]\n")
    cases = [
        ["-cd", str(tmp_path / "cd"), "machine=badm"],   # a malformed group file
        ["machine.cpus_per_node=4.0"],                   # a wrong type
        ["machine=nosuch"],                              # an unknown group option
        ["-m", "machine=tiny2,nosuch", f"hydra.sweep.dir={tmp_path / 'mr'}"],  # the same in a multirun
    ]
    for args in cases:
        p = run_cli([*args, *BASE, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, check=False)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and "Traceback" not in p.stderr, (args, p.stderr[-2000:])
        assert lines and lines[-1].startswith("error: ") and not any("Warning" in ln for ln in lines), (args, lines)
    assert not (tmp_path / "mr").exists() or not any((tmp_path / "mr").rglob("results.parquet"))


def test_a_refused_job_leaves_the_finished_jobs_record_alone(tmp_path):
    """hydra would rewrite <job>/.hydra/*.yaml before the job refuses the folder (seed 5 over seed 0)."""
    env = cli_env(str(tmp_path / "cache"), str(tmp_path))
    run = tmp_path / "job"
    run_cli([*BASE, "sim.duration_s=2", "workload.loops=20", "seed=0", f"hydra.run.dir={run}"], cwd=tmp_path, env=env)
    before = {f.name: f.read_text() for f in (run / ".hydra").iterdir()}
    assert set(before) == {"config.yaml", "hydra.yaml", "overrides.yaml"} and "seed=0" in before["overrides.yaml"]
    p = run_cli([*BASE, "sim.duration_s=2", "workload.loops=20", "seed=5", f"hydra.run.dir={run}"], cwd=tmp_path,
                env=env, check=False)
    assert p.returncode == 2 and "refusing to overwrite" in p.stderr
    assert {f.name: f.read_text() for f in (run / ".hydra").iterdir()} == before
