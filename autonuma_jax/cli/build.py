"""The composed config (as a plain dict) -> core ``RunConfig``s, with the in-process sweep expanded.

Hydra-free on purpose (it works on ``OmegaConf.to_container`` output), so tests and other tools
can call it directly. Every error is a one-line ``ConfigError``; ranges are checked by the core
(``validate_run``), not here. A setting that would silently change nothing (a knob no policy of
the job reads, knuma_scand/pmd=0 on 2 MiB units, random-search settings of a grid) gets one
warning line on the ``autonuma_jax.cli`` logger, once per process (``warn_no_ops``).
"""
from __future__ import annotations

import copy
import itertools
import json
import logging
import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..config import PAGE_UNITS, POLICIES, RunConfig, SimConfig
from ..errors import ConfigError
from ..knobs import NO_EFFECT_KNOBS, POLICY_KNOBS, RANGES, Knobs, flatten, policy_reads, with_overrides  # noqa: F401
from ..machine import PRESETS, Machine, get_machine
from ..static import UNIT_2M as UNIT_2M_PAGES
from ..workloads.from_dict import build_workload  # noqa: F401  (re-exported: cli callers)

log = logging.getLogger("autonuma_jax.cli")

MiB = 1 << 20
MACHINE_FIELDS = ("name", "n_nodes", "cpus_per_node", "threads_per_core", "mem_per_node_mib", "distance",
                  "lat_local_ns", "lat_remote_ns", "core_mlp", "socket_mlp", "node_bw_gbs", "link_bw_gbs",
                  "bzero_traffic", "groups", "lat_group_ns", "link_group_gbs", "latency_ns", "link_matrix_gbs",
                  "description", "node_cpus", "node_mem_mib", "node_ids", "calibration")
# fields a custom machine (machine.preset=null) may leave out: they have defaults in Machine
OPTIONAL_MACHINE_FIELDS = ("description", "bzero_traffic", "groups", "lat_group_ns", "link_group_gbs", "latency_ns",
                           "link_matrix_gbs", "node_cpus", "node_mem_mib", "node_ids", "calibration")
# what a machine read from a topology file (machine.path) may still set: its name, SMT, the physics
FROM_FILE_FIELDS = ("name", "threads_per_core", "description", "lat_local_ns", "lat_remote_ns", "core_mlp",
                    "socket_mlp", "node_bw_gbs", "link_bw_gbs", "bzero_traffic", "groups", "lat_group_ns",
                    "link_group_gbs", "latency_ns", "link_matrix_gbs", "calibration")
SIM_FIELDS = tuple(f.name for f in fields(SimConfig))
# sweep parameters that are not knobs
SPECIAL = ("policy", "machine", "workload", "variant")
PREFIXES = ("sim.", "workload.", "machine.")


@dataclass
class Run:
    """One configuration to simulate and where it came from."""
    config: RunConfig
    index: int
    combo: int  # index of its parameter combination (configurations differing only by seed share it)
    params: dict  # swept parameter -> value for this combination
    spec: dict  # the effective (machine, workload, policy, sim) sections


# ------------------------------------------------------------------------------------------
# sections -> core objects

def build_machine(m: dict) -> Machine | str:
    """A preset name (untouched preset), or a Machine (preset with overrides, custom, or read from
    a topology file: machine.path)."""
    over = {k: m.get(k) for k in MACHINE_FIELDS if m.get(k) is not None}
    # matrices are checked (and normalised) by Machine.validate: a distance of 25.9 is refused, not truncated
    for k in ("distance", "latency_ns", "link_matrix_gbs"):
        if k in over and isinstance(over[k], list):
            over[k] = tuple(tuple(row) if isinstance(row, list) else row for row in over[k])
    for k in ("node_cpus", "node_mem_mib", "node_ids"):
        if k in over and isinstance(over[k], list):
            over[k] = tuple(over[k])
    preset = m.get("preset")
    if m.get("path") is not None:
        return _machine_from_file(m, over, preset)
    if preset is None and m.get("format") == "auto" and "n_nodes" not in over:
        raise ConfigError("machine.path=None: machine=from_file needs machine.path=<numactl --hardware file, hwloc "
                          "XML file or copy of /sys/devices/system>")
    if m.get("format") not in (None, "auto") or m.get("physics_from") is not None:
        key = "format" if m.get("format") not in (None, "auto") else "physics_from"
        raise ConfigError(f"machine.{key}={m.get(key)!r}: only used with machine.path=<topology file> "
                          "(machine=from_file)")
    if preset is not None:
        base = get_machine(preset)
        over = {k: v for k, v in over.items() if getattr(base, k) != v}
        if not over:
            return preset
        return replace(base, **over).validate()  # checked before the workload is built from it
    missing = [k for k in MACHINE_FIELDS if k not in over and k not in OPTIONAL_MACHINE_FIELDS]
    if missing:
        raise ConfigError(f"machine.preset=None: a custom machine needs machine.{missing[0]} "
                          f"(missing: {', '.join(missing)}), or pick a preset ({', '.join(sorted(PRESETS))})")
    return Machine(**over).validate()


def _machine_from_file(m: dict, over: dict, preset) -> Machine:
    from ..topology import load
    if preset is not None:
        raise ConfigError(f"machine.path={m['path']!r} with machine.preset={preset!r}: a machine comes from a "
                          "preset or from a topology file, not both (machine=from_file sets preset: null)")
    fixed = sorted(set(over) - set(FROM_FILE_FIELDS))
    if fixed:
        raise ConfigError(f"machine.{fixed[0]}: comes from machine.path={m['path']!r}; with a topology file only "
                          f"{', '.join(FROM_FILE_FIELDS)} may be set")
    if not isinstance(m["path"], str) or not m["path"]:
        raise ConfigError(f"machine.path={m['path']!r}: must be the path of a numactl --hardware file, an hwloc "
                          "XML file or a copy of /sys/devices/system/node")
    name, tpc, desc = over.pop("name", None), over.pop("threads_per_core", None), over.pop("description", None)
    mach = load(m["path"], m.get("format") or "auto", name=name, physics_from=m.get("physics_from"),
                threads_per_core=tpc, **over)
    return replace(mach, description=desc) if desc else mach


def _flat_dict(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_dict(v, key + "."))
        else:
            out[key] = v
    return out


def build_knobs(policy: dict) -> Knobs:
    knobs = {k: v for k, v in policy.items() if k != "name"}
    return with_overrides(Knobs(), _flat_dict(knobs))


def build_sim(s: dict) -> SimConfig:
    return SimConfig(**{k: s[k] for k in SIM_FIELDS if k in s})


def to_runconfig(spec: dict, seed: int) -> RunConfig:
    policy = spec["policy"].get("name")
    if policy not in POLICIES:
        raise ConfigError(f"policy.name={policy!r}: must be one of {sorted(POLICIES)}")
    machine = build_machine(spec["machine"])
    workload = build_workload(spec["workload"], machine, policy, seed)
    return RunConfig(machine=machine, workload=workload, policy=policy, knobs=build_knobs(spec["policy"]),
                     sim=build_sim(spec["sim"]), seed=seed, variant=spec["workload"].get("variant", "default"),
                     build=spec["workload"].get("build") or "latest")


# ------------------------------------------------------------------------------------------
# sweep expansion

def sweep_params(sweep: dict) -> dict:
    """``sweep.params`` flattened to {parameter: values}; nested knob dicts become dotted paths,
    a dict with min/max (a range spec) stays one parameter."""
    out = {}

    def walk(d, prefix):
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict) and not ({"min", "max"} & set(v) or "values" in v):
                walk(v, key + ".")
            else:
                out[key] = v

    walk(sweep.get("params") or {}, "")
    return out


def _kind(param: str) -> str | None:
    """'int' / 'float' / 'flag' for a knob path, None for anything else."""
    path = param[len("policy."):] if param.startswith("policy.") else param
    return RANGES[path][2] if path in RANGES else None


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# Bounds of one job, checked before anything is expanded: past them a typo (sweep.seeds=10000000)
# would spend minutes and gigabytes building configurations no batch could hold.
MAX_SEEDS = 100_000
MAX_CONFIGS = 100_000


def _grid_values(param: str, spec: Any) -> list:
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(f"sweep.params.{param}=[]: must list at least one value")
        return list(spec)
    if isinstance(spec, dict):
        if "values" in spec:
            return _grid_values(param, spec["values"])
        lo, hi, num = spec.get("min"), spec.get("max"), spec.get("num")
        if (not _finite(lo) or not _finite(hi) or isinstance(num, bool) or not isinstance(num, int) or num < 1
                or num > 100_000):
            raise ConfigError(f"sweep.params.{param}={spec!r}: a grid range needs finite numbers min and max and "
                              f"an integer num in [1, 100000] (or give a list of values)")
        if spec.get("log"):
            if lo <= 0 or hi <= 0:
                raise ConfigError(f"sweep.params.{param}={spec!r}: log ranges need min, max > 0")
            vals = np.geomspace(lo, hi, num)
        else:
            vals = np.linspace(lo, hi, num)
        out = _cast(param, list(vals))
        if len(out) < num:  # an integer knob: the rounded points collide
            raise ConfigError(f"sweep.params.{param}={spec!r}: an integer knob has only {len(out)} distinct values "
                              f"in [{lo}, {hi}] ({out[:8]}{'...' if len(out) > 8 else ''}), not num={num}: lower num "
                              f"or widen the range")
        return out
    return [spec]


def _cast(param: str, vals: list) -> list:
    kind = _kind(param)
    if kind in ("int", "flag"):
        out = []
        for v in vals:
            iv = int(round(float(v)))
            if iv not in out:
                out.append(iv)
        return out
    return [float(v) for v in vals]


def _random_values(param: str, spec: Any, n: int, rng: np.random.Generator) -> list:
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(f"sweep.params.{param}=[]: must list at least one value")
        return [spec[i] for i in rng.integers(0, len(spec), n)]
    if isinstance(spec, dict):
        if "values" in spec:
            return _random_values(param, spec["values"], n, rng)
        lo, hi = spec.get("min"), spec.get("max")
        if not _finite(lo) or not _finite(hi) or lo > hi:
            raise ConfigError(f"sweep.params.{param}={spec!r}: a random range needs finite numbers min <= max")
        if spec.get("log"):
            if lo <= 0:
                raise ConfigError(f"sweep.params.{param}={spec!r}: log ranges need min > 0")
            x = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
        else:
            x = rng.uniform(lo, hi, n)
        kind = _kind(param)
        if kind in ("int", "flag"):
            return [int(round(v)) for v in x]
        return [float(v) for v in x]
    return [spec] * n


def combinations(sweep: dict) -> list[dict]:
    """The parameter combinations of the sweep section ([{}] when there is no sweep)."""
    mode = sweep.get("mode", "none")
    mode = getattr(mode, "name", mode)
    params = sweep_params(sweep)
    if mode == "none" and params:
        # An error, not a warning: mode none runs the base configuration alone, so the job would
        # compute something other than what was written (one point, labelled as no sweep), and a
        # warning line is easily lost in a long job's log. The fix is one override either way.
        raise ConfigError(f"sweep.params.{next(iter(params))}: set while sweep.mode=none, which runs only the base "
                          f"configuration and ignores sweep.params ({', '.join(params)}): set sweep.mode=grid or "
                          f"random to sweep them, or drop them (sweep=none)")
    if mode != "random":
        # samples / sample_seed only shape a random search (their schema defaults: 16 and 0)
        for key, default in (("samples", 16), ("sample_seed", 0)):
            if sweep.get(key, default) != default:
                warn_once(f"sweep.{key}={sweep[key]!r} has no effect with sweep.mode={mode} (only sweep.mode=random "
                          f"draws samples)")
    if mode == "none" or not params:
        if mode != "none" and not params:
            raise ConfigError(f"sweep.mode={mode}: sweep.params is empty (give at least one parameter)")
        return [{}]
    for p in params:
        _check_param(p)
    if mode == "grid":
        axes = [(p, _grid_values(p, v)) for p, v in params.items()]
        n = math.prod(len(v) for _, v in axes)
        if n > MAX_CONFIGS:
            raise ConfigError(f"sweep.params: the grid has {n:,} combinations ({' x '.join(str(len(v)) for _, v in axes)}); "
                              f"at most {MAX_CONFIGS:,} per job (split it into jobs: -m or a SLURM array)")
        return [dict(zip([a for a, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]
    if mode == "random":
        n = sweep.get("samples", 16)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CONFIGS:
            raise ConfigError(f"sweep.samples={n!r}: must be an integer in [1, {MAX_CONFIGS}]")
        rng = np.random.default_rng(sweep.get("sample_seed", 0))
        cols = {p: _random_values(p, v, n, rng) for p, v in params.items()}
        return [{p: cols[p][i] for p in params} for i in range(n)]
    raise ConfigError(f"sweep.mode={mode!r}: must be none, grid or random")


def _check_param(p: str) -> None:
    if p in SPECIAL or p.startswith(PREFIXES) or _kind(p) is not None:
        if p.startswith("sim.") and p[4:] not in SIM_FIELDS:
            raise ConfigError(f"sweep.params.{p}: unknown sim field (known: {', '.join(SIM_FIELDS)})")
        return
    raise ConfigError(f"sweep.params.{p}: unknown parameter (a knob path such as "
                      f"autonuma.knuma_scand.pages_to_scan, or policy, machine, workload, variant, sim.*, "
                      f"workload.*, machine.*)")


def _set_path(d: dict, path: str, value) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        if not isinstance(d.get(p), dict):
            d[p] = {}
        d = d[p]
    d[parts[-1]] = value


def apply_params(base: dict, params: dict) -> dict:
    """The (machine, workload, policy, sim) sections with one combination applied."""
    spec = copy.deepcopy(base)
    for p, v in params.items():
        if p == "policy":
            spec["policy"]["name"] = v
        elif p == "machine":
            spec["machine"] = {"preset": v}  # a preset replaces the whole machine section
        elif p == "workload":
            if spec["workload"].get("name") != v:
                spec["workload"]["params"] = {}  # another workload: its own defaults
            spec["workload"]["name"] = v
        elif p == "variant":
            spec["workload"]["variant"] = v
        elif p.startswith(PREFIXES):
            _set_path(spec, p, v)
        else:
            path = p[len("policy."):] if p.startswith("policy.") else p
            _set_path(spec["policy"], path, v)
    return spec


# ------------------------------------------------------------------------------------------
# settings that would silently do nothing: one warning line each, once per process

# Warnings this process has given: a sweep of 100 configurations, or the jobs of a -m multirun
# (checked by the sweeper callback before they run, then run in the same process), says each
# thing once, not once per configuration or job.
_warned: set[str] = set()


def warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        log.warning(msg)


def _unit_2m(rc: RunConfig) -> bool:
    return isinstance(rc.sim.page_unit, str) and PAGE_UNITS.get(rc.sim.page_unit) == UNIT_2M_PAGES


def reads(rc: RunConfig, knob: str) -> bool:
    """Whether configuration ``rc`` reads the knob: its policy does, and for THP knobs its page
    units are 2 MiB (4 KiB units are the THP-off machine: khugepaged never runs, params.py)."""
    return policy_reads(rc.policy, knob) and (not knob.startswith("transparent_hugepage.") or _unit_2m(rc))


def _vals(values: list) -> str:
    vals = list(dict.fromkeys(values))
    if len(vals) == 1:
        return repr(vals[0])
    return "[" + ", ".join(map(repr, vals[:6])) + (", ..." if len(vals) > 6 else "") + "]"


def warn_no_ops(runs: list[Run]) -> None:
    """Warn (once each) about knob settings that change nothing. Judged over the whole job, not
    per configuration: under sweep=policies an autonuma knob changes the autonuma24
    configurations, so it is used although the `none` ones ignore it."""
    default = flatten(Knobs())
    swept = {p[len("policy."):] if p.startswith("policy.") else p for r in runs for p in r.params}
    changed: dict[str, list] = {}  # knob -> the configurations that set it off its default
    pmd0_2m = False
    seen = set()  # seeds of one combination (most of a big job) share these; each is looked at once
    for r in runs:
        rc = r.config
        try:
            key = (rc.knobs, rc.policy, rc.sim.page_unit)
            if key in seen:
                continue
            seen.add(key)
        except TypeError:  # an unhashable knob value (a list from a sweep): validate_run refuses it later
            pass
        for k, v in flatten(rc.knobs).items():
            if k in default and v != default[k]:
                changed.setdefault(k, []).append(rc)
        k = rc.knobs
        # With THP off, validate_run refuses pmd=0 on 2 MiB units outright; with THP on every unit
        # is one huge pmd, so the pte/pmd choice never arises (config.pte_mode needs 4 KiB units).
        if (reads(rc, "autonuma.knuma_scand.pmd") and k.autonuma.knuma_scand.pmd == 0 and _unit_2m(rc)
                and k.transparent_hugepage.enabled):
            pmd0_2m = True
    if pmd0_2m:
        warn_once("policy.autonuma.knuma_scand.pmd=0 has no effect with sim.page_unit=2M: every page unit is a "
                  "2 MiB THP, armed and faulted as one pmd either way, so pmd=0 runs exactly as pmd=1; use "
                  "sim=pte_4k (4 KiB page units) for pte-level scanning")
    unused: dict[str, list[str]] = {}  # one line per reason: knob group (or knob) -> its unread knobs
    for knob, rcs in changed.items():
        if any(reads(rc, knob) for rc in rcs):
            continue
        if not any(policy_reads(p, knob) for p in POLICY_KNOBS):
            key = knob  # read by nothing: its own line
        elif knob.startswith("transparent_hugepage.") and any(policy_reads(rc.policy, knob) for rc in rcs):
            key = "4K"  # read under these policies, but not with 4 KiB units
        else:
            key = knob.split(".")[0]
        unused.setdefault(key, []).append(knob)
    for key, knobs in unused.items():
        names = ", ".join(f"sweep.params.{knob} (swept)" if knob in swept else
                          f"policy.{knob}={_vals([_get_knob(rc, knob) for rc in changed[knob]])}" for knob in knobs)
        verb, it = ("has", "it") if len(knobs) == 1 else ("have", "them")
        pols = sorted({rc.policy for knob in knobs for rc in changed[knob]})
        readers = sorted({p for knob in knobs for p in POLICY_KNOBS if policy_reads(p, knob)})
        if key == "4K":
            why = ("with sim.page_unit=4K: 4 KiB page units model a machine without THP (khugepaged never runs); "
                   "THP needs 2 MiB units (sim.page_unit=2M, the default sim)")
        elif not readers:
            why = "in the simulation: nothing in the model reads it"
        else:
            why = (f"here: the job runs policy {', '.join(pols)}, and only {', '.join(readers)} "
                   f"read{'s' if len(readers) == 1 else ''} {it}")
        warn_once(f"{names} {verb} no effect {why}")


def _get_knob(rc: RunConfig, knob: str):
    obj = rc.knobs
    for part in knob.split("."):
        obj = getattr(obj, part)
    return obj


def expand(cfg: dict) -> list[Run]:
    """All configurations of one job: sweep combinations x seeds (in that order)."""
    base = {k: cfg[k] for k in ("machine", "workload", "policy", "sim")}
    sweep = cfg.get("sweep") or {}
    seeds = sweep.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"sweep.seeds={seeds!r}: must be an integer in [1, {MAX_SEEDS}]")
    seed0 = cfg.get("seed", 0)
    combos = combinations(sweep)
    if len(combos) * seeds > MAX_CONFIGS:
        raise ConfigError(f"sweep: {len(combos):,} combinations x sweep.seeds={seeds} = {len(combos) * seeds:,} "
                          f"configurations; at most {MAX_CONFIGS:,} per job (split it into jobs: -m or a SLURM array)")
    runs = []
    for ci, params in enumerate(combos):
        spec = apply_params(base, params)
        for s in range(seeds):
            seed = seed0 + s
            try:
                rc = to_runconfig(spec, seed)
            except ConfigError as e:
                where = f"sweep combination {ci} ({_fmt(params)}): " if params else ""
                raise ConfigError(f"{where}{e}") from None
            except TypeError as e:  # e.g. a knob value of the wrong type from a sweep list
                raise ConfigError(f"sweep combination {ci} ({_fmt(params)}): {e}") from None
            runs.append(Run(config=rc, index=len(runs), combo=ci, params=params, spec=spec))
    warn_no_ops(runs)
    return runs


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


# ------------------------------------------------------------------------------------------
# descriptions of a configuration (result columns)

def describe(run: Run) -> dict:
    """Identity columns of one configuration: names, sim settings and every knob (flattened)."""
    rc = run.config
    m = rc.resolved_machine()
    wl = run.spec["workload"]
    out = {
        "config_index": run.index, "combo": run.combo,
        "machine": m.name, "machine.n_nodes": m.n_nodes, "machine.n_cpus": m.n_cpus,
        "machine.mem_per_node_mib": m.mem_per_node_mib,
        "machine.node_cpus": " ".join(map(str, m.cpus_of_nodes().tolist())),
        "machine.node_mem_mib": " ".join(map(str, m.mib_of_nodes().tolist())),
        "machine.calibration": m.calibration,
        "workload": wl["name"], "variant": POLICIES[rc.policy][1] or rc.variant,
        "workload.size_mib": wl.get("size_mib"), "workload.loops": wl.get("loops"),
        "workload.params": _params_json(wl.get("params")),
        "policy": rc.policy, "seed": rc.seed,
    }
    for k in SIM_FIELDS:
        out[f"sim.{k}"] = getattr(rc.sim, k)
    out.update(flatten(rc.knobs))
    return out


def _params_json(params) -> str | None:
    """The workload parameters that are set, as one JSON column (None when none is)."""
    p = {k: v for k, v in (params or {}).items() if v is not None}
    return json.dumps(p, sort_keys=True) if p else None


def swept_label(params: dict) -> str:
    """A short label of a combination: 'pages_to_scan=8192,policy=none' (last path components,
    the full path when two would clash)."""
    if not params:
        return ""
    short = {}
    lasts = [p.split(".")[-1] for p in params]
    for p in params:
        last = p.split(".")[-1]
        short[p] = last if lasts.count(last) == 1 else p
    return ",".join(f"{short[p]}={_val(v)}" for p, v in params.items())


def _val(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)
