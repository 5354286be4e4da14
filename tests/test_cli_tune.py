"""autonuma-sim-tune end to end on the test machine (files, plots, wandb runs, resume, errors), its
configs composed, and hydra's Optuna sweeper driving autonuma-sim through the job's objective."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hydra")

from autonuma_jax.cli.tune_app import build_spec, dry_run, flat_space  # noqa: E402
from autonuma_jax.errors import ConfigError  # noqa: E402

from cli_helpers import CONF, REPO, SWEEPS, cli_env, compose, read_wandb, run_cli, to_dict  # noqa: E402

QUICK = ["tune_experiment=quick", "progress.interval_s=0"]


def run_tune(args, cwd, env, timeout=300, check=True) -> subprocess.CompletedProcess:
    code = "from autonuma_jax.cli.tune_app import main; main()"
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"autonuma-sim-tune {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n"
                             f"{p.stderr[-4000:]}")
    return p


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("search", options("search"))
def test_every_search_space_composes_into_a_valid_spec(search):
    spec = build_spec(to_dict(compose([f"search={search}"], config_name="tune")))
    assert spec.space.dims and spec.policy in ("autonuma24", "numa_balancing")
    assert "rung 0: 27 candidate(s)" in dry_run(spec)


def test_quick_experiment_composes_and_the_default_job_is_the_issue_knobs():
    spec = build_spec(to_dict(compose(QUICK, config_name="tune")))
    assert spec.candidates == 6 and spec.cells[0][0].name == "tiny2"
    default = build_spec(to_dict(compose([], config_name="tune")))
    leaves = {d.path.rsplit(".", 1)[-1] for d in default.space.dims}
    assert leaves == {"pages_to_scan", "scan_sleep_millisecs", "scan_sleep_pass_millisecs", "pages_to_migrate",
                      "migrate_sleep_millisecs"}


@pytest.mark.parametrize("overrides, msg", [
    (["candidates=0"], "candidates=0: must be an integer in"),
    (["+search.space.autonuma.knuma_scand.pages_to_scn={}"], "unknown knob"),
    (["search.space.autonuma.knuma_scand.pages_to_scan.lo=0"], "must be a number in the knob's allowed range"),
    (["machines=[bogus]"], "neither a preset"),
    (["objective=speed"], "objective='speed'"),
    (["search.policy=numa_balancing"], "does not read"),
])
def test_bad_tuning_configs_are_one_line_errors(overrides, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        build_spec(to_dict(compose(QUICK + overrides, config_name="tune")))
    assert "\n" not in str(e.value)


def test_flat_space_reads_the_nested_form():
    assert flat_space({"autonuma": {"knuma_scand": {"pages_to_scan": {"lo": 1}, "pmd": None}}}) == {
        "autonuma.knuma_scand.pages_to_scan": {"lo": 1}, "autonuma.knuma_scand.pmd": None}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    home = tmp_path_factory.mktemp("tune")
    env = cli_env(home / "jax-cache", str(home))
    out = home / "job"
    p = run_tune(QUICK + [f"hydra.run.dir={out}"], cwd=home, env=env)
    return out, p, env, home


def test_tune_job_writes_its_files_and_says_its_verdict(tuned):
    out, p, _, _ = tuned
    for f in ("results.parquet", "best.yaml", "comparison.csv", "transfer.csv", "README.md", "store.json",
              "resolved_config.yaml", "plots/search.png", "plots/knobs.png", "plots/front.png"):
        assert (out / f).exists(), f
    assert not (out / "checkpoints").exists()
    import pandas as pd
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["stage"]) == {"search", "evaluate"} and len(df) == 6 + 3 * 2 + 2 * 3
    assert {"autonuma.knuma_scand.pages_to_scan", "objective", "runtime_s", "progress", "runtime_proj_s"} <= set(df)
    text = (out / "README.md").read_text()
    assert "## Fresh-seed comparison" in text and "## Verdicts" in text
    assert any(v in text for v in ("beat the defaults", "within noise of the best found", "WORSE than the defaults"))
    log = p.stdout + p.stderr
    assert "evaluate tiny2/numa01-128MiBx60" in log and "fresh seeds" in log
    import yaml
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert list(best) == ["tiny2/numa01-128MiBx60"]
    assert best["tiny2/numa01-128MiBx60"]["overrides"].startswith("policy.autonuma.knuma_scand.pages_to_scan=")


def test_tune_job_logs_a_wandb_run_per_cell_and_a_job_run(tuned):
    out, _, _, _ = tuned
    runs = sorted(Path(out, "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    by_type = {}
    for d in runs:
        wb = read_wandb(d)
        by_type[wb["run"].get("job_type")] = wb
    cell = by_type["tune-cell"]
    assert [int(h["rung"]) for h in cell["history"]] == [0, 1]
    summ = cell["summary"]["summary"]
    assert summ["fresh/verdict"] in ("better", "within noise", "worse")
    assert "best/autonuma.knuma_scand.pages_to_scan" in summ and "fresh/diff_ci95" in summ
    assert by_type["tune"]["summary"]["summary"]["n_runs"] == 18
    assert by_type["tune"]["run"]["run_group"] == cell["run"]["run_group"] and cell["run"]["run_group"].startswith("tune_quick/")


def test_rerun_in_the_folder_resumes_without_simulating(tuned):
    out, _, env, home = tuned
    before = json.loads((out / "store.json").read_text())
    p = run_tune(QUICK + [f"hydra.run.dir={out}"], cwd=home, env=env)
    assert "resuming: 3 batch(es)" in p.stdout + p.stderr
    assert " run(s) [" not in p.stdout + p.stderr  # no batch ran
    assert json.loads((out / "store.json").read_text())["records"] == before["records"]
    p = run_tune(QUICK + [f"hydra.run.dir={out}", "candidates=5"], cwd=home, env=env, check=False)
    assert p.returncode == 2 and "holds another tuning job" in p.stderr
    assert p.stderr.strip().count("\n") == 0


def test_cli_errors_exit_2_with_one_line(tuned):
    _, _, env, home = tuned
    p = run_tune(QUICK + ["eta=1"], cwd=home, env=env, check=False)
    assert p.returncode == 2 and p.stderr.strip().startswith("error: eta=1: must be an integer in [2, 1000]")
    p = run_tune(QUICK + ["candidatez=3"], cwd=home, env=env, check=False)
    assert p.returncode == 2 and "candidatez" in p.stderr and p.stderr.strip().count("\n") == 0
    p = run_tune(QUICK + ["--dry-run"], cwd=home, env=env)
    assert "rung 0: 6 candidate(s) x 1 seed(s)" in p.stdout


# ---- hydra's Optuna sweeper ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["optuna_autonuma24", "optuna_numa_balancing"])
def test_optuna_sweeps_compose(name):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose(config_name=name, config_dir=SWEEPS, extra_search=CONF, return_hydra_config=True)
    assert cfg.objective == "runtime" and str(cfg.hydra.sweeper.direction).lower().endswith("minimize")
    assert len(cfg.hydra.sweeper.params) >= 4


def test_optuna_sweeper_minimises_the_job_objective(tuned):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    _, _, env, home = tuned
    out = home / "optuna"
    p = run_cli(["-cd", str(SWEEPS), "-cn", "optuna_autonuma24", "experiment=quick", "sweep=none", "sweep.seeds=1",
                 "sim.duration_s=6", "workload.loops=20", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={out}"],
                cwd=home, env=env, timeout=400)
    log = p.stdout + p.stderr
    assert "Best value:" in log and log.count("objective runtime:") == 2
    vals = [float(line.rsplit(":", 1)[1]) for line in log.splitlines() if "objective runtime:" in line]
    best = float(log.split("Best value:")[1].split()[0])
    assert best == pytest.approx(min(vals), rel=1e-6)
    p = run_cli(["experiment=quick", "sweep=none", "objective=speed"], cwd=home, env=env, check=False)
    assert p.returncode == 2 and "objective='speed'" in p.stderr


def test_readme_and_docs_name_the_tuner():
    readme = (REPO / "README.md").read_text()
    assert "autonuma-sim-tune" in readme and (REPO / "docs" / "tuning.md").exists()
    assert "autonuma-sim-tune" in (REPO / "pyproject.toml").read_text()


def test_sigterm_checkpoints_and_a_rerun_finishes_with_the_same_records(tuned):
    import signal
    import time
    out0, _, env, home = tuned
    out = home / "interrupted"
    code = "from autonuma_jax.cli.tune_app import main; main()"
    p = subprocess.Popen([sys.executable, "-c", code, *QUICK, f"hydra.run.dir={out}"], cwd=home, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "autonuma-sim-tune.log"
    t0 = time.time()
    while time.time() - t0 < 120 and not (log.exists() and "rung 0" in log.read_text()):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)  # inside rung 0's batch (its compile takes seconds)
    _, err = p.communicate(timeout=200)
    assert p.returncode == 3, err[-2000:]
    assert list((out / "checkpoints").glob("*.npz"))
    run_tune(QUICK + [f"hydra.run.dir={out}"], cwd=home, env=env)
    done = json.loads((out / "store.json").read_text())["records"]
    assert done == json.loads((out0 / "store.json").read_text())["records"]
    assert not (out / "checkpoints").exists()
