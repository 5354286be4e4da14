"""The analysis layer (autonuma_jax/analysis) on small synthetic result folders: statistics, the
converged flag, per-combination tables, ratios, plots, the report over several folders and the
compare command. No simulation: every table here is written by the test itself."""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from autonuma_jax import metrics as M
from autonuma_jax.analysis import compare as C
from autonuma_jax.analysis import stats as S
from autonuma_jax.analysis.columns import add_groups, metric_columns
from autonuma_jax.analysis.tables import add_runtime_ratio, pareto_front, summary_table
from autonuma_jax.report import main as report_main

KNOB = "autonuma.knuma_scand.pages_to_scan"
KNOB2 = "autonuma.knuma_scand.scan_sleep_pass_millisecs"


def fake_job(path, machine="2node_24cpu", workload="numa01", policy="autonuma24", knobs=None, seeds=3,
             runtime=100.0, spread=1.0, overhead=2.0, reports=5, seed0=0):
    """A job folder with results.parquet / timeseries.parquet shaped as the CLI writes them:
    one configuration per (knob combination, seed)."""
    knobs = knobs or [{}]
    rows, ts = [], []
    rng = np.random.default_rng(abs(hash((machine, workload, policy, str(path)))) % 2**32)
    i = 0
    for kv in knobs:
        for s in range(seeds):
            rt = runtime(kv) if callable(runtime) else runtime
            row = {"config_index": i, "combo": 0, "combo_label": ",".join(f"{k}={v}" for k, v in kv.items()) or policy,
                   "label": f"{machine}/{workload}/{policy}/seed{s}", "machine": machine, "workload": workload,
                   "variant": "default", "policy": policy, "seed": seed0 + s, KNOB: 32768, KNOB2: 10000,
                   "runtime_s": rt + spread * (s - (seeds - 1) / 2), "converge_s": rt / 2, "converged": True,
                   "local_fraction_final": 0.9, "finished": True, "pages_migrated": 1000 * (s + 1),
                   "overhead_cpu_s": (overhead(kv) if callable(overhead) else overhead) + 0.01 * s,
                   "hinting_faults": 10 + s, "exchanges": 0}
            row.update(kv)
            rows.append(row)
            for r in range(reports):
                ts.append({"config_index": i, "seed": seed0 + s, "report": r, "sim_time_s": float(r + 1),
                           "local_fraction": min(1.0, 0.5 + 0.1 * r + 0.01 * rng.random()), "progress": r / reports,
                           "pages_migrated": 10 * r, "hinting_faults": 5, "exchanges": 0,
                           "overhead_scan_us": 100, "overhead_fault_us": 50, "mm0.node0.pages": 100, "mm0.node1.pages": 0})
            i += 1
    os.makedirs(path, exist_ok=True)
    pd.DataFrame(rows).to_parquet(os.path.join(path, "results.parquet"), index=False)
    pd.DataFrame(ts).to_parquet(os.path.join(path, "timeseries.parquet"), index=False)
    return str(path)


# ---- statistics ------------------------------------------------------------------------------

@pytest.mark.parametrize("df,t", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (2.5, 3.5747),
                                  (7.7, 2.3217)])
def test_t_quantile_integer_and_welch_df(df, t):
    assert S.t_quantile(0.95, df) == pytest.approx(t, abs=2e-3)


def test_diff_ci_welch():
    d = S.diff_ci([10, 11, 12], [8, 9, 10])
    assert d["diff"] == pytest.approx(-2.0) and d["df"] == pytest.approx(4.0)
    assert d["half"] == pytest.approx(2.7764 * math.sqrt(2 / 3), rel=1e-3)
    assert d["rel"] == pytest.approx(-2 / 11) and not S.significant(d)
    assert S.significant(S.diff_ci([10, 10.1, 9.9], [8, 8.1, 7.9]))
    exact = S.diff_ci([0, 0, 0], [5, 5, 5])
    assert exact["half"] == 0.0 and S.significant(exact)  # a deterministic metric: exact difference
    one = S.diff_ci([1.0], [2.0, 3.0])
    assert math.isnan(one["half"]) and not S.significant(one)  # one seed: no interval, no verdict


# ---- converged -------------------------------------------------------------------------------

def _rows(loc):
    loc = np.asarray(loc, float)
    tot = np.where(np.isnan(loc), 0, 1000)
    return {"local_kib": np.nan_to_num(loc * 1000), "total_kib": tot}


def test_converged_needs_a_settled_stretch_above_one_over_nodes():
    rising = [0.5, 0.6, 0.8, 0.95] + [0.97] * 16
    assert M.converged(_rows(rising), 2)
    # settles only in the final window (the last 10 %): not converged, though converge_s exists
    late = [0.5] * 18 + [0.9, 0.9]
    assert not M.converged(_rows(late), 2) and M.converge_time(_rows(late), 1.0) > 0
    # stable at locality 0 (inverse_bind): settled, but not towards its memory
    assert not M.converged(_rows([0.0] * 20), 2)
    # 0.4 is above 1/4 on a 4-node box, below 1/2 on a 2-node one
    assert M.converged(_rows([0.4] * 20), 4) and not M.converged(_rows([0.4] * 20), 2)
    # rows after every thread is done (no work) do not count
    assert M.converged(_rows(rising + [np.nan] * 10), 2)
    assert not M.converged(_rows([np.nan] * 5), 2)


def test_convergence_ignores_the_end_game():
    """Rows after the first thread finished (idle CPUs, the load balancer moving the last threads)
    are the end-game, not convergence: numa01's locality 1.00 for a minute, then 0.70 at the end."""
    loc = [0.55] * 10 + [0.8] * 5 + [1.0] * 60 + [0.97, 0.95, 0.7]
    rows = _rows(loc)
    rows["tasks_done"] = np.array([0] * 75 + [3, 10, 24])
    assert M.converge_time(rows, 1.0) == 16.0 and M.converged(rows, 2)
    no_tasks = {k: v for k, v in rows.items() if k != "tasks_done"}
    assert M.converge_time(no_tasks, 1.0) == 78.0 and not M.converged(no_tasks, 2)  # the end-game decides
    # a thread finished almost at once: too few steady rows, every working row counts
    early = dict(rows, tasks_done=np.array([0] * 3 + [1] * 75))
    assert M.steady_rows(early).tolist() == list(range(78))
    # local_fraction_final is what the run ended with, end-game included
    assert M.final_locality(rows) == pytest.approx((5 * 1.0 + 0.97 + 0.95 + 0.7) / 8)


# ---- tables ----------------------------------------------------------------------------------

def test_groups_never_pool_machines_or_workloads(tmp_path):
    a = pd.read_parquet(fake_job(tmp_path / "a", workload="numa01") + "/results.parquet")
    b = pd.read_parquet(fake_job(tmp_path / "b", workload="numa02", runtime=40.0) + "/results.parquet")
    df = add_groups(pd.concat([a, b], ignore_index=True))
    summ = summary_table(df)
    assert len(summ) == 2 and set(summ["workload"]) == {"numa01", "numa02"}
    r = summ.set_index("workload")
    assert r.loc["numa01", "runtime_s_mean"] == pytest.approx(100) and r.loc["numa02", "runtime_s_mean"] == pytest.approx(40)
    assert r.loc["numa01", "runtime_s_ci95"] == pytest.approx(S.t_quantile(0.95, 2) * 1.0 / math.sqrt(3))
    assert r.loc["numa01", "converged_mean"] == 1.0
    assert "converged" in metric_columns(df)


def test_runtime_ratio_to_hard_bind_of_the_same_cell(tmp_path):
    a = pd.read_parquet(fake_job(tmp_path / "a", policy="autonuma24", runtime=150.0) + "/results.parquet")
    hb = pd.read_parquet(fake_job(tmp_path / "h", policy="hard_bind", runtime=100.0) + "/results.parquet")
    df = add_runtime_ratio(pd.concat([a, hb], ignore_index=True))
    got = df.groupby("policy")["runtime_s_ratio"].mean()
    assert got["autonuma24"] == pytest.approx(1.5) and got["hard_bind"] == pytest.approx(1.0)
    assert set(df["ratio_baseline"]) == {"hard_bind"}


def test_pareto_front():
    x = [1, 2, 3, 2, 4]
    y = [5, 3, 1, 4, 4]
    assert list(pareto_front(x, y)) == [True, True, True, False, False]
    assert list(pareto_front([1, np.nan], [1, 0])) == [True, False]


# ---- report ----------------------------------------------------------------------------------

def test_report_one_knob_sweep_plots_and_tradeoff(tmp_path, capsys):
    knobs = [{KNOB: v} for v in (4096, 16384, 65536)]
    job = fake_job(tmp_path / "sweep", knobs=knobs, runtime=lambda kv: 200 - kv[KNOB] / 1000,
                   overhead=lambda kv: kv[KNOB] / 10000)
    assert report_main([job]) == 0
    rep = tmp_path / "sweep" / "report"
    assert (rep / f"knob_{KNOB.replace('.', '_')}.png").exists()
    assert (rep / "tradeoff.png").exists() and (rep / "convergence.png").exists()
    assert not list(rep.glob("heatmap_*"))  # one knob: lines, not a heatmap
    summ = pd.read_csv(rep / "summary.csv")
    assert len(summ) == 3 and {"runtime_s_ci95", "overhead_cpu_s_mean", "converged_mean"} <= set(summ.columns)
    out = capsys.readouterr().out
    assert "overhead_cpu_s_mean" in out and "runtime_s_ci95" in out


def test_report_two_knobs_heatmap_of_a_cost_metric_is_absolute(tmp_path):
    knobs = [{KNOB: a, KNOB2: b} for a in (4096, 65536) for b in (1000, 10000)]
    job = fake_job(tmp_path / "grid", knobs=knobs, overhead=lambda kv: kv[KNOB] / 1000.0)
    assert report_main([job, "--metric", "overhead_cpu_s", "--no-timeseries"]) == 0
    heat = list((tmp_path / "grid" / "report").glob("heatmap_*.png"))
    assert len(heat) == 1 and heat[0].name.startswith("heatmap_overhead_cpu_s_")  # no "_ratio"
    assert report_main([job, "--no-timeseries"]) == 0
    assert list((tmp_path / "grid" / "report").glob("heatmap_runtime_s_ratio_*.png"))


def test_report_several_folders_and_an_unknown_metric(tmp_path, capsys):
    a = fake_job(tmp_path / "runs" / "a", workload="numa01")
    b = fake_job(tmp_path / "runs" / "b", workload="numa02", runtime=40.0)
    out = tmp_path / "merged"
    assert report_main([a, b, "--out", str(out)]) == 0
    merged = pd.read_parquet(out / "results_merged.parquet")
    assert sorted(set(merged["job_dir"])) == ["a", "b"] and len(merged) == 6
    assert (out / "timeseries_merged.parquet").exists()
    assert len(pd.read_csv(out / "summary.csv")) == 2  # machine x workload x combination, not averaged
    assert "merged 6 configurations from 2 job(s)" in capsys.readouterr().out
    assert report_main([a, "--metric", "runtime"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --metric='runtime'") and "runtime_s" in err and err.count("\n") == 1
    assert report_main([str(tmp_path / "nowhere")]) == 2


def test_convergence_plot_says_how_many_combinations_it_left_out(tmp_path, monkeypatch):
    from autonuma_jax.analysis import convergence
    knobs = [{KNOB: 1024 * (i + 1)} for i in range(5)]
    job = fake_job(tmp_path / "many", knobs=knobs, seeds=1)
    df = add_groups(pd.read_parquet(job + "/results.parquet"))
    ts = pd.read_parquet(job + "/timeseries.parquet")
    titles = []
    real = convergence.save

    def spy(fig, path, **kw):
        titles.append(fig._suptitle.get_text())
        return real(fig, path, **kw)
    monkeypatch.setattr(convergence, "save", spy)
    convergence.convergence_plot(df, ts, str(tmp_path / "c.png"), max_groups=3)
    convergence.convergence_plot(df, ts, str(tmp_path / "d.png"))
    assert "2 of 5 combinations not shown" in titles[0] and "5 combination(s)" in titles[1]


# ---- compare ---------------------------------------------------------------------------------

def test_compare_two_folders_verdicts(tmp_path, capsys):
    a = fake_job(tmp_path / "a", policy="numa_balancing", runtime=100.0, spread=1.0)
    b = fake_job(tmp_path / "b", policy="autonuma24", runtime=88.0, spread=1.0)
    assert C.main([a, b, "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "compared: policy: A=numa_balancing B=autonuma24" in out
    line = next(x for x in out.splitlines() if x.startswith("runtime_s: B is"))
    assert "12.0 +-" in line and "faster than A on numa01 (2node_24cpu)" in line
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    rt = table[table["metric"] == "runtime_s"].iloc[0]
    assert rt["rel_pct"] == pytest.approx(-12.0) and bool(rt["significant"])


def test_compare_two_groups_of_one_folder_no_difference(tmp_path, capsys):
    knobs = [{KNOB: 4096}, {KNOB: 65536}]
    job = fake_job(tmp_path / "one", knobs=knobs, runtime=100.0, spread=3.0)
    assert C.main([job, "--a", f"{KNOB}=4096", "--b", f"{KNOB}=65536"]) == 0
    out = capsys.readouterr().out
    assert "runtime_s: no significant difference on numa01 (2node_24cpu)" in out
    assert C.main([job, "--a", f"{KNOB}=4096", "--b", f"{KNOB}=1"]) == 2
    assert "no configuration matches" in capsys.readouterr().err
    assert C.main([job, job, "--metric", "bogus"]) == 2
    assert "metric 'bogus'" in capsys.readouterr().err


def test_validate_and_stats_need_no_pandas():
    """validate (and the statistics it shares with the report) run on a bare GPU box: jax + numpy."""
    import subprocess
    import sys
    code = ("import sys, autonuma_jax.validate, autonuma_jax.analysis.stats, autonuma_jax.analysis.validation_plots; "
            "print('pandas' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"


def test_wandb_plan_one_run_per_combination_and_one_under_an_agent(tmp_path):
    """The wandb runs a job logs: one per knob combination + a job run; a job run alone when the
    job is one combination; under a wandb agent the agent's single run (its id, not ours)."""
    from autonuma_jax.cli.wandb_log import plan_runs
    knobs = [{KNOB: 4096}, {KNOB: 65536}]
    job = fake_job(tmp_path / "j", knobs=knobs, seeds=2)
    res = pd.read_parquet(job + "/results.parquet")
    res["combo_label"] = [f"pages_to_scan={v}" for v in res[KNOB]]
    ts = pd.read_parquet(job + "/timeseries.parquet")
    cfg = {"job": {"num": 0}, "sim": {"tick_ms": 1.0}}
    runs = plan_runs(res, ts, cfg, str(tmp_path / "j"), "n", {"job_type": "simulate"}, sweep_agent=False)
    assert [r["job_type"] for r in runs] == ["combination", "combination", "simulate"]
    assert [r["config"][KNOB] for r in runs[:2]] == [4096, 65536] and runs[0]["config"]["seeds"] == [0, 1]
    assert len({r["id"] for r in runs}) == 3 and all(r["id"] for r in runs)
    again = plan_runs(res, ts, cfg, str(tmp_path / "j"), "n", {"job_type": "simulate"}, sweep_agent=False)
    assert [r["id"] for r in again] == [r["id"] for r in runs]  # a resumed job logs under the same ids
    assert len(runs[0]["rows"]) == 5 and runs[0]["rows"][0]["hinting_faults"] == 5
    agent = plan_runs(res, ts, cfg, str(tmp_path / "j"), "n", {"job_type": "simulate"}, sweep_agent=True)
    assert len(agent) == 1 and agent[0]["id"] is None and agent[0]["job"]
    one = plan_runs(res[res[KNOB] == 4096], ts, cfg, str(tmp_path / "j"), "n", {}, sweep_agent=False)
    assert len(one) == 1 and one[0]["config"][KNOB] == 4096 and one[0]["job"]
    from autonuma_jax.cli.wandb_log import WandbWarning
    with pytest.warns(WandbWarning, match="logger.max_runs=1: the other 1 are only in the job run"):
        capped = plan_runs(res, ts, cfg, str(tmp_path / "j"), "n", {"max_runs": 1}, sweep_agent=False)
    assert [r["job"] for r in capped] == [False, True]


def test_swept_knobs_ignores_pandas_string_columns():
    """workload.params (JSON text) varies between perf_bench_numa cases; parquet reads it back as a
    pandas StringDtype, which is not a numpy dtype: not a knob axis, and no error."""
    from autonuma_jax.analysis.columns import swept_knobs
    df = pd.DataFrame({"workload.params": pd.array(['{"case": "a"}', '{"case": "b"}'], dtype="string"),
                       "sim.duration_s": [23.0, 103.0], "policy": ["none", "none"]})
    assert swept_knobs(df) == ["sim.duration_s"]
