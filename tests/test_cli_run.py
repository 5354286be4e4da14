"""``autonuma-sim`` end to end in subprocesses: a single run, the no-clobber rule, config errors,
--multirun with the basic and the submitit_local launchers, the offline wandb run read back, and
the report merging a multirun. Every simulation here is the same tiny shape (cli_helpers.TINY), so
the session's persistent compilation cache compiles it once."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("hydra")
pd = pytest.importorskip("pandas")

from autonuma_jax.knobs import Knobs, flatten  # noqa: E402
from autonuma_jax.report import metric_columns  # noqa: E402

from cli_helpers import TINY, cli_env, read_wandb, run_cli, same_number, wandb_run_dir  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli_home")
    return cli_env(str(tmp_path_factory.mktemp("xla_cache")), str(home))


@pytest.fixture(scope="module")
def single(env, tmp_path_factory):
    """One single run (1 configuration) into a known folder, from an unrelated working directory."""
    cwd = tmp_path_factory.mktemp("cwd")
    out = cwd / "run1"
    p = run_cli(TINY + [f"hydra.run.dir={out}"], cwd=cwd, env=env)
    return out, p


def test_single_run_writes_results_timeseries_config_plots(single):
    out, p = single
    for f in ("results.parquet", "timeseries.parquet", "resolved_config.yaml", "job.json", ".hydra/config.yaml",
              "plots/convergence.png"):
        assert (out / f).exists(), f
    assert list((out / "plots").glob("nmstat_*.png"))
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 1
    for k in flatten(Knobs()):
        assert k in res.columns, k
    for k in ("seed", "policy", "machine", "workload", "runtime_s", "local_fraction_final", "converge_s",
              "pages_migrated", "overhead_cpu_s", "finished"):
        assert k in res.columns, k
    row = res.iloc[0]
    assert row["machine"] == "tiny2" and row["policy"] == "autonuma24" and row["seed"] == 0
    assert row["autonuma.knuma_scand.pages_to_scan"] == 8192  # the experiment's knob
    assert bool(row["finished"])
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert len(ts) == row["reports"] and {"sim_time_s", "local_fraction", "mm0.node0.pages"} <= set(ts.columns)
    assert "progress:" in p.stdout + p.stderr  # plain progress lines when stdout is not a terminal
    # the kernel's counters: result columns, interval columns, the /proc/vmstat-style dump
    assert row["autonuma.knuma_scand.full_scans"] == row["full_scans"] and row["numa_hit"] > 0
    assert row["numa_hint_faults"] != row["numa_hint_faults"]  # AutoNUMA24 had no such counter: NaN
    assert {"numa_hit", "numa_pte_updates", "numa_hint_faults_local"} <= set(ts.columns)
    assert int(ts["numa_hit"].sum()) == row["numa_hit"]
    dump = (out / "vmstat" / "config_0000.txt").read_text().splitlines()
    assert f"numa_hit {int(row['numa_hit'])}" in dump and not any(ln.startswith("numa_hint") for ln in dump)
    assert f"/sys/kernel/mm/autonuma/knuma_scand/full_scans {int(row['full_scans'])}" in dump
    assert pd.read_csv(out / "vmstat" / "index.csv")["file"].tolist() == ["config_0000.txt"]


def test_single_run_offline_wandb_history_and_summary(single):
    out, _ = single
    wb = read_wandb(wandb_run_dir(out))
    hist = wb["history"]
    res = pd.read_parquet(out / "results.parquet").iloc[0]
    curves = [h for h in hist if "sim_time_s" in h]
    assert len(curves) == res["reports"]
    ts = pd.read_parquet(out / "timeseries.parquet").sort_values("sim_time_s")
    for key in ("sim_time_s", "hinting_faults", "pages_scanned", "pages_migrated", "migrated_mib", "exchanges",
                "overhead_cpu_s", "overhead/scan_cpu_s", "overhead/fault_cpu_s", "threads_done", "vmstat/numa_hit",
                "vmstat/numa_pte_updates"):
        assert all(key in h for h in curves), key
    # the local fraction exists while threads work: where the time series has none, wandb has no NaN
    for h, lf in zip(sorted(curves, key=lambda h: h["sim_time_s"]), ts["local_fraction"]):
        assert ("local_fraction" in h) == (lf == lf) and same_number(h.get("local_fraction", lf), lf)
    assert [h["sim_time_s"] for h in curves] == sorted(h["sim_time_s"] for h in curves)
    assert same_number(sum(h["pages_migrated"] for h in curves), res["pages_migrated"])
    assert any(m.get("step_metric") == "sim_time_s" for m in wb["metrics"])
    summary = wb["summary"]["summary"]
    assert summary["results"]["_type"] == "table-file" and summary["results"]["nrows"] == 1
    assert any(k.startswith("plots/") for h in hist for k in h)  # the job's plots as wandb images
    metrics = metric_columns(pd.read_parquet(out / "results.parquet"))
    assert {"runtime_s", "local_fraction_final", "pages_migrated", "converged"} <= set(metrics)
    for m in metrics:
        if res[m] == res[m]:
            assert same_number(summary.get(m), res[m]), (m, summary.get(m), res[m])
        else:
            assert m not in summary  # a value that does not exist is left out, not NaN
    assert wb["run"]["run_group"] == "quick"
    cfg = wb["run"]["config"]["update"]
    # flat sysfs-style keys, as in results.parquet
    assert cfg["autonuma.knuma_scand.pages_to_scan"] == 8192 and cfg["machine"] == "tiny2"
    assert cfg["combo_label"] == res["combo_label"] and cfg["seeds"] == [0]


def test_existing_results_are_not_overwritten(single, env):
    out, _ = single
    before = (out / "results.parquet").stat().st_mtime_ns
    t0 = time.time()
    p = run_cli(TINY + [f"hydra.run.dir={out}"], cwd=out.parent, env=env, check=False)
    assert p.returncode == 2
    assert "results.parquet exists" in p.stderr and "results.overwrite=true" in p.stderr
    assert (out / "results.parquet").stat().st_mtime_ns == before
    assert time.time() - t0 < 60


def test_range_error_exits_2_with_one_line_before_compiling(env, tmp_path):
    t0 = time.time()
    p = run_cli(TINY + ["policy.autonuma.knuma_scand.pages_to_scan=0", f"hydra.run.dir={tmp_path / 'bad'}"],
                cwd=tmp_path, env=env, check=False)
    assert p.returncode == 2
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: policy.autonuma.knuma_scand.pages_to_scan=0: must be an integer in [1, 16777216]"]
    assert not (tmp_path / "bad" / "results.parquet").exists()
    assert "batch 1/1" not in p.stdout + p.stderr  # nothing was built or compiled
    assert time.time() - t0 < 60


def test_typo_fails_with_hydra_message_in_one_line(env, tmp_path):
    p = run_cli(["policy.autonuma.knuma_scand.pages_to_scn=1"], cwd=tmp_path, env=env, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ")
    assert "pages_to_scn" in errors[0] and "KnumaScand" in errors[0]
    full = run_cli(["policy.autonuma.knuma_scand.pages_to_scn=1"], cwd=tmp_path, env={**env, "HYDRA_FULL_ERROR": "1"},
                   check=False)
    assert full.returncode == 1 and "Traceback" in full.stderr  # hydra's own report when asked for


@pytest.fixture(scope="module")
def multirun_basic(env, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("mr")
    sweep = cwd / "mr_basic"
    p = run_cli(["-m"] + TINY + ["policy=autonuma24,none", f"hydra.sweep.dir={sweep}"], cwd=cwd, env=env)
    MULTIRUN_OUTPUT[str(sweep)] = p.stdout + p.stderr
    return sweep


MULTIRUN_OUTPUT: dict = {}


def test_multirun_basic_launcher(multirun_basic):
    jobs = sorted(p for p in multirun_basic.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    pols = [pd.read_parquet(j / "results.parquet").iloc[0]["policy"] for j in jobs]
    assert pols == ["autonuma24", "none"]
    groups = set()
    for j in jobs:
        wb = read_wandb(wandb_run_dir(j))
        groups.add(wb["run"]["run_group"])
        assert any("sim_time_s" in h for h in wb["history"])
    assert groups == {f"quick/{multirun_basic.name}"}  # one wandb group per hydra sweep


def test_multirun_index_and_summary(multirun_basic, env):
    """The sweep folder gets a README naming each job's overrides and results; the launcher's
    output ends with where every job's results are and how to merge them; compare reads two jobs."""
    import subprocess
    import sys
    index = (multirun_basic / "README.md").read_text()
    assert "2 job(s), 2 with results" in index
    for num, pol in (("0", "autonuma24"), ("1", "none")):
        line = next(x for x in index.splitlines() if x.startswith(f"| {num} |"))
        assert f"policy={pol}" in line and f"`{num}/results.parquet`" in line
    out = MULTIRUN_OUTPUT[str(multirun_basic)]
    assert "multirun done: 2 of 2 job(s) wrote results" in out
    assert str(multirun_basic / "0" / "results.parquet") in out and f"autonuma-sim-report {multirun_basic}" in out
    p = subprocess.run([sys.executable, "-m", "autonuma_jax.analysis.compare", str(multirun_basic / "0"),
                        str(multirun_basic / "1")], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "compared: policy: A=autonuma24 B=none" in p.stdout
    # one seed per side: a difference, but no interval and so no verdict of significance
    assert "runtime_s: no significant difference on numa01 (tiny2)" in p.stdout and "too few seeds" in p.stdout


def test_report_merges_a_multirun(multirun_basic, env):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "autonuma_jax.report", str(multirun_basic)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rep = multirun_basic / "report"
    merged = pd.read_parquet(rep / "results_merged.parquet")
    assert len(merged) == 2 and sorted(merged["job_dir"]) == ["0", "1"]
    assert sorted(merged["group"]) == ["policy=autonuma24", "policy=none"]
    assert (rep / "convergence.png").exists() and list(rep.glob("nmstat_*.png"))
    summ = pd.read_csv(rep / "summary.csv")
    assert len(summ) == 2 and "runtime_s_mean" in summ.columns
    assert "merged 2 configurations from 2 job(s)" in p.stdout
    # the kernel counters per combination: AutoNUMA24's sysfs ones, NaN for none (Linux 3.6 had no AutoNUMA)
    cnt = pd.read_csv(rep / "counters.csv").set_index("group")
    assert cnt.loc["policy=autonuma24", "autonuma.knuma_scand.full_scans_mean"] > 0
    assert cnt.loc["policy=none", "numa_hint_faults_mean"] == 0 and cnt.loc["policy=none", "numa_hit_mean"] > 0
    assert "kernel counters (means" in p.stdout and not (rep / "perf_bench_numa.csv").exists()


def test_multirun_submitit_local_launcher(env, tmp_path):
    sweep = tmp_path / "mr_local"
    p = run_cli(["-m", "hydra/launcher=local"] + TINY + ["seed=3,4", "logger=disabled", "results.plots=false",
                                                         f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env)
    # the launcher's output ends with where each job's results are
    assert "multirun done: 2 of 2 job(s) wrote results" in p.stdout
    line = next(x for x in p.stdout.splitlines() if x.strip().startswith("job 1 ("))
    assert "seed=4" in line and line.endswith(str(sweep / "1" / "results.parquet"))
    seeds = sorted(int(pd.read_parquet(sweep / j / "results.parquet").iloc[0]["seed"]) for j in ("0", "1"))
    assert seeds == [3, 4]
    assert (sweep / ".submitit").is_dir()
    assert not (sweep / "0" / "wandb").exists()  # logger=disabled


def test_console_script_and_module_entry_point(env, tmp_path):
    import shutil
    import subprocess
    import sys
    exe = Path(sys.executable).parent / "autonuma-sim"
    if not exe.exists():
        exe = shutil.which("autonuma-sim")
    if not exe:
        pytest.skip("autonuma-sim console script not installed (pip install -e .)")
    p = subprocess.run([str(exe), "--cfg", "job", "machine=4node_32cpu"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "preset: 4node_32cpu" in p.stdout and "pages_to_scan: 32768" in p.stdout
    assert not os.path.exists(tmp_path / "outputs")
