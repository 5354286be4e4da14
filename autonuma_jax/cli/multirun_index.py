"""The index of a finished multirun: ``<sweep dir>/README.md`` and the summary printed at its end.

One line per job: its number, its overrides, its folder, and its state (configurations written,
or failed / not written: a job that raised or was preempted has no results.parquet), then the
command that merges them all. Jobs are found by their ``job.json`` (written last by every job) and
their ``.hydra/overrides.yaml``; a job that never started is listed from the planned overrides.
"""
from __future__ import annotations

import json
import os

from omegaconf import DictConfig

from .results import RESULTS, write_text_atomic


def _jobs(sweep_dir: str, planned: list[list[str]]) -> list[dict]:
    out = []
    subdirs = sorted((d for d in os.listdir(sweep_dir) if os.path.isdir(os.path.join(sweep_dir, d))
                      and not d.startswith(".") and d not in ("report", "wandb")),
                     key=lambda d: (not d.isdigit(), int(d) if d.isdigit() else 0, d))
    for d in subdirs:
        path = os.path.join(sweep_dir, d)
        meta, overrides = {}, None
        try:
            with open(os.path.join(path, "job.json")) as f:
                meta = json.load(f)
            overrides = (meta.get("job") or {}).get("overrides")
        except (OSError, ValueError):
            pass
        if overrides is None:
            try:
                import yaml
                with open(os.path.join(path, ".hydra", "overrides.yaml")) as f:
                    overrides = " ".join(yaml.safe_load(f) or [])
            except (OSError, ValueError, ImportError):
                overrides = " ".join(planned[int(d)]) if d.isdigit() and int(d) < len(planned) else "?"
        done = os.path.exists(os.path.join(path, RESULTS))
        out.append({"dir": d, "overrides": overrides, "done": done, "n_configs": meta.get("n_configs"),
                    "wall_s": meta.get("wall_s")})
    return out


def write_index(config: DictConfig) -> str:
    """Write ``README.md`` into the sweep folder; returns the summary text to print."""
    sweep_dir = str(config.hydra.sweep.dir)
    try:
        from .sweeper import job_overrides
        planned = job_overrides(config)
    except Exception:  # noqa: BLE001  (another sweeper: the folders are all we know)
        planned = []
    jobs = _jobs(sweep_dir, planned) if os.path.isdir(sweep_dir) else []
    ok = [j for j in jobs if j["done"]]
    lines = [f"# multirun {config.get('name', '')}: {len(jobs)} job(s), {len(ok)} with results", "",
             f"Merge them: `autonuma-sim-report {sweep_dir}` (tables, plots) or compare two: "
             f"`autonuma-sim-compare {sweep_dir}/<job a> {sweep_dir}/<job b>`.", "",
             "| job | overrides | results | configurations | wall s |", "|---|---|---|---:|---:|"]
    for j in jobs:
        state = f"`{j['dir']}/{RESULTS}`" if j["done"] else "**none** (failed, preempted or running)"
        wall = f"{j['wall_s']:.0f}" if isinstance(j["wall_s"], (int, float)) else ""
        lines.append(f"| {j['dir']} | `{j['overrides'] or '(none)'}` | {state} | {j['n_configs'] or ''} | {wall} |")
    if jobs:
        write_text_atomic("\n".join(lines) + "\n", os.path.join(sweep_dir, "README.md"))
    text = [f"multirun done: {len(ok)} of {len(jobs)} job(s) wrote results under {sweep_dir}"]
    for j in jobs:
        where = os.path.join(sweep_dir, j["dir"], RESULTS) if j["done"] else "no results"
        text.append(f"  job {j['dir']} ({j['overrides'] or 'no overrides'}): {where}")
    text.append(f"index: {os.path.join(sweep_dir, 'README.md')}; merge: autonuma-sim-report {sweep_dir}")
    return "\n".join(text)
