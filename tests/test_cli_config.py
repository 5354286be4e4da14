"""Every config composes with hydra's compose API and converts to valid core RunConfigs; typos and
wrong types fail at composition; the in-process sweep expands as documented. No simulation here."""
from __future__ import annotations

import math

import pytest

pytest.importorskip("hydra")

from hydra.errors import ConfigCompositionException  # noqa: E402
from omegaconf.errors import ConfigKeyError, ValidationError  # noqa: E402

from autonuma_jax.cli import build  # noqa: E402
from autonuma_jax.cli.job import plan, prepare  # noqa: E402
from autonuma_jax.config import POLICIES, validate_run  # noqa: E402
from autonuma_jax.errors import ConfigError  # noqa: E402
from autonuma_jax.knobs import Knobs, flatten  # noqa: E402
from autonuma_jax.machine import PRESETS  # noqa: E402
from autonuma_jax.workloads import BENCHMARKS  # noqa: E402

from cli_helpers import CONF, SWEEPS, compose, to_dict  # noqa: E402


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_cover_core_presets():
    assert set(PRESETS) <= set(options("machine"))
    assert set(BENCHMARKS) == set(options("workload"))
    assert set(POLICIES) == set(options("policy"))
    assert {"wandb_offline", "wandb_online", "disabled"} == set(options("logger"))
    assert "none" in options("sweep") and len(options("sweep")) >= 4
    assert {"local", "slurm"} <= set(options("hydra/launcher"))


def test_autonuma24_yaml_names_every_knob_with_kernel_defaults():
    import yaml
    with open(CONF / "policy" / "autonuma24.yaml") as f:
        raw = yaml.safe_load(f)
    flat = build._flat_dict({k: v for k, v in raw.items() if k != "name"})
    others = ("balancenuma.", "numa_balancing.", "sched_numa.", "numa_core.")  # rival policies: own files
    expect = {k: v for k, v in flatten(Knobs()).items() if not k.startswith(others)}
    assert flat == expect  # every knob, by its sysfs path, at its default
    cfg = to_dict(compose())
    assert build.build_knobs(cfg["policy"]) == Knobs()


@pytest.mark.parametrize("policy", ["balancenuma", "numa_balancing", "sched_numa", "numa_core"])
def test_upstream_policy_yaml_names_its_sysctls_with_defaults(policy):
    import yaml
    with open(CONF / "policy" / f"{policy}.yaml") as f:
        raw = yaml.safe_load(f)
    flat = build._flat_dict({k: v for k, v in raw.items() if k != "name"})
    assert flat == {k: v for k, v in flatten(Knobs()).items() if k.startswith(policy + ".")}


@pytest.mark.parametrize("group", ["machine", "workload", "policy", "sim", "sweep", "logger"])
def test_every_group_option_composes_and_validates(group):
    for opt in options(group):
        ov = [f"{group}={opt}"]
        if group == "machine" and opt.startswith("tiny"):
            ov += ["workload.size_mib=128", "workload.loops=20"]
        if group == "machine" and opt == "from_file":
            ov += [f"machine.path={CONF.parent / 'tests/fixtures/topology/numactl_8node_uneven.txt'}"]
        if group == "sim" and opt == "pte_4k":
            ov += ["machine=tiny2", "workload.size_mib=64", "workload.loops=5"]
        cfg = to_dict(compose(ov))
        runs = prepare(cfg)  # expand + validate_run: the core's range checks
        assert runs, (group, opt)
        if group == "policy":
            assert {r.config.policy for r in runs} == {opt}


@pytest.mark.parametrize("exp", options("experiment"))
def test_every_experiment_composes_and_validates(exp):
    cfg = compose([f"experiment={exp}"])
    assert cfg.name == exp
    runs = prepare(to_dict(cfg))
    assert runs
    # an in-process sweep never needs more than one batch per machine x workload shape
    assert len(plan(runs)) == len({(r.config.label().split("/")[0], r.spec["workload"]["name"]) for r in runs})


@pytest.mark.parametrize("name", sorted(p.stem for p in SWEEPS.glob("*.yaml")
                                         if p.stem != "wandb_sweep" and not p.stem.startswith("optuna_")))
def test_sweeps_folder_definitions_compose(name):
    cfg = compose(config_name=name, config_dir=SWEEPS, extra_search=CONF, return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweeper.params
    runs = prepare(to_dict(cfg))
    assert len(runs) >= 4


def test_wandb_sweep_yaml():
    import yaml
    with open(SWEEPS / "wandb_sweep.yaml") as f:
        sw = yaml.safe_load(f)
    assert {"program", "method", "metric", "parameters", "command"} <= set(sw)
    assert "${args_no_hyphens}" in sw["command"]
    # hyperband needs a metric logged at every step; the objective exists only at a trial's end
    assert "early_terminate" not in sw
    # parameters are knobs only (the fixed groups are settings of the command: as parameters the
    # agent would write a group name into a run config key the job logs with its own value)
    from autonuma_jax.knobs import Knobs, flatten
    knobs = set(flatten(Knobs()))
    assert all(k.startswith("policy.") and k[len("policy."):] in knobs for k in sw["parameters"]), sw["parameters"]
    # every parameter, with the command's fixed settings, is a valid hydra override of this config
    fixed = [a for a in sw["command"] if "=" in a and not a.startswith("$")]
    ov = list(fixed)
    for k, spec in sw["parameters"].items():
        v = spec["value"] if "value" in spec else spec.get("values", [spec.get("min")])[0]
        ov.append(f"{k}={v}")
    cfg = to_dict(compose(ov))
    assert cfg["policy"]["autonuma"]["knuma_scand"]["pages_to_scan"] == 4096
    assert cfg["logger"]["mode"] == "online" and cfg["sweep"]["seeds"] == 2
    runs = prepare(cfg)
    # the objective is a metric the job writes into every run's summary
    from autonuma_jax.analysis.columns import METRICS
    assert sw["metric"]["name"] in METRICS and len({r.combo for r in runs}) == 1  # a trial is one point


@pytest.mark.parametrize("launcher,target", [("local", "LocalLauncher"), ("slurm", "SlurmLauncher"),
                                             ("submitit_local", "LocalLauncher"), ("basic", "BasicLauncher")])
def test_launchers_compose(launcher, target):
    cfg = compose([f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        lc = cfg.hydra.launcher
        assert {"partition", "timeout_min", "gpus_per_node", "array_parallelism", "max_num_timeout"} <= set(lc)


def test_typo_and_wrong_type_fail_at_composition():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["policy.autonuma.knuma_scand.pages_to_scn=1"])
    assert "pages_to_scn" in str(e.value.__cause__ or e.value)
    with pytest.raises((ConfigCompositionException, ValidationError)) as e:
        compose(["policy.autonuma.knuma_scand.pages_to_scan=lots"])
    assert "pages_to_scan" in str(e.value) + str(e.value.__cause__)
    with pytest.raises((ConfigCompositionException, ValidationError, ConfigKeyError)):
        compose(["sim.durration_s=3"])
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose(["sweep.mode=gird"])


def test_range_errors_are_core_one_liners():
    cfg = to_dict(compose(["policy.autonuma.knuma_scand.pages_to_scan=0"]))
    with pytest.raises(ConfigError) as e:
        prepare(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "autonuma.knuma_scand.pages_to_scan=0" in msg
    with pytest.raises(ConfigError, match="policy.name"):
        prepare(to_dict(compose(["policy.name=autonuma27"])))
    with pytest.raises(ConfigError, match="workload=.*needs"):  # 2 x 3 GiB does not fit 2 GiB
        prepare(to_dict(compose(["machine=tiny2"])))


def test_machine_preset_overrides_and_custom_machine():
    cfg = to_dict(compose(["machine=2node_24cpu", "machine.mem_per_node_mib=4096"]))
    m = build.build_machine(cfg["machine"])
    assert m.mem_per_node_mib == 4096 and m.n_cpus == 24
    assert build.build_machine(to_dict(compose())["machine"]) == "2node_24cpu"
    cfg = to_dict(compose(["machine=tiny4", "workload.size_mib=64", "workload.loops=5"]))
    r = prepare(cfg)[0]
    assert r.config.resolved_machine().n_nodes == 4
    with pytest.raises(ConfigError, match="machine.preset=None"):
        build.build_machine({"preset": None, "name": "x", "n_nodes": 2})


def test_grid_sweep_expands_combinations_times_seeds():
    cfg = to_dict(compose(["sweep=scan_rate", "sweep.seeds=3"]))
    runs = build.expand(cfg)
    assert len(runs) == 16 * 3
    vals = {(r.config.knobs.autonuma.knuma_scand.scan_sleep_millisecs,
             r.config.knobs.autonuma.knuma_scand.scan_sleep_pass_millisecs) for r in runs}
    assert len(vals) == 16
    assert {r.config.seed for r in runs} == {0, 1, 2}
    assert len({r.combo for r in runs}) == 16
    assert len(plan(runs)) == 1  # knob values never change shapes: one compiled batch


def test_dotted_and_command_line_sweep_params():
    cfg = to_dict(compose(["sweep.mode=grid", "+sweep.params.autonuma.knuma_migrated.pages_to_migrate=[4096,8192]",
                           "+sweep.params.policy=[autonuma24,none]"]))
    runs = build.expand(cfg)
    assert len(runs) == 4
    assert {(r.config.policy, r.config.knobs.autonuma.knuma_migrated.pages_to_migrate) for r in runs} == {
        ("autonuma24", 4096), ("autonuma24", 8192), ("none", 4096), ("none", 8192)}
    assert build.swept_label(runs[0].params) == "pages_to_migrate=4096,policy=autonuma24"


def test_random_sweep_samples_in_range_and_is_reproducible():
    cfg = to_dict(compose(["sweep=random_scand", "sweep.samples=50"]))
    a, b = build.expand(cfg), build.expand(cfg)
    assert len(a) == 50
    assert [r.params for r in a] == [r.params for r in b]
    for r in a:
        ks = r.config.knobs.autonuma.knuma_scand
        assert isinstance(ks.pages_to_scan, int) and 4096 <= ks.pages_to_scan <= 262144
        assert 10 <= ks.scan_sleep_millisecs <= 1000
    logs = [math.log(r.config.knobs.autonuma.knuma_scand.scan_sleep_millisecs) for r in a]
    assert max(logs) - min(logs) > 2  # log-uniform spread over two decades
    assert len(plan(a)) == 1


def test_grid_ranges_and_bad_sweep_params():
    cfg = to_dict(compose(["sweep.mode=grid",
                           "+sweep.params.autonuma.knuma_scand.pages_to_scan={min:4096,max:65536,num:5,log:true}"]))
    vals = [r.config.knobs.autonuma.knuma_scand.pages_to_scan for r in build.expand(cfg)]
    assert vals == [4096, 8192, 16384, 32768, 65536]
    with pytest.raises(ConfigError, match="unknown parameter"):
        build.expand(to_dict(compose(["sweep.mode=grid", "+sweep.params.autonuma.knuma_scand.page_to_scan=[1]"])))
    with pytest.raises(ConfigError, match="sweep.params is empty"):
        build.expand(to_dict(compose(["sweep.mode=grid"])))
    bad = to_dict(compose(["sweep.mode=grid", "+sweep.params.autonuma.knuma_scand.pages_to_scan=[8192,0]"]))
    with pytest.raises(ConfigError, match=r"config\[1\]\.policy\.autonuma.knuma_scand.pages_to_scan=0"):
        prepare(bad)


def test_policy_variants_and_shrunken_workloads():
    cfg = to_dict(compose(["experiment=quick"]))
    runs = prepare(cfg)
    from autonuma_jax.config import POLICIES
    assert runs[0].config.policy == "hard_bind"
    assert sorted(r.config.policy for r in runs) == sorted(POLICIES)  # sweep=policies: every policy
    for r in runs:
        validate_run(r.config)
        wl = r.config.resolved_workload()
        assert wl.processes[0].mem_bytes == 128 << 20
    hb = runs[0].config.resolved_workload()
    assert all(t.cpus_allowed for t in hb.threads)  # hard_bind variant applied to the shrunken numa01
