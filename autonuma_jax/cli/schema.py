"""Structured config schemas (dataclasses registered in hydra's ConfigStore).

The YAML files under ``conf/`` are merged onto these schemas, so a typo in a key or a value of
the wrong type fails at composition with hydra's own message (``Key 'pages_to_scn' not in
'KnumaScand'``, ``Value 'abc' ... could not be converted to Integer``). Ranges are not checked
here: the core (``autonuma_jax.config.validate_run``) owns them and the CLI reports its one-line
``ConfigError`` before any compile.

The knob schema is generated from the core's ``Knobs`` dataclasses (same field names, types and
defaults, but mutable, which hydra needs), so it can never drift from the engine. Under
``policy`` every knob sits at its ``/sys/kernel/mm/autonuma`` path:
``policy.autonuma.knuma_scand.pages_to_scan``.
"""
from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore

from ..config import SimConfig
from ..knobs import Knobs


def _mirror(cls, cache: dict):
    """A mutable copy of a (frozen, nested) core dataclass: same fields, types and defaults."""
    if cls in cache:
        return cache[cls]
    hints = typing.get_type_hints(cls)
    default = cls()
    specs = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(tp):
            sub = _mirror(tp, cache)
            specs.append((f.name, sub, field(default_factory=sub)))
        else:
            specs.append((f.name, tp, field(default=value)))
    new = dataclasses.make_dataclass(cls.__name__, specs, namespace={"__doc__": cls.__doc__})
    new.__module__ = __name__
    cache[cls] = new
    return new


_MIRRORS: dict = {}
KnobsConf = _mirror(Knobs, _MIRRORS)


def _knob_fields():
    out = []
    for f in dataclasses.fields(KnobsConf):
        out.append((f.name, f.type, field(default_factory=f.default_factory)))
    return out


# policy: the name plus every knob at its sysfs path (knobs apply to every policy: the costs and the
# scheduler noise also shape the `none` and binding baselines).
PolicyConf = dataclasses.make_dataclass(
    "PolicyConf", [("name", str, field(default="autonuma24"))] + _knob_fields(),
    namespace={"__doc__": "policy.name in autonuma24 | none | hard_bind | inverse_bind, plus every knob."})
PolicyConf.__module__ = __name__


@dataclass
class MachineConf:
    """A preset (``autonuma_jax.machine.PRESETS``) with optional field overrides, or, with
    ``preset: null``, a machine defined field by field (every field then required)."""
    preset: Optional[str] = "2node_24cpu"
    name: Optional[str] = None
    n_nodes: Optional[int] = None
    cpus_per_node: Optional[int] = None
    threads_per_core: Optional[int] = None
    mem_per_node_mib: Optional[int] = None
    distance: Optional[List[List[int]]] = None
    lat_local_ns: Optional[float] = None
    lat_remote_ns: Optional[float] = None
    core_mlp: Optional[float] = None
    socket_mlp: Optional[float] = None
    node_bw_gbs: Optional[float] = None
    link_bw_gbs: Optional[float] = None
    bzero_traffic: Optional[float] = None
    groups: Optional[int] = None
    lat_group_ns: Optional[float] = None
    link_group_gbs: Optional[float] = None
    latency_ns: Optional[List[List[float]]] = None
    link_matrix_gbs: Optional[List[List[float]]] = None
    description: Optional[str] = None
    # uneven machines: CPUs and MiB of each node, the firmware's node numbers (holes allowed)
    node_cpus: Optional[List[int]] = None
    node_mem_mib: Optional[List[int]] = None
    node_ids: Optional[List[int]] = None
    calibration: Optional[str] = None  # "calibrated" or "uncalibrated: <why>" (default: calibrated)
    # machine=from_file: a topology file (numactl --hardware text, hwloc XML, a copy of
    # /sys/devices/system/node); format auto | numactl | sysfs | hwloc; physics_from: the preset
    # whose memory-system physics the machine borrows (default: the preset of its node count)
    path: Optional[str] = None
    format: Optional[str] = None
    physics_from: Optional[str] = None


@dataclass
class WorkloadConf:
    """A workload of ``autonuma_jax.workloads.WORKLOADS``; ``size_mib`` / ``loops`` shrink it
    (per-process memory and passes; null = the workload's own sizes and loop counts; for the newer
    workloads they set the parameters named by ``WORKLOADS[name].size_param`` / ``loops_param``).
    ``params``: the workload's own parameters (see its conf/workload/<name>.yaml; null = the
    documented default, derived from the machine where it says so)."""
    name: str = "numa01"
    variant: str = "default"  # default | no_force | split_init (hard_bind / inverse_bind come from the policy)
    build: str = "latest"  # dated autonuma-benchmark build: 2012-03 | 2012-06-06 | 2012-07-05 | 2012-07-15 | latest
    size_mib: Optional[int] = None
    loops: Optional[int] = None
    params: Dict[str, Any] = field(default_factory=dict)


_SIM = SimConfig()


@dataclass
class SimConf:
    tick_ms: float = _SIM.tick_ms
    duration_s: float = _SIM.duration_s  # simulated seconds (the run stops early once all threads are done)
    page_unit: str = _SIM.page_unit  # 2M | 4K
    report_interval_ms: float = _SIM.report_interval_ms  # one time-series row (and wandb point) per interval
    check_invariants: bool = _SIM.check_invariants
    reports_per_chunk: int = 10  # report intervals per compiled call (progress / early-stop granularity)
    batch_size: int = 0  # most configurations in one vmapped batch (0 = a whole shape bucket)
    stop_when_done: bool = True
    # finished configurations leave the compiled batch once half of it is done, when the saving pays
    # for the smaller batch's compile (Bucket.run(retire_done=...)); results are the same bit for bit
    retire_done: bool = True
    # Persistent XLA compilation cache (a second run of the same shapes skips the compile); null = off.
    compilation_cache_dir: Optional[str] = None
    # JSON lines of this machine's measured throughput (cli/throughput.py: --dry-run estimates); null = off.
    throughput_log: Optional[str] = None


class SweepMode(enum.Enum):
    none = 0
    grid = 1
    random = 2


@dataclass
class SweepConf:
    """In-process sweep: expands into many configurations run as one vmapped batch per shape.

    ``params`` maps a parameter to its values. A parameter is a knob path
    (``autonuma.knuma_scand.pages_to_scan``, nested YAML or dotted keys both work), or ``policy``,
    ``machine`` (preset name), ``workload`` (benchmark name), ``variant``, ``sim.<field>``,
    ``workload.<field>``, ``machine.<field>``. Values: a list (grid: every value; random: a uniform
    choice) or, for numbers, ``{min, max, log, num}`` (grid: ``num`` points; random: uniform or
    log-uniform draws; integer knobs are rounded). Every combination runs ``seeds`` seeds.
    """
    mode: SweepMode = SweepMode.none
    seeds: int = 1
    samples: int = 16  # random mode: number of sampled combinations
    sample_seed: int = 0  # random mode: seed of the sampler (not of the simulation)
    params: Dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggerConf:
    """Weights & Biases. ``mode``: offline (default; the run lives in the job's output folder,
    ``wandb sync`` it later), online, or disabled (wandb is not even imported)."""
    mode: str = "offline"
    project: str = "autonuma-jax"
    entity: Optional[str] = None
    group: Optional[str] = None  # null: the hydra sweep (multirun) or the experiment name
    name: Optional[str] = None  # null: experiment name + job number + overrides
    tags: List[str] = field(default_factory=list)
    job_type: str = "simulate"
    max_runs: int = 64  # wandb runs per job, one per parameter combination (the rest: only in the results table)
    plots: bool = True  # log the job's plots as wandb images
    table: bool = True  # log the per-configuration results as a wandb.Table
    init_timeout_s: float = 60.0
    fallback_offline: bool = True  # an online init that fails retries offline before giving up


@dataclass
class ResultsConf:
    timeseries: bool = True  # write timeseries.parquet (one row per configuration and report interval)
    vmstat: bool = True  # write vmstat/config_<index>.txt: final counters as /proc/vmstat lines
    plots: bool = True  # write plots/ into the job folder
    max_nmstat_plots: int = 4
    overwrite: bool = False  # refuse to replace an existing results.parquet unless true
    # Save each batch's state to <job folder>/checkpoints/ every N chunks (0: never). A job that is
    # requeued (SLURM timeout / preemption with hydra.launcher.max_num_timeout > 0) or re-run into
    # the same folder resumes from it; the checkpoints are deleted once results.parquet is written.
    checkpoint_every: int = 0
    # A write that fails for lack of space (ENOSPC / EDQUOT) is retried this often before the job
    # exits with status 4; each batch's final state stays in checkpoints/ until the results are written.
    write_retry_s: float = 10.0
    write_retries: int = 6


class ProgressMode(enum.Enum):
    auto = 0  # a bar with ETA on a terminal, plain periodic lines otherwise
    bar = 1
    lines = 2
    off = 3


@dataclass
class ProgressConf:
    mode: ProgressMode = ProgressMode.auto
    interval_s: float = 10.0  # plain-line mode: at most one line per interval (and one at the end)


@dataclass
class AppConfig:
    name: str = "default"  # experiment name: output folders and the wandb group
    dry_run: bool = False  # print what the command expands to and its estimated wall time; run nothing
    seed: int = 0  # first seed; sweep.seeds adds seed+1, seed+2, ...
    machine: MachineConf = field(default_factory=MachineConf)
    workload: WorkloadConf = field(default_factory=WorkloadConf)
    policy: PolicyConf = field(default_factory=PolicyConf)
    sim: SimConf = field(default_factory=SimConf)
    sweep: SweepConf = field(default_factory=SweepConf)
    logger: LoggerConf = field(default_factory=LoggerConf)
    results: ResultsConf = field(default_factory=ResultsConf)
    progress: ProgressConf = field(default_factory=ProgressConf)
    # null: the job returns its summary (a dict); runtime | converge | overhead | weighted: it returns
    # that objective (autonuma_jax.tune.objective), averaged over its configurations: the number
    # hydra's Optuna sweeper minimises (sweeps/optuna_*.yaml)
    objective: Optional[str] = None
    overhead_weight: float = 1.0  # seconds of runtime one CPU second of kernel work costs (objective=weighted)


# ---- autonuma-sim-tune (conf/tune.yaml, autonuma_jax/cli/tune_app.py) --------------------------
@dataclass
class TuneSimConf:
    """The simulation settings of every run of a tuning job (``SimConfig``'s, checked by it)."""
    tick_ms: float = 1.0
    duration_s: float = 400.0  # the full run; a workload entry may set its own (workloads[i].duration_s)
    page_unit: str = "2M"
    report_interval_ms: float = 1000.0
    reports_per_chunk: int = 10  # rung budgets are rounded up to whole chunks of this many intervals


@dataclass
class RungConf:
    fraction: float = 1.0  # share of the run simulated (the last rung: 1.0)
    seeds: int = 1


@dataclass
class SearchConf:
    """The searched knobs of one policy (conf/search/*.yaml). ``space``: nested as the knobs are
    (autonuma: {knuma_scand: {pages_to_scan: {lo: 4096, hi: 524288, log: true}}}); a knob with
    an empty entry ({} or null) gets its allowed range and default scale. ``fixed``: knob overrides
    (same nesting) every candidate and the defaults run with."""
    policy: str = "autonuma24"
    space: Dict[str, Any] = field(default_factory=dict)
    fixed: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TuneResultsConf:
    plots: bool = True


@dataclass
class TuneAppConfig:
    name: str = "tune"
    seed: int = 0  # search seeds: seed ..; fresh seeds: seed + 1000000 ..; candidates are drawn from it
    dry_run: bool = False  # print the cells, candidates and batches; run nothing
    machines: List[str] = field(default_factory=lambda: ["2node_24cpu"])  # presets or conf/machine/<name>.yaml
    # benchmark names, or {name, size_mib, loops, variant, build, params, duration_s}
    workloads: List[Any] = field(default_factory=lambda: ["numa01"])
    objective: str = "runtime"  # runtime | converge | overhead | weighted
    overhead_weight: float = 1.0  # objective=weighted: runtime_s + overhead_weight * overhead_cpu_s
    candidates: int = 27
    eta: int = 3
    rungs: List[RungConf] = field(default_factory=lambda: [RungConf(0.25, 1), RungConf(0.5, 2), RungConf(1.0, 3)])
    fresh_seeds: int = 5
    transfer: bool = True
    sim: TuneSimConf = field(default_factory=TuneSimConf)
    search: SearchConf = field(default_factory=SearchConf)
    logger: LoggerConf = field(default_factory=lambda: LoggerConf(job_type="tune"))
    results: TuneResultsConf = field(default_factory=TuneResultsConf)
    progress: ProgressConf = field(default_factory=ProgressConf)


_REGISTERED = False


def register() -> None:
    """Register the schemas (idempotent). ``conf/config.yaml`` starts from ``base_config``."""
    global _REGISTERED
    if _REGISTERED:
        return
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=AppConfig)
    cs.store(name="tune_base", node=TuneAppConfig)
    _REGISTERED = True
