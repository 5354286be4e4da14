"""A one-knob sweep end to end (subprocess CLI): its plots, its wandb runs (one per knob value,
read back from the offline files), the stdout table; and ``--dry-run``, which plans and writes
nothing. The question answered is the one of the README: which pages_to_scan converges fastest,
at what CPU cost."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import TINY, cli_env, run_cli, same_number, wandb_runs  # noqa: E402

SCANS = [4096, 65536]
KNOB = "autonuma.knuma_scand.pages_to_scan"
ONE_KNOB = TINY + ["sweep.mode=grid", "sweep.seeds=2", f"+sweep.params.{KNOB}=[{','.join(map(str, SCANS))}]"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("cli_home")
    return cli_env(str(tmp_path_factory.mktemp("xla_cache")), str(home))


@pytest.fixture(scope="module")
def one_knob(env, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cwd")
    out = cwd / "sweep"
    p = run_cli(ONE_KNOB + [f"hydra.run.dir={out}", "name=one_knob"], cwd=cwd, env=env)
    return out, p


def test_one_knob_sweep_plots_and_table(one_knob):
    out, p = one_knob
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 4 and sorted(set(res[KNOB])) == SCANS
    assert "converged" in res.columns and res["converged"].dtype == bool
    plots = out / "plots"
    assert (plots / f"knob_{KNOB.replace('.', '_')}.png").exists()
    assert (plots / "tradeoff.png").exists() and (plots / "convergence.png").exists()
    assert "overhead_cpu_s" in p.stdout + p.stderr  # the stdout results table shows the CPU cost


def test_one_knob_sweep_wandb_run_per_value(one_knob):
    out, _ = one_knob
    res = pd.read_parquet(out / "results.parquet")
    runs = wandb_runs(out)
    combos = [n for n, wb in runs.items() if n != "job" and wb["run"]["job_type"] == "combination"]
    assert len(combos) == len(SCANS)
    for name in combos:
        wb = runs[name]
        assert wb["run"]["run_group"] == "one_knob"
        cfg = wb["run"]["config"]["update"]
        value = cfg[KNOB]
        sub = res[res[KNOB] == value]
        assert cfg["seeds"] == sorted(sub["seed"].tolist()) and cfg["machine"] == "tiny2"
        summ = wb["summary"]["summary"]
        assert summ["n_seeds"] == 2
        for m in ("local_fraction_final", "overhead_cpu_s", "pages_migrated", "converge_s"):
            assert same_number(summ[m], sub[m].astype(float).mean()), m
        assert "converge_s_ci95" in summ and same_number(summ["converged"], sub["converged"].mean())
        hist = sorted((h for h in wb["history"] if "sim_time_s" in h), key=lambda h: h["sim_time_s"])
        assert hist and all(h.get(k) is not None for h in hist for k in ("hinting_faults", "pages_scanned",
                                                                          "overhead_cpu_s", "threads_done"))
        assert all(h["local_fraction"] == h["local_fraction"] for h in hist if "local_fraction" in h)  # no NaN
    job = runs["job"]
    js = job["summary"]["summary"]
    assert js["n_configs"] == 4 and js["results"]["nrows"] == 4
    assert "runtime_s" not in js  # no mean over different knob values
    best = res.groupby("combo_label")["converge_s"].mean()
    assert js["best/converge_s"] == best.idxmin() and same_number(js["best/converge_s_value"], best.min())
    assert any(k.startswith("plots/knob_") for h in job["history"] for k in h)


def test_dry_run_plans_and_writes_nothing(env, tmp_path):
    out = tmp_path / "never"
    p = run_cli(ONE_KNOB + [f"hydra.run.dir={out}", "--dry-run"], cwd=tmp_path, env=env)
    assert "dry run: 1 job(s), 4 configuration(s) in 1 compiled batch(es), up to 1 compile(s)" in p.stdout
    assert "estimated wall time on this machine" in p.stdout and "nothing was run or written" in p.stdout
    assert not out.exists()
    sweep = tmp_path / "never_mr"
    p = run_cli(["-m"] + TINY + ["policy=autonuma24,none", f"hydra.sweep.dir={sweep}", "dry_run=true"],
                cwd=tmp_path, env=env)
    assert "dry run: 2 job(s), 2 configuration(s)" in p.stdout and "policy=none): 1 configuration(s)" in p.stdout
    assert not sweep.exists()
    bad = run_cli(TINY + ["sim.duration_s=-1", "--dry-run", f"hydra.run.dir={out}"], cwd=tmp_path, env=env,
                  check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "duration_s" in bad.stderr
    assert not out.exists()


def test_dry_run_estimate_uses_recorded_throughput(one_knob, env, tmp_path):
    """The sweep above recorded its batch; the same command planned again is estimated from it."""
    p = run_cli(ONE_KNOB + ["--dry-run"], cwd=tmp_path, env=env)
    assert "1 recorded run(s) of this shape and batch" in p.stdout


def _documented():
    import re
    text = (Path(__file__).resolve().parents[1] / "docs" / "outputs.md").read_text()
    names, patterns, prefixes = set(), [], []
    for tok in re.findall(r"`([^`]+)`", text):
        if tok.endswith(".*"):
            prefixes.append(tok[:-1])
        elif "<" in tok:
            patterns.append(re.compile("^" + re.sub(r"<[^>]+>", r"[A-Za-z0-9_]+", re.escape(tok).replace(r"\<", "<")
                                                      .replace(r"\>", ">")) + "$"))
        else:
            names.add(tok)
    return names, patterns, prefixes


def test_every_output_column_is_documented(one_knob):
    """docs/outputs.md names every column a job writes (or its pattern / knob group)."""
    out, _ = one_knob
    names, patterns, prefixes = _documented()
    for f in ("results.parquet", "timeseries.parquet"):
        for c in pd.read_parquet(out / f).columns:
            ok = c in names or any(p.match(c) for p in patterns) or any(c.startswith(p) for p in prefixes)
            assert ok, f"{f}: column {c!r} is not described in docs/outputs.md"
