"""The job in-process (compose API + ``run_job``): an in-process sweep of N knob values is ONE
compiled batch; wandb failures fall back and never lose results; progress output; no-clobber
writes. All simulations here share one shape (compiled once per session)."""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("hydra")
pd = pytest.importorskip("pandas")

import jax  # noqa: E402

from autonuma_jax.cli import results as R  # noqa: E402
from autonuma_jax.cli.job import run_job  # noqa: E402
from autonuma_jax.cli.progress import Progress  # noqa: E402
from autonuma_jax.cli.wandb_log import WandbWarning  # noqa: E402

from cli_helpers import compose, same_number, to_dict, wandb_runs  # noqa: E402

SCANS = [4096, 131072]
PASSES = [250, 1000]
SWEEP = ["experiment=quick", "sweep=none", "sim.duration_s=2", "workload.loops=20", "progress.mode=off",
         "sim.compilation_cache_dir=null", "sweep.mode=grid",
         f"+sweep.params.autonuma.knuma_scand.pages_to_scan=[{','.join(map(str, SCANS))}]",
         f"+sweep.params.autonuma.knuma_scand.scan_sleep_pass_millisecs=[{','.join(map(str, PASSES))}]"]

_COMPILES: list = []


def _listener(event, duration, **kw):
    # every XLA compile (or persistent-cache load) of a program; jax 0.10 names it in fun_name
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES.append(str(kw.get("fun_name", "?")))


def _chunk_programs(events):
    return [f for f in events if "run_chunk" in f]


jax.monitoring.register_event_duration_secs_listener(_listener)


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    for k in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(k, str(tmp_path / k.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)


def job_cfg(extra=()):
    return to_dict(compose(SWEEP + list(extra)))


@pytest.fixture(scope="module")
def sweep_job(tmp_path_factory):
    """N = 4 knob combinations (2 x 2), one seed, run in-process once."""
    from autonuma_jax.simulate import compiled_chunk
    compiled_chunk.cache_clear()
    _COMPILES.clear()
    misses = compiled_chunk.cache_info().misses
    out = tmp_path_factory.mktemp("sweep_job")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = run_job(job_cfg(["logger=disabled"]), str(out), job={"num": 0})
    return out, info, compiled_chunk.cache_info().misses - misses, list(_COMPILES)


def test_in_process_sweep_is_one_compiled_batch(sweep_job):
    out, info, lru_misses, xla_compiles = sweep_job
    assert info.n_configs == len(SCANS) * len(PASSES)
    assert info.n_batches == 1
    assert info.compiles == 1 and lru_misses == 1
    if any(f != "?" for f in xla_compiles):  # the event names its function (jax 0.10)
        assert len(_chunk_programs(xla_compiles)) == 1, xla_compiles  # one XLA program for the whole sweep
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 4
    got = sorted(zip(res["autonuma.knuma_scand.pages_to_scan"], res["autonuma.knuma_scand.scan_sleep_pass_millisecs"]))
    assert got == sorted((s, p) for s in SCANS for p in PASSES)
    assert res["combo"].nunique() == 4 and set(res["combo_label"]) == {
        f"pages_to_scan={s},scan_sleep_pass_millisecs={p}" for s in SCANS for p in PASSES}
    # the heatmap of the runtime ratio over the two swept knobs
    heat = [h.name for h in (out / "plots").glob("heatmap_runtime_s_ratio_*.png")]
    assert len(heat) == 1 and "pages_to_scan" in heat[0] and "scan_sleep_pass_millisecs" in heat[0]


def test_seeds_and_knobs_never_recompile(sweep_job, tmp_path):
    """Other knob values and other seeds of the same shape reuse the compiled program."""
    _COMPILES.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = run_job(job_cfg(["logger=disabled", "results.plots=false", "seed=7",
                                "policy.autonuma.knuma_migrated.pages_to_migrate=2048"]), str(tmp_path / "j"))
    assert info.compiles == 0 and not _chunk_programs(_COMPILES)
    res = pd.read_parquet(tmp_path / "j" / "results.parquet")
    assert set(res["seed"]) == {7} and set(res["autonuma.knuma_migrated.pages_to_migrate"]) == {2048}


def test_online_wandb_failure_falls_back_offline(sweep_job, tmp_path, wandb_env, monkeypatch):
    import wandb
    real_init = wandb.init
    modes = []

    def flaky_init(*a, **kw):
        modes.append(kw.get("mode"))
        if kw.get("mode") == "online":
            raise wandb.errors.CommError("network is unreachable (test)")
        return real_init(*a, **kw)

    monkeypatch.setattr(wandb, "init", flaky_init)
    out = tmp_path / "j"
    with pytest.warns(WandbWarning, match="wandb.init\\(mode=online\\) failed"):
        info = run_job(job_cfg(["logger=wandb_online", "results.plots=false"]), str(out), group="g", run_name="n")
    # the first run falls back; the other runs of the job go offline at once
    assert modes == ["online"] + ["offline"] * 5
    assert (out / "results.parquet").exists()
    assert info.wandb_dir and os.path.isdir(info.wandb_dir)
    runs = wandb_runs(out)
    res = pd.read_parquet(out / "results.parquet")
    # one run per knob combination (one seed each here) and one job run, all in the job's group
    assert len(runs) == 4 + 1 + 1  # names of 5 runs + the "job" alias
    job = runs["job"]
    assert job["summary"]["summary"]["n_configs"] == 4 and job["summary"]["summary"]["n_combinations"] == 4
    for label in res["combo_label"]:
        wb = runs[f"n {label}"]
        row = res[res["combo_label"] == label].iloc[0]
        assert wb["run"]["run_group"] == "g" and wb["run"]["job_type"] == "combination"
        cfg = wb["run"]["config"]["update"]
        assert cfg["autonuma.knuma_scand.pages_to_scan"] == row["autonuma.knuma_scand.pages_to_scan"]
        assert cfg["autonuma.knuma_scand.scan_sleep_pass_millisecs"] == row["autonuma.knuma_scand.scan_sleep_pass_millisecs"]
        summ = wb["summary"]["summary"]
        for m in ("local_fraction_final", "pages_migrated", "hinting_faults"):
            assert same_number(summ[m], row[m]), m
        hist = [h for h in wb["history"] if "sim_time_s" in h]
        assert hist and all("pages_scanned" in h and "threads_done" in h for h in hist)


def test_wandb_unavailable_or_broken_never_loses_results(sweep_job, tmp_path, wandb_env, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.warns(WandbWarning, match="wandb unavailable"):
        info = run_job(job_cfg(["results.plots=false"]), str(tmp_path / "a"))
    assert info.wandb_dir is None and (tmp_path / "a" / "results.parquet").exists()
    monkeypatch.undo()

    import wandb
    from autonuma_jax.cli import wandb_log

    def boom(*a, **kw):
        raise RuntimeError("disk full (test)")

    monkeypatch.setattr(wandb_log, "history_rows", boom)
    with pytest.warns(WandbWarning, match="wandb logging failed"):
        info = run_job(job_cfg(["results.plots=false"]), str(tmp_path / "b"))
    assert info.wandb_dir is None and (tmp_path / "b" / "results.parquet").exists()
    assert wandb.run is None  # the broken run was finished


def test_results_are_written_atomically_and_never_clobbered(tmp_path):
    df = pd.DataFrame({"a": [1, 2]})
    p = tmp_path / "results.parquet"
    R.write_atomic(df, str(p), overwrite=False)
    with pytest.raises(R.ResultsExistError):
        R.write_atomic(pd.DataFrame({"a": [3]}), str(p), overwrite=False)
    assert list(pd.read_parquet(p)["a"]) == [1, 2]
    R.write_atomic(pd.DataFrame({"a": [3]}), str(p), overwrite=True)
    assert list(pd.read_parquet(p)["a"]) == [3]
    assert sorted(os.listdir(tmp_path)) == ["results.parquet"]
    with pytest.raises(R.ResultsExistError):
        R.check_writable(str(tmp_path), overwrite=False)


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


def test_progress_bar_on_a_terminal_and_lines_otherwise():
    tty = _Stream(True)
    p = Progress(4, 3, mode="auto", stream=tty)
    assert p.mode == "bar"
    for _ in range(4):
        p.update()
    p.close()
    text = tty.getvalue()
    assert "\r[" in text and "100.0%" in text and "ETA" in text and text.endswith("\n")

    plain = _Stream(False)
    p = Progress(100, 3, mode="auto", interval_s=3600, stream=plain)
    assert p.mode == "lines"
    for _ in range(50):
        p.update()
    p.close()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 2  # the first one, then nothing until the interval passes, then the end
    assert "\r" not in plain.getvalue() and lines[-1].startswith("progress: 100.0%")

    stopped = _Stream(False)
    p = Progress(10, 1, mode="lines", interval_s=3600, stream=stopped)
    for _ in range(3):
        p.update()
    p.close(complete=False)  # preempted: the last line says where it stopped, not 100 %
    last = stopped.getvalue().splitlines()[-1]
    assert last.startswith("progress:  30.0% (3/10 chunks") and "stopped (checkpointed)" in last, last


def test_checkpoints_resume_an_interrupted_job_and_are_removed(sweep_job, tmp_path, monkeypatch):
    """A job killed after simulating (before its results were written) resumes from its checkpoint."""
    cfg = job_cfg(["logger=disabled", "results.plots=false", "results.checkpoint_every=1"])
    out = tmp_path / "j"

    def killed(*a, **kw):
        raise KeyboardInterrupt("killed (test)")

    monkeypatch.setattr(R, "write_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        run_job(cfg, str(out))
    assert list((out / "checkpoints").glob("batch0.npz"))
    monkeypatch.undo()
    info = run_job(cfg, str(out))
    assert info.compiles == 0 and not (out / "checkpoints").exists()
    resumed = pd.read_parquet(out / "results.parquet")
    fresh = pd.read_parquet(sweep_job[0] / "results.parquet")
    for col in ("runtime_s", "local_fraction_final", "pages_migrated", "converge_s"):
        np.testing.assert_array_equal(resumed[col].to_numpy(), fresh[col].to_numpy(), err_msg=col)  # NaN == NaN


def test_a_configurations_results_do_not_depend_on_its_batch(tmp_path):
    """experiment=quick with two seeds (one batch, early stop at the slower seed), with one seed, and
    with sim.batch_size=1: seed 0's row of results.parquet (every column but the job's own) and its
    rows of timeseries.parquet are identical."""
    base = ["logger=disabled", "results.plots=false", "seed=0", "sim.duration_s=8"]
    runs = {"two": base + ["sweep.seeds=2"], "one": base + ["sweep.seeds=1"],
            "two_bs1": base + ["sweep.seeds=2", "sim.batch_size=1"]}
    res, ts = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, extra in runs.items():
            run_job(to_dict(compose(SWEEP[:5] + extra)), str(tmp_path / name))
            r = pd.read_parquet(tmp_path / name / "results.parquet")
            t = pd.read_parquet(tmp_path / name / "timeseries.parquet")
            res[name] = r[r["seed"] == 0].reset_index(drop=True)
            ts[name] = t[t["seed"] == 0].reset_index(drop=True)
    two = pd.read_parquet(tmp_path / "two" / "results.parquet")
    assert two["sim_s"].nunique() == 2  # the seeds end at different times: the batch ran past seed 0's end
    skip = {"job", "job_dir", "batch", "sweep_size", "n_configs", "combo", "index", "wall_s"}
    cols = [c for c in res["one"].columns if c not in skip and c in res["two"].columns]
    for name in ("two", "two_bs1"):
        for c in cols:
            a, b = res["one"][c].tolist(), res[name][c].tolist()
            same = all(x == y or (isinstance(x, float) and np.isnan(x) and np.isnan(y)) for x, y in zip(a, b))
            assert same, (name, c, a, b)
        pd.testing.assert_frame_equal(ts["one"][[c for c in ts["one"].columns if c not in skip]],
                                      ts[name][[c for c in ts["one"].columns if c not in skip]], check_like=True)
