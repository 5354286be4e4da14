"""``autonuma-sim-tune``: the hydra entry point of a tuning job (``conf/tune.yaml``).

    autonuma-sim-tune                                    # autonuma24 scanner + migration knobs, numa01, 2node_24cpu
    autonuma-sim-tune tune_experiment=quick              # a one-minute job on the test machine
    autonuma-sim-tune search=numa_balancing 'machines=[2node_24cpu,4node_32cpu]' 'workloads=[numa01,numa02]'
    autonuma-sim-tune hydra.run.dir=<job folder>         # resume an interrupted job

The job folder gets ``store.json`` (every simulated run, rewritten after each batch: the
checkpoint between rounds), then ``results.parquet``, ``best.yaml``, ``comparison.csv``,
``transfer.csv``, ``README.md`` and ``plots/`` (``tune_outputs.py``), and the wandb runs.
Errors are one line on stderr and exit status 2, before anything compiles; SIGTERM / SIGUSR1
checkpoint the batch in flight and exit 3 (rerun the same command in the same folder to resume).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from . import preempt, preflight, schema

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("autonuma_jax.cli")

schema.register()


def flat_space(node: Any, prefix: str = "") -> dict[str, Any]:
    """The nested ``search.space`` -> {knob path: None or {lo, hi, log}}: a leaf is null, or a
    mapping whose keys are among lo / hi / log (an empty one included)."""
    out: dict[str, Any] = {}
    if not isinstance(node, dict):
        raise ConfigError(f"search.space.{prefix.rstrip('.')}={node!r}: must be a mapping of knobs to "
                          f"{{lo, hi, log}} (or {{}} for the knob's allowed range)")
    for k, v in node.items():
        path = f"{prefix}{k}"
        if v is None or (isinstance(v, dict) and set(v) <= {"lo", "hi", "log"}):
            out[path] = v
        else:
            out.update(flat_space(v, path + "."))
    return out


def flat_fixed(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (node or {}).items():
        if isinstance(v, dict):
            out.update(flat_fixed(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve_machine(name: str):
    """A preset name as is; another name is a file of conf/machine (a custom machine such as tiny2)."""
    from ..machine import PRESETS
    if name in PRESETS:
        return name
    path = os.path.join(CONF_DIR, "machine", f"{name}.yaml")
    if not os.path.exists(path):
        raise ConfigError(f"machines: {name!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a file "
                          f"conf/machine/{name}.yaml")
    from .build import build_machine
    return build_machine(OmegaConf.to_container(OmegaConf.load(path), resolve=True))


def build_spec(cfg: dict):
    """The composed config -> a validated ``TuneSpec`` (one-line ConfigError on anything wrong)."""
    from ..config import SimConfig
    from ..tune import Rung, SearchSpace, TuneSpec
    search = cfg["search"]
    policy = search["policy"]
    from ..config import POLICIES
    if policy not in POLICIES:
        raise ConfigError(f"search.policy={policy!r}: must be one of {', '.join(POLICIES)}")
    space = SearchSpace.build(flat_space(search.get("space") or {}), policy, flat_fixed(search.get("fixed")))
    sim_cfg = dict(cfg["sim"])
    rpc = sim_cfg.pop("reports_per_chunk", 10)
    sim = SimConfig(**sim_cfg)
    workloads = []
    for i, w in enumerate(cfg["workloads"]):
        if isinstance(w, str):
            workloads.append(w)
        elif isinstance(w, dict):
            unknown = set(w) - {"name", "size_mib", "loops", "variant", "build", "params", "duration_s"}
            if unknown or "name" not in w:
                raise ConfigError(f"workloads[{i}]={w!r}: a benchmark name, or a mapping with name and any of "
                                  f"size_mib, loops, variant, build, params, duration_s")
            workloads.append({k: v for k, v in w.items() if v is not None})
        else:
            raise ConfigError(f"workloads[{i}]={w!r}: a benchmark name or a mapping")
    machines = [resolve_machine(m) for m in cfg["machines"]]
    spec = TuneSpec(machines=tuple(machines), workloads=tuple(workloads), policy=policy,
                    space=space, objective=cfg["objective"], overhead_weight=cfg["overhead_weight"],
                    candidates=cfg["candidates"], eta=cfg["eta"],
                    rungs=tuple(Rung(r["fraction"], r["seeds"]) for r in cfg["rungs"]),
                    fresh_seeds=cfg["fresh_seeds"], transfer=bool(cfg["transfer"]), seed=cfg["seed"], sim=sim,
                    reports_per_chunk=rpc)
    from .job import cli_names
    try:
        return spec.validate()
    except ConfigError as e:
        raise ConfigError(cli_names(str(e)).replace("tune.", "")) from None


def dry_run(spec) -> str:
    from ..tune import cell_name
    lines = [f"tuning {spec.policy} on {len(spec.cells)} cell(s), objective {spec.objective}:"]
    for d in spec.space.dims:
        lines.append(f"  {d.path}: [{d.lo:g}, {d.hi:g}] {'log' if d.log else 'linear'} {d.kind}")
    n = spec.candidates
    runs, share = 0, 0.0
    for r, rung in enumerate(spec.rungs):
        lines.append(f"  rung {r}: {n} candidate(s) x {rung.seeds} seed(s), {rung.fraction:g} of the run")
        runs += n * rung.seeds
        share += n * rung.seeds * rung.fraction
        n = max(1, -(-n // spec.eta))
    sets = 1 + (len(spec.cells) if spec.transfer else 1)
    lines.append(f"  evaluation: {sets} knob set(s) x {spec.fresh_seeds} fresh seed(s) per cell")
    total = 0.0
    for m, w in spec.cells:
        dur = spec.config(m, w, {}, spec.seed).sim.duration_s
        total += (share + sets * spec.fresh_seeds) * dur
        lines.append(f"  cell {cell_name(m, w)}: runs of {dur:g} s at most")
    lines.append(f"  {runs + sets * spec.fresh_seeds} runs per cell, {2 * len(spec.cells)} batch shapes to compile, "
                 f"{total:.0f} simulated configuration-seconds at most (runs stop when their threads are done)")
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict:
    from ..tune import Store, Stopped, Tuner
    from .job import lock_job_folder, unlock_job_folder
    from .results import write_text_atomic
    from .tune_outputs import write_outputs
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    try:
        spec = build_spec(container)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    if container.get("dry_run"):
        print(dry_run(spec))
        return {"out_dir": None}
    hc = HydraConfig.get()
    out_dir = hc.runtime.output_dir
    os.makedirs(out_dir, exist_ok=True)
    lock = lock_job_folder(out_dir)
    try:
        write_text_atomic(OmegaConf.to_yaml(cfg, resolve=True), os.path.join(out_dir, "resolved_config.yaml"))
        os.makedirs(os.path.join(out_dir, ".hydra"), exist_ok=True)
        write_text_atomic(OmegaConf.to_yaml(cfg), os.path.join(out_dir, ".hydra", "config.yaml"))
        write_text_atomic(OmegaConf.to_yaml(list(hc.overrides.task)), os.path.join(out_dir, ".hydra", "overrides.yaml"))
        try:
            store = Store(os.path.join(out_dir, "store.json"))
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        if store.records:
            log.info(f"resuming: {len(store.batches)} batch(es) already in {out_dir}/store.json")
        preempt.install()
        t0 = time.time()
        pcfg = container.get("progress") or {}
        last = {"t": 0.0}
        interval = float(pcfg.get("interval_s", 30.0))
        quiet = pcfg.get("mode") == "off"

        def on_batch(stage, cell, rung, n):
            if not quiet:
                log.info(f"{stage} {cell}" + (f" rung {rung}" if stage == "search" else "") +
                         f": {n} run(s) [{time.time() - t0:.0f} s]")

        def on_chunk(b):
            if not quiet and time.time() - last["t"] >= interval:
                last["t"] = time.time()
                log.info(f"  {b.reports_done}/{b.static.n_reports} report intervals [{time.time() - t0:.0f} s]")

        tuner = Tuner(spec, store, checkpoint_dir=os.path.join(out_dir, "checkpoints"),
                      should_stop=preempt.requested, on_batch=on_batch, on_chunk=on_chunk)
        try:
            tuner.run()
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        except Stopped as e:
            log.warning(f"preempted: {e}")
            preempt.finish()
        try:
            os.rmdir(os.path.join(out_dir, "checkpoints"))  # spent (each batch removed its own)
        except OSError:
            pass
        name = str(container.get("name"))
        group = (container.get("logger") or {}).get("group") or f"{name}/{os.path.basename(os.path.normpath(out_dir))}"
        info = write_outputs(out_dir, store, container, group=group, plots=bool(container["results"]["plots"]))
        log.info(f"done in {time.time() - t0:.1f} s; results in {out_dir}")
        for line in info.get("verdicts", []):
            log.info(line)
        return {"out_dir": out_dir, **info}
    finally:
        unlock_job_folder(lock)


@hydra.main(config_path=CONF_DIR, config_name="tune", version_base="1.3")
def _hydra_main(cfg: DictConfig):
    return run(cfg)


def main() -> None:
    """Console-script entry point (one line and exit 2 for what hydra refuses, as autonuma-sim)."""
    argv = sys.argv[1:]
    if "--dry-run" in argv:
        sys.argv = sys.argv[:1] + [a for a in argv if a != "--dry-run"] + ["dry_run=true"]
    preflight.run_compact(_hydra_main)

if __name__ == "__main__":
    main()
