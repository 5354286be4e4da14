"""The Python API: ``an.simulate``'s progress report (lines, silence, a callable) and that it never
changes a result; ``autonuma_jax.simulate`` as a module and as a call; the docstrings of the
public API; ``an.results_frame`` / ``an.timeseries_frame``; the identity columns of a CLI job's
timeseries.parquet.

Every simulation here is the same static shape (the conftest's shrunken numa01 on tiny2, 2
simulated seconds in 8 rows, 2 rows per chunk; the CLI job below is built to match it), so the
module compiles one program.
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import subprocess
import sys
import time
import types
import warnings

import numpy as np
import pytest

import autonuma_jax as an
from autonuma_jax import knobs as K
from autonuma_jax.metrics import summarize
from autonuma_jax.progress import Progress, ProgressRecord

from conftest import mini

RPC = 2  # reports per chunk: 8 rows -> 4 chunks per batch
SCAN_PASS = "autonuma.knuma_scand.scan_sleep_pass_millisecs"  # not a capacity: varying it keeps the shape


def _cfgs():
    # two policies and two values of one knob, one batch (engine policies none + autonuma24 are always compiled in)
    return [mini(duration_s=2.0, policy="autonuma24", knobs={SCAN_PASS: 500}),
            mini(duration_s=2.0, policy="none", knobs={SCAN_PASS: 1000})]


@pytest.fixture(scope="module")
def quiet_results():
    return an.simulate(_cfgs(), reports_per_chunk=RPC, progress=False)


def _same(a, b):
    """Bit-identical results: every row and final array, equal dtype and value."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.config == y.config
        for part in ("rows", "final"):
            dx, dy = getattr(x, part), getattr(y, part)
            assert dx.keys() == dy.keys()
            for k in dx:
                assert dx[k].dtype == dy[k].dtype and np.array_equal(dx[k], dy[k]), (part, k)


# ------------------------------------------------------------------------------------------
# progress

def test_progress_lines_on_stderr_and_identical_results(quiet_results, capsys):
    capsys.readouterr()
    res = an.simulate(_cfgs(), reports_per_chunk=RPC, progress=True, progress_interval_s=0)
    out, err = capsys.readouterr()
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.startswith("progress:")]
    assert len(lines) >= 4, err  # one per chunk at interval 0 (and the last one, unless it repeats)
    assert "\r" not in err  # plain lines: notebooks and logs
    first = lines[0]
    assert "(1/4 chunks, 2 configurations) sim 0/2 s," in first, first  # 0.5 of 2 simulated seconds
    assert "elapsed" in first and "ETA" in first
    assert lines[-1].startswith("progress: 100.0% (4/4 chunks"), lines
    _same(res, quiet_results)


def test_progress_default_is_silent_for_a_short_run(quiet_results, capsys):
    capsys.readouterr()
    res = an.simulate(_cfgs(), reports_per_chunk=RPC, progress_interval_s=3600)  # default progress=True
    assert capsys.readouterr().err == ""  # no line before the interval has passed, not even the last
    _same(res, quiet_results)


def test_progress_callable_receives_records(quiet_results, capsys):
    capsys.readouterr()
    recs: list[ProgressRecord] = []
    res = an.simulate(_cfgs(), reports_per_chunk=RPC, progress=recs.append)
    assert capsys.readouterr().err == ""  # a callable replaces the lines
    _same(res, quiet_results)
    assert all(isinstance(r, ProgressRecord) for r in recs)
    steps, last = recs[:-1], recs[-1]
    assert [r.done_chunks for r in steps] == [1, 2, 3, 4]
    assert [r.sim_s for r in steps] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert all(r.total_chunks == 4 and r.n_configs == 2 and r.batch == 1 and r.n_batches == 1 for r in recs)
    assert all(r.batch_sim_s == pytest.approx(2.0) and not r.final for r in steps)
    assert last.final and not last.stopped and last.done_chunks == 4 and last.fraction == 1.0
    assert last.eta_s == 0.0 and last.elapsed_s >= steps[0].elapsed_s >= 0
    assert np.isnan(steps[0].eta_s)  # the first chunk carries the compile: no estimate from it


def test_progress_arguments_are_checked_before_anything_compiles():
    with pytest.raises(an.ConfigError, match="progress='yes': must be True, False or a callable"):
        an.simulate(_cfgs(), progress="yes")
    with pytest.raises(an.ConfigError, match="progress_interval_s=-1"):
        an.simulate(_cfgs(), progress_interval_s=-1)


def test_progress_lines_wait_for_the_quiet_period():
    """The core Progress: no line before ``quiet_s`` has passed, then lines every interval and a
    final one; the CLI's defaults (quiet_s=0) print the first chunk at once."""
    s = io.StringIO()
    p = Progress(3, 1, mode="lines", interval_s=3600, stream=s, quiet_s=10)
    p.update()
    p.close()
    assert s.getvalue() == ""  # a short run: silent
    s = io.StringIO()
    p = Progress(3, 1, mode="lines", interval_s=3600, stream=s, quiet_s=10, t0=time.time() - 11)
    p.update()
    p.close()
    lines = s.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("progress:  33.3% (1/3") and lines[1].startswith("progress: 100.0%")
    from autonuma_jax.cli.progress import Progress as CliProgress
    assert CliProgress is Progress  # one implementation


# ------------------------------------------------------------------------------------------
# the module and the call

def test_simulate_is_a_module_and_a_call(quiet_results):
    import autonuma_jax.simulate as m
    assert isinstance(m, types.ModuleType) and m is sys.modules["autonuma_jax.simulate"]
    assert an.simulate is m and m.Bucket is an.Bucket and m.Result is an.Result
    from autonuma_jax.simulate import simulate as fn
    assert inspect.isfunction(fn)
    assert list(inspect.signature(an.simulate).parameters) == list(inspect.signature(fn).parameters)
    assert "progress" in inspect.signature(an.simulate).parameters
    _same(an.simulate(_cfgs(), reports_per_chunk=RPC, progress=False), quiet_results)  # the call
    _same(fn(_cfgs(), reports_per_chunk=RPC, progress=False), quiet_results)  # = the function's
    assert m.__call__.__doc__ == fn.__doc__


def test_core_import_needs_no_pandas():
    code = "import sys, autonuma_jax, autonuma_jax.frames, autonuma_jax.progress; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_py_typed_marker_ships():
    from importlib import resources
    assert resources.files("autonuma_jax").joinpath("py.typed").is_file()


# ------------------------------------------------------------------------------------------
# docstrings

def _doc(obj) -> str:
    d = inspect.getdoc(obj)
    assert d, obj
    return d


def test_public_api_has_docstrings(quiet_results):
    from autonuma_jax.simulate import Row, simulate
    doc = _doc(simulate)
    for arg in inspect.signature(simulate).parameters:
        assert f"{arg}:" in doc, arg
    summ = _doc(an.Result.summary)
    for key in quiet_results[0].summary():  # every key summarize returns, with its unit
        assert f"``{key}``" in summ, key
    res = _doc(an.Result)
    for key in list(quiet_results[0].rows) + list(Row.__dataclass_fields__):
        assert f"``{key}``" in res, key
    for key in quiet_results[0].final:
        assert f"``{key}``" in res or key.startswith("tot_"), key
    bucket = _doc(an.Bucket)
    for f in dataclasses.fields(an.Bucket):
        assert f"{f.name}:" in bucket, f.name
    for cls in (an.SimConfig, an.RunConfig):
        d = _doc(cls)
        for f in dataclasses.fields(cls):
            assert f"{f.name}:" in d, (cls, f.name)
    assert "ConfigError" in _doc(an.with_overrides) and "flatten" in _doc(an.with_overrides)
    assert all(f"``{f.name}``" in _doc(an.Knobs) for f in dataclasses.fields(an.Knobs))
    for name in ("results_frame", "timeseries_frame"):
        assert _doc(getattr(an, name))
    _doc(ProgressRecord)


def test_every_knob_is_documented_with_its_range():
    """Each knob's entry in its group's docstring gives the range ``RANGES`` checks."""
    for path, (lo, hi, kind) in K.RANGES.items():
        *groups, name = path.split(".")
        obj = K.Knobs()
        for g in groups:
            obj = getattr(obj, g)
        doc = " ".join(_doc(type(obj)).split())  # wrapped lines joined
        entry = doc.split(f"``{name}``:", 1)
        assert len(entry) == 2, path
        allowed = "0 or 1" if kind == "flag" else f"[{lo}, {hi}]"
        assert allowed in entry[1].split(" - ``", 1)[0], (path, allowed)


# ------------------------------------------------------------------------------------------
# frames

def test_results_frame_one_row_per_configuration(quiet_results):
    pytest.importorskip("pandas")
    df = an.results_frame(quiet_results)
    assert len(df) == len(quiet_results)
    knob_cols = list(K.flatten(K.Knobs()))
    summ = quiet_results[0].summary()
    metrics = [k for k in summ if k not in ("label", "policy", "seed")]
    ident = ["config_index", "label", "machine", "machine.calibration", "workload", "variant", "build", "policy",
             "seed"]
    sim = [f"sim.{f.name}" for f in dataclasses.fields(an.SimConfig)]
    assert list(df.columns) == ident + sim + knob_cols + metrics + ["n_tasks", "reports"]
    assert list(df["policy"]) == ["autonuma24", "none"] and list(df["machine"]) == ["tiny2", "tiny2"]
    assert list(df[SCAN_PASS]) == [500, 1000]
    assert list(df["config_index"]) == [0, 1]
    for i, r in enumerate(quiet_results):
        row = df.iloc[i]
        assert row["label"] == r.config.label() and row["reports"] == len(r.rows["tick"])
        for k, v in summarize(r).items():
            assert row[k] == v or (isinstance(v, float) and np.isnan(v) and np.isnan(row[k])), k


def test_timeseries_frame_one_row_per_configuration_and_interval(quiet_results):
    pytest.importorskip("pandas")
    ts = an.timeseries_frame(quiet_results)
    n = [len(r.rows["tick"]) for r in quiet_results]
    assert len(ts) == sum(n)
    assert list(ts.columns[:7]) == ["config_index", "label", "machine", "workload", "policy", "seed", SCAN_PASS]
    assert "autonuma.knuma_scand.pages_to_scan" not in ts.columns  # the same in both: not repeated
    for i, r in enumerate(quiet_results):
        sub = ts[ts["config_index"] == i]
        assert len(sub) == n[i] and set(sub["label"]) == {r.config.label()}
        assert list(sub["report"]) == list(range(n[i]))
        np.testing.assert_array_equal(sub["tick"].to_numpy(), r.rows["tick"])
        np.testing.assert_allclose(sub["sim_time_s"].to_numpy(), (np.arange(n[i]) + 1) * 0.25)
        np.testing.assert_array_equal(np.stack(sub["task_node"].to_list()), r.rows["task_node"])
    for c in ("local_fraction", "progress", "mm0.node0.pages", "node1.free_pages", "overhead_scan_us"):
        assert c in ts.columns, c
    assert an.timeseries_frame([]).empty


# ------------------------------------------------------------------------------------------
# the CLI's timeseries.parquet can be read alone

def test_cli_timeseries_carries_identity_columns(tmp_path, quiet_results):
    pytest.importorskip("hydra")
    pd = pytest.importorskip("pandas")
    from cli_helpers import compose, to_dict
    from autonuma_jax.cli.job import run_job
    over = ["experiment=quick", "sweep=none", "sim.duration_s=2", "workload.loops=20", "progress.mode=off",
            "sim.compilation_cache_dir=null", f"sim.reports_per_chunk={RPC}", "logger=disabled",
            "results.plots=false", "sweep.mode=grid", f"+sweep.params.{SCAN_PASS}=[500,1000]"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_job(to_dict(compose(over)), str(tmp_path / "j"))
    res = pd.read_parquet(tmp_path / "j" / "results.parquet")
    ts = pd.read_parquet(tmp_path / "j" / "timeseries.parquet")
    ident = ["label", "combo_label", "policy", "machine", "workload", "seed"]
    for c in ident + [SCAN_PASS]:
        assert c in ts.columns, c
    varying = [c for c in K.flatten(K.Knobs()) if c in res.columns and res[c].nunique() > 1]
    assert varying == [SCAN_PASS]
    assert not [c for c in K.flatten(K.Knobs()) if c in ts.columns and c not in varying]
    assert len(ts) == res["reports"].sum()
    for _, row in res.iterrows():  # each series row says the same as its configuration's results row
        sub = ts[ts["config_index"] == row["config_index"]]
        assert len(sub) == row["reports"]
        for c in ident + varying:
            assert set(sub[c]) == {row[c]}, c
    assert ts["config_index"].dtype == np.int32 and ts["seed"].dtype == np.int32 and ts["tick"].dtype == np.int64
    # one definition of the metric columns: the job's results equal the API's for the same configurations
    api = an.results_frame(an.simulate([mini(duration_s=2.0, knobs={SCAN_PASS: v}) for v in (500, 1000)],
                                       reports_per_chunk=RPC, progress=False))
    metrics = [k for k in quiet_results[0].summary() if k not in ("label", "policy", "seed")]
    pd.testing.assert_frame_equal(res[metrics + ["n_tasks", "reports"]].reset_index(drop=True),
                                  api[metrics + ["n_tasks", "reports"]].reset_index(drop=True))
