"""Outputs a reader understands (issue 12 §5): settings that would silently do nothing warn (once)
or fail with one line, jax's TPU probe stays out of the log, the demo's help and errors are whole
sentences, and the documentation of the config folder cannot fall behind the folder. Compose-only
(no simulation); one CLI subprocess that stops before anything compiles."""
from __future__ import annotations

import logging
import re

import pytest

pytest.importorskip("hydra")

from autonuma_jax.cli import build  # noqa: E402
from autonuma_jax.config import POLICIES  # noqa: E402
from autonuma_jax.errors import ConfigError  # noqa: E402
from autonuma_jax.knobs import Knobs, flatten  # noqa: E402
from autonuma_jax.machine import PRESETS  # noqa: E402

from cli_helpers import CONF, REPO, TINY, cli_env, compose, run_cli, to_dict  # noqa: E402

LOGGER = "autonuma_jax.cli"
# a shrunken numa01 on the tiny machine: cheap to expand, and small enough for 4 KiB page units
SMALL = ["machine=tiny2", "workload.size_mib=64", "workload.loops=5"]


@pytest.fixture(autouse=True)
def fresh_warnings():
    """build warns once per process; each test starts as a fresh process would."""
    build._warned.clear()
    yield
    build._warned.clear()


def expand_warnings(overrides, caplog) -> list[str]:
    """The warning lines of expanding the composed config."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        build.expand(to_dict(compose(overrides)))
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------------------
# sweep settings that do nothing

def test_sweep_params_with_mode_none_is_refused_in_one_line():
    with pytest.raises(ConfigError) as e:
        build.expand(to_dict(compose(["sweep=scan_rate", "sweep.mode=none"])))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("sweep.params.autonuma.knuma_scand.scan_sleep_millisecs: set while sweep.mode=none")
    assert "sweep.mode=grid" in msg
    # mode none without params (the default, sweep=seeds) is the normal case
    assert len(build.expand(to_dict(compose(["sweep=seeds"])))) == 8


def test_samples_outside_random_mode_warn(caplog):
    msgs = expand_warnings(["sweep=scan_rate", "sweep.samples=100"], caplog)
    assert msgs == ["sweep.samples=100 has no effect with sweep.mode=grid (only sweep.mode=random draws samples)"]
    assert expand_warnings(["sweep=random_scand", "sweep.samples=3"], caplog) == []
    assert expand_warnings(["sweep=scan_rate"], caplog) == []


# ------------------------------------------------------------------------------------------
# knuma_scand/pmd=0 on 2 MiB units

def test_pmd0_with_2m_units_warns_and_names_pte_4k(caplog):
    msgs = expand_warnings(["policy.autonuma.knuma_scand.pmd=0"], caplog)
    assert len(msgs) == 1
    assert msgs[0].startswith("policy.autonuma.knuma_scand.pmd=0 has no effect with sim.page_unit=2M")
    assert "sim=pte_4k" in msgs[0]
    # with 4 KiB units pmd=0 is pte-mode scanning: no warning; the default pmd=1 never warns
    assert expand_warnings(SMALL + ["sim=pte_4k", "policy.autonuma.knuma_scand.pmd=0"], caplog) == []
    assert expand_warnings([], caplog) == []


# ------------------------------------------------------------------------------------------
# knobs of a policy that is not in the job

def test_knob_of_another_policy_warns_naming_knob_and_policies(caplog):
    msgs = expand_warnings(["policy.numa_balancing.numa_balancing_scan_period_min_ms=500"], caplog)
    assert msgs == ["policy.numa_balancing.numa_balancing_scan_period_min_ms=500 has no effect here: the job runs "
                    "policy autonuma24, and only numa_balancing reads it"]
    # the policy that reads it: no warning
    assert expand_warnings(["policy=numa_balancing",
                            "policy.numa_balancing.numa_balancing_scan_period_min_ms=500"], caplog) == []


def test_knobs_of_one_group_share_one_line(caplog):
    msgs = expand_warnings(["experiment=quick", "sweep=none", "policy=none"], caplog)
    assert len(msgs) == 1
    assert all(f"policy.autonuma.{k}" in msgs[0] for k in ("knuma_scand.scan_sleep_pass_millisecs=1000",
                                                          "knuma_scand.pages_to_scan=8192",
                                                          "knuma_migrated.pages_to_migrate=4096"))
    assert "the job runs policy none, and only autonuma24 reads them" in msgs[0]


def test_knob_used_by_one_policy_of_a_policy_sweep_does_not_warn(caplog):
    # the none / bind configurations ignore the autonuma knobs, the autonuma24 ones use them
    assert expand_warnings(["experiment=quick"], caplog) == []
    assert expand_warnings(["sweep=policies", "policy.sched_numa.sched_numa_settle_count=4"], caplog) == []


def test_swept_knob_of_another_policy_warns(caplog):
    msgs = expand_warnings(["sweep=scan_rate", "policy=numa_balancing"], caplog)
    assert len(msgs) == 1
    assert msgs[0].startswith("sweep.params.autonuma.knuma_scand.scan_sleep_millisecs (swept), "
                              "sweep.params.autonuma.knuma_scand.scan_sleep_pass_millisecs (swept) have no effect")
    assert "policy numa_balancing, and only autonuma24 reads them" in msgs[0]


def test_cfs_knob_shared_by_affinity_policies_does_not_warn(caplog):
    # load_balance_strict acts wherever task_selected_nid steers CFS: sched_numa and numa_core too
    for policy in ("sched_numa", "numa_core"):
        assert expand_warnings([f"policy={policy}", "policy.autonuma.scheduler.load_balance_strict=1"], caplog) == []
    msgs = expand_warnings(["policy=numa_balancing", "policy.autonuma.scheduler.load_balance_strict=1"], caplog)
    assert msgs and "only autonuma24, numa_core, sched_numa read it" in msgs[0]


def test_thp_knobs_with_4k_units_and_unmodelled_knobs_warn(caplog):
    msgs = expand_warnings(SMALL + ["sim=pte_4k", "policy.transparent_hugepage.khugepaged.pages_to_scan=8192"], caplog)
    assert len(msgs) == 1 and "has no effect with sim.page_unit=4K" in msgs[0]
    assert expand_warnings(["policy.transparent_hugepage.khugepaged.pages_to_scan=8192"], caplog) == []
    msgs = expand_warnings(["policy.autonuma.debug=1"], caplog)
    assert msgs == ["policy.autonuma.debug=1 has no effect in the simulation: nothing in the model reads it"]


def test_common_groups_and_defaults_never_warn(caplog):
    assert expand_warnings(["policy=none", "policy.costs.exchange_ns=1000", "policy.sched.noise_migrations_per_sec=2.0"],
                           caplog) == []
    for experiment in ("quick", "policies", "tiny_sweep", "scan_rate", "migrate_rate", "first_fault"):
        assert expand_warnings([f"experiment={experiment}"], caplog) == [], experiment


def test_a_sweep_of_100_configurations_warns_once(caplog):
    over = SMALL + ["sweep.seeds=100", "policy.numa_balancing.numa_balancing_scan_period_min_ms=500",
                    "policy.autonuma.knuma_scand.pmd=0"]
    cfg = to_dict(compose(over))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert len(build.expand(cfg)) == 100
        build.expand(cfg)  # again in this process (a multirun's check, then its job): nothing new
    msgs = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(msgs) == 2 and len(set(msgs)) == 2
    assert any("pmd=0" in m for m in msgs) and any("numa_balancing_scan_period_min_ms" in m for m in msgs)


def test_policy_knob_map_covers_every_policy_and_knob():
    assert set(build.POLICY_KNOBS) == set(POLICIES)
    for knob in flatten(Knobs()):
        read = [p for p in POLICIES if build.policy_reads(p, knob)]
        assert read or knob in build.NO_EFFECT_KNOBS, knob


# ------------------------------------------------------------------------------------------
# jax's TPU probe

def test_tpu_probe_info_line_is_silenced(tmp_path):
    assert logging.getLogger("jax._src.xla_bridge").getEffectiveLevel() >= logging.WARNING
    # A job into a folder that holds results: it looks for devices (the memory check), then
    # refuses the folder, before anything compiles. Without JAX_PLATFORMS jax probes for a TPU.
    out = tmp_path / "job"
    out.mkdir()
    (out / "results.parquet").write_bytes(b"")
    env = cli_env(str(tmp_path / "xla"), str(tmp_path))
    env.pop("JAX_PLATFORMS", None)
    p = run_cli(TINY + ["logger=disabled", f"hydra.run.dir={out}"], cwd=tmp_path, env=env, check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "exists: refusing to overwrite" in p.stderr
    assert "Unable to initialize backend" not in p.stdout + p.stderr


# ------------------------------------------------------------------------------------------
# the demo

def test_demo_help_is_complete(capsys):
    from autonuma_jax import demo
    with pytest.raises(SystemExit) as e:
        demo.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "hard_bind, none, inverse_bind), as one CPU batch, without hydra." in out
    assert "prints a summary table." in out
    assert "--machine MACHINE" in out and "2node_24cpu" in out


def test_demo_tiny_machine_is_one_line_naming_the_presets(capsys, tmp_path):
    from autonuma_jax import demo
    assert demo.main(["--machine", "tiny2", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: --machine tiny2: not a machine preset")
    assert all(m in err for m in PRESETS) and "autonuma-sim experiment=quick machine=tiny2" in err
    assert not (tmp_path / "demo").exists()


# ------------------------------------------------------------------------------------------
# documentation that must follow the files

def _readme_sections(text: str) -> dict[str, set[str]]:
    """conf/README.md: '### `group/`' -> the choices its bullets name ('- `choice`...')."""
    out, group = {}, None
    for line in text.splitlines():
        m = re.match(r"### `([\w/]+)/`\s*$", line)
        if m:
            group = m.group(1)
            out[group] = set()
        elif line.startswith("## "):
            group = None
        elif group:
            b = re.match(r"- `([\w.]+)`", line)
            if b:
                out[group].add(b.group(1))
    return out


def test_conf_readme_lists_every_file_of_every_group():
    sections = _readme_sections((CONF / "README.md").read_text())
    groups = sorted({str(p.parent.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parent != CONF})
    assert sorted(sections) == groups
    for g in groups:
        files = {p.stem for p in (CONF / g).glob("*.yaml")}
        assert sections[g] == files, f"conf/README.md, {g}/: missing {sorted(files - sections[g])}, " \
                                     f"stale {sorted(sections[g] - files)}"


@pytest.mark.parametrize("doc", ["slurm/README.md", "conf/README.md"])
def test_group_choices_named_in_docs_exist(doc):
    text = (REPO / doc).read_text()
    for group, name in re.findall(r"\b(sweep|experiment|machine|workload|policy|sim|logger)=(\w+)\b", text):
        assert (CONF / group / f"{name}.yaml").exists(), f"{doc}: {group}={name} is not in conf/{group}/"


def test_slurm_readme_commands_compose():
    text = (REPO / "slurm" / "README.md").read_text()
    cmds = re.findall(r"slurm/submit\.sh gpu .*?-- (.+)", text)
    assert cmds
    for args in cmds:
        over = args.split("#")[0].split()
        assert "-m" not in over  # the gpu template runs one job: an in-process sweep, not a multirun
        cfg = to_dict(compose(over))
        combos = build.combinations(cfg["sweep"])  # a sweep, and its first point builds (not all 4096)
        assert len(combos) > 1, args
        base = {k: cfg[k] for k in ("machine", "workload", "policy", "sim")}
        build.to_runconfig(build.apply_params(base, combos[0]), 0)


def test_policies_sweep_runs_every_policy():
    runs = build.expand(to_dict(compose(["sweep=policies"])))
    assert sorted(r.config.policy for r in runs) == sorted(POLICIES)


def test_tiny_sweep_is_a_grid_over_two_scan_knobs():
    cfg = to_dict(compose(["experiment=tiny_sweep"]))
    assert cfg["name"] == "tiny_sweep" and cfg["sweep"]["mode"] == "grid"
    runs = build.expand(cfg)
    assert len(runs) == 12
    assert {r.config.knobs.autonuma.knuma_scand.pages_to_scan for r in runs} == {1024, 4096, 16384}
    assert {r.config.knobs.autonuma.knuma_scand.scan_sleep_pass_millisecs for r in runs} == {1000, 8000}
    assert {r.config.seed for r in runs} == {0, 1}


def test_license_is_an_spdx_expression():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(REPO / "pyproject.toml", "rb") as f:
        proj = tomllib.load(f)
    assert proj["project"]["license"] == "GPL-2.0-only"  # a table is deprecated by setuptools >= 77
    req = [r for r in proj["build-system"]["requires"] if r.startswith("setuptools")]
    assert req == ["setuptools>=77"]
