"""The command line's checks: sweep parameters of any type, fields named as the command line names
them, a malformed or empty primary config, a multirun checked before its first job, an output
folder that cannot be written, two jobs into one folder. One line and exit 2, never a traceback."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("hydra")

from autonuma_jax.cli.app import check_output_writable, check_primary_config  # noqa: E402
from autonuma_jax.cli.job import lock_job_folder, prepare, unlock_job_folder  # noqa: E402
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
