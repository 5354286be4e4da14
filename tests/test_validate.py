"""``python -m autonuma_jax.validate``: the quick matrix end to end (in-process), the statistics
helper, the aggregation of unfinished runs, shrinking that keeps the policy's bindings, and the
refusal to overwrite."""
from __future__ import annotations

import csv
import glob
import math
import os
import signal

import numpy as np
import pytest

from autonuma_jax import config as C
from autonuma_jax import validate as V

# One in-process quick run shared by the tests below: one cell per workload, 2 seeds, every policy.
# numa01 and numa01_THREAD_ALLOC have the same shapes: two cells, one compile.
WORKLOADS = ("numa01", "numa01_THREAD_ALLOC")
QUICK_ARGS = ["--quick", "--workloads", ",".join(WORKLOADS), "--duration", "20", "--quiet", "--nmstat", "first"]


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate") / "run"
    rc = V.main(QUICK_ARGS + ["--out", str(out), "--json"])
    assert rc == 0
    return out


def _rows(out):
    with open(os.path.join(out, "validation.csv"), newline="") as f:
        return list(csv.DictReader(f))


def _num(v: str) -> float:
    return float(v) if v not in ("", "nan") else float("nan")


def test_quick_writes_every_file(quick_out):
    names = set(os.listdir(quick_out))
    assert {"validation.csv", "validation.md", "runs.csv", "meta.json", "validation.json"} <= names
    assert {f"locality_2node_24cpu_{w}.png" for w in WORKLOADS} | {"ratio_2node_24cpu.png"} <= names
    for p in C.POLICIES:  # nmstat for seed 0 of every policy of the first cell
        assert f"nmstat_2node_24cpu_numa01_{p}_seed0.png" in names
    assert not [n for n in names if ".tmp" in n]  # atomic writes leave no temporaries
    for n in names:
        if n.endswith(".png"):
            with open(os.path.join(quick_out, n), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_quick_values_are_sane(quick_out):
    rows = _rows(quick_out)
    assert len(rows) == 2 * len(C.POLICIES)
    for wl in WORKLOADS:
        got = {r["policy"] for r in rows if r["workload"] == wl}
        assert got == set(C.POLICIES)  # every policy present, read from config at run time
    for r in rows:
        assert r["machine"] == "2node_24cpu"
        assert int(r["seeds"]) == 2
        fin = _num(r["finished"])
        assert 0 <= fin <= 1
        ci = _num(r["runtime_ci95_s"])
        assert math.isnan(ci) or ci >= 0
        for col in ("ratio_hard_bind", "ratio_none"):
            v = _num(r[col])
            assert math.isnan(v) or v >= 0
        if fin == 1:
            assert _num(r["runtime_s"]) > 0 and not math.isnan(ci)
        else:
            assert math.isnan(_num(r["runtime_s"])) and _num(r["runtime_lb_s"]) > 0
        lf = _num(r["local_fraction_final"])
        assert 0 <= lf <= 1
        assert _num(r["pages_migrated"]) >= 0 and _num(r["overhead_cpu_s"]) >= 0
        if r["policy"] == "hard_bind":
            assert _num(r["ratio_hard_bind"]) == 1.0
            assert fin == 1
            assert lf > 0.9
        if r["policy"] == "none":
            assert _num(r["ratio_none"]) == 1.0
    with open(os.path.join(quick_out, "runs.csv"), newline="") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 2 * 2 * len(C.POLICIES)
    assert {int(r["seed"]) for r in runs} == {0, 1}


def test_quick_markdown(quick_out):
    md = open(os.path.join(quick_out, "validation.md")).read()
    assert "## 2node_24cpu" in md
    assert "python -m autonuma_jax.validate --quick" in md
    assert "Wall time:" in md and "Reading:" in md and "closest to hard_bind" in md
    for p in C.POLICIES:
        assert f"| {p} |" in md


def test_render_rewrites_markdown_without_simulating(quick_out, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(quick_out, copy)
    os.unlink(copy / "validation.md")
    assert V.main(["--render", str(copy)]) == 0
    assert open(copy / "validation.md").read() == open(os.path.join(quick_out, "validation.md")).read()
    assert V.read_rows(str(copy / "validation.csv"))[0]["seeds"] == 2


def test_refuses_to_overwrite(quick_out, capsys):
    path = os.path.join(quick_out, "validation.csv")
    before = open(path).read()
    mtime = os.stat(path).st_mtime_ns
    assert V.main(QUICK_ARGS + ["--out", str(quick_out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert open(path).read() == before and os.stat(path).st_mtime_ns == mtime


def test_bad_policy_name_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no_such_policy"):
        V.main(["--quick", "--policies", "no_such_policy", "--out", str(tmp_path / "x")])
    assert not os.path.exists(tmp_path / "x" / "validation.csv")


def test_imports_only_the_core():
    """The module must load on a bare GPU box: no hydra, wandb, pandas; matplotlib only to plot."""
    import subprocess
    import sys
    code = ("import sys, autonuma_jax.validate; "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'hydra', 'wandb', 'omegaconf', 'scipy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("df,t", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622),
                                  (30, 2.0423), (1000, 1.9623)])
def test_t_quantile(df, t):
    assert V.t_quantile(0.95, df) == pytest.approx(t, abs=1e-4)


def test_mean_ci():
    m, h, n = V.mean_ci([10.0, 12.0, 14.0])
    assert (m, n) == (12.0, 3)
    assert h == pytest.approx(4.3027 * 2.0 / math.sqrt(3), rel=1e-4)  # sd = 2
    m, h, n = V.mean_ci([7.0])
    assert (m, n) == (7.0, 1) and math.isnan(h)  # one seed: no interval
    m, h, n = V.mean_ci([])
    assert n == 0 and math.isnan(m) and math.isnan(h)
    m, h, n = V.mean_ci([5.0, float("nan"), 5.0])
    assert (m, h, n) == (5.0, 0.0, 2)


def _summary(policy, seed, runtime, finished=True, sim_s=100.0):
    return dict(policy=policy, seed=seed, finished=finished, runtime_s=runtime if finished else float("nan"),
                sim_s=sim_s, local_fraction_final=0.5, converge_s=10.0, pages_migrated=512,
                overhead_cpu_s=1.0, exchanges=3, full_scans=2, hinting_faults=7)


def test_aggregate_reports_unfinished_runs():
    s = [_summary("hard_bind", 0, 10.0), _summary("hard_bind", 1, 12.0),
         _summary("none", 0, 20.0), _summary("none", 1, 24.0),
         _summary("autonuma24", 0, 15.0), _summary("autonuma24", 1, None, finished=False, sim_s=100.0)]
    rows = {r["policy"]: r for r in V.aggregate(s, "m", "w", ["hard_bind", "none", "autonuma24"], 100.0)}
    hb, no, an = rows["hard_bind"], rows["none"], rows["autonuma24"]
    assert hb["ratio_hard_bind"] == 1.0 and no["ratio_none"] == 1.0
    assert no["ratio_hard_bind"] == pytest.approx(2.0)
    assert hb["ratio_none"] == pytest.approx(0.5)
    assert hb["runtime_ci95_s"] == pytest.approx(12.7062 * math.sqrt(2) / math.sqrt(2), rel=1e-4)
    assert an["seeds"] == 2 and an["finished"] == 0.5
    assert math.isnan(an["runtime_s"]) and math.isnan(an["ratio_hard_bind"]) and math.isnan(an["runtime_ci95_s"])
    assert an["runtime_finished_s"] == 15.0 and an["runtime_lb_s"] == pytest.approx(57.5)
    assert an["migrated_mib"] == pytest.approx(2.0)
    md = V.markdown_table(list(rows.values()))
    assert "> 57.5 (unfinished)" in md
    assert any("Unfinished" in line for line in V.reading(list(rows.values())))


def test_shrink_keeps_the_policy_binding():
    """Shrinking rescales the workload the policy resolves to: hard_bind keeps its bind masks."""
    sim = C.SimConfig(duration_s=10)
    cfgs = V.cell_configs("2node_24cpu", "numa01", ["hard_bind", "none"], 2, sim, C.Knobs(), (1 / 8, 1 / 5))
    hb = [c for c in cfgs if c.policy == "hard_bind"][0].resolved_workload()
    full = C.RunConfig(machine="2node_24cpu", workload="numa01", policy="hard_bind").resolved_workload()
    assert hb.processes[0].mem_bytes == full.processes[0].mem_bytes // 8
    assert [t.work_bind_mask for t in hb.threads] == [t.work_bind_mask for t in full.threads]
    assert [t.cpus_allowed for t in hb.threads] == [t.cpus_allowed for t in full.threads]
    assert all(t.work_passes == 10 for t in hb.threads)
    for seed in (0, 1):  # the forced node of numa01 follows the seed as in resolved_workload
        c = [c for c in cfgs if c.policy == "none" and c.seed == seed][0]
        ref = C.RunConfig(machine="2node_24cpu", workload="numa01", policy="none", seed=seed).resolved_workload()
        assert [t.init_bind_mask for t in c.resolved_workload().threads] == [t.init_bind_mask for t in ref.threads]
    ta = V.shrink(C.RunConfig(machine="2node_24cpu", workload="numa01_THREAD_ALLOC").resolved_workload(),
                  1 / 8, 1 / 5)
    slices = sorted((t.work_offset, t.work_offset + t.work_len) for t in ta.threads if t.mm == 0)
    assert slices[0][0] == 0 and slices[-1][1] == ta.processes[0].mem_bytes
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))  # slices still tile the region
    assert np.all([t.work_passes == 200 for t in ta.threads])


def test_collect_assembles_finished_cells_without_simulating(quick_out, tmp_path):
    """--collect writes the tables from cells/*.json alone and names the cells still to run."""
    import shutil
    copy = tmp_path / "collect"
    shutil.copytree(quick_out, copy)
    (copy / "cells" / "2node_24cpu__numa01_THREAD_ALLOC.json").unlink()
    os.unlink(copy / "validation.csv")
    assert V.main(QUICK_ARGS + ["--out", str(copy), "--collect"]) == 0
    rows = _rows(copy)
    assert {r["workload"] for r in rows} == {"numa01"}
    before = [r for r in _rows(quick_out) if r["workload"] == "numa01"]
    assert [r["runtime_s"] for r in rows] == [r["runtime_s"] for r in before]
    md = open(copy / "validation.md").read()
    assert "Not run yet (1 of 2 cells):** 2node_24cpu/numa01_THREAD_ALLOC" in md
    assert not (copy / "checkpoints" / "2node_24cpu__numa01_THREAD_ALLOC").exists()  # nothing was simulated


def test_collect_keeps_published_rows_of_cells_without_json(quick_out, tmp_path):
    """A table published without its cells/*.json (docs/validation.csv) grows by the cells run
    since: --collect keeps the csv rows of a cell with no json, and its plots."""
    import shutil
    copy = tmp_path / "grow"
    shutil.copytree(quick_out, copy)
    (copy / "cells" / "2node_24cpu__numa01.json").unlink()  # published earlier: rows in the csv only
    before = _rows(quick_out)
    assert V.main(QUICK_ARGS + ["--out", str(copy), "--collect"]) == 0
    rows = _rows(copy)
    assert [(r["workload"], r["policy"], r["runtime_s"]) for r in rows] == \
        [(r["workload"], r["policy"], r["runtime_s"]) for r in before]
    md = open(copy / "validation.md").read()
    assert "Not run yet" not in md
    import json
    plots = json.load(open(copy / "meta.json"))["plots"]
    assert "locality_2node_24cpu_numa01.png" in plots and "nmstat_2node_24cpu_numa01_none_seed0.png" in plots
    assert len(plots) == len(set(plots))


def test_cell_plots_tell_numa01_from_numa01_thread_alloc():
    names = ["locality_m_numa01.png", "locality_m_numa01_THREAD_ALLOC.png", "nmstat_m_numa01_none_seed0.png",
             "nmstat_m_numa01_THREAD_ALLOC_none_seed0.png", "nmstat_m_numa01_autonuma24_seed2.png", "ratio_m.png"]
    assert V.cell_plots(names, "m", "numa01") == ["locality_m_numa01.png", "nmstat_m_numa01_none_seed0.png",
                                                  "nmstat_m_numa01_autonuma24_seed2.png"]
    assert V.cell_plots(names, "m", "numa01_THREAD_ALLOC") == ["locality_m_numa01_THREAD_ALLOC.png",
                                                               "nmstat_m_numa01_THREAD_ALLOC_none_seed0.png"]


def test_a_signal_checkpoints_the_cell_and_resume_gives_the_same_rows(quick_out, tmp_path, monkeypatch):
    """SIGTERM (a scheduler's time limit) during a cell: the cell in flight is checkpointed at the end
    of its chunk, the run exits with EXIT_INTERRUPTED and puts the earlier handlers back; the same
    command with --resume finishes it with the rows of an uninterrupted run."""
    out = tmp_path / "sig"
    args = ["--quick", "--workloads", "numa01", "--duration", "20", "--quiet", "--nmstat", "none",
            "--out", str(out)]
    before = signal.getsignal(signal.SIGTERM)
    real = V.run_cell

    def signalled(cfgs, ckpt, progress=None, should_stop=None):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs now; the stop waits for the chunk's end
        return real(cfgs, ckpt, progress, should_stop)

    monkeypatch.setattr(V, "run_cell", signalled)
    assert V.main(args) == V.EXIT_INTERRUPTED
    assert signal.getsignal(signal.SIGTERM) is before
    assert len(glob.glob(str(out / "checkpoints" / "*" / "bucket0.npz"))) == 1
    assert not os.path.exists(out / "cells")
    monkeypatch.setattr(V, "run_cell", real)
    assert V.main(args + ["--resume"]) == 0
    assert not glob.glob(str(out / "checkpoints" / "*" / "*.npz"))  # spent once the cell is written
    want = [r for r in _rows(quick_out) if r["workload"] == "numa01"]
    got = _rows(out)
    assert len(got) == len(want) > 0
    for a, b in zip(want, got):
        for k in a:
            if k != "cell_wall_s":
                assert a[k] == b[k], (a["policy"], k)
