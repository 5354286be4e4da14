"""Topology + physics -> Machine, and ``load(path)`` for any of the three file formats.

Topology files give nodes, CPUs, memory and the SLIT; they cannot give the memory system's
physics (idle latencies, miss slots, controller and link bandwidths). Until the user supplies
those (``machine.<field>=...`` from a STREAM or ``perf bench numa`` figure, or the calibration
fit on their own none / hard_bind / inverse_bind timings), the machine borrows them from the
calibrated preset of its class and says so: ``Machine.calibration`` starts with "uncalibrated",
and every result row, report and CLI run carries it.

Class rule (documented choice): the preset with the same number of nodes (2 -> 2node_24cpu,
4 -> 4node_32cpu, 8 -> 8node_64cpu with its two 4-socket groups), any other count -> 4node_32cpu
without groups. ``physics_from`` picks another preset.
"""
from __future__ import annotations

import os
from dataclasses import replace

from ..errors import ConfigError
from ..machine import PRESETS, Machine
from .hwloc import parse_hwloc
from .numactl import parse_numactl
from .sysfs import read_sysfs
from .topo import Topology

PHYSICS_FIELDS = ("lat_local_ns", "lat_remote_ns", "core_mlp", "socket_mlp", "node_bw_gbs", "link_bw_gbs",
                  "bzero_traffic", "groups", "lat_group_ns", "link_group_gbs")
CLASS_PRESET = {2: "2node_24cpu", 4: "4node_32cpu", 8: "8node_64cpu"}
FORMATS = ("auto", "numactl", "sysfs", "hwloc")


def physics_preset(n_nodes: int, physics_from: str | None = None) -> Machine:
    name = physics_from or CLASS_PRESET.get(n_nodes, "4node_32cpu")
    if name not in PRESETS:
        raise ConfigError(f"machine.physics_from={name!r}: must be one of {sorted(PRESETS)}")
    return PRESETS[name]


def to_machine(topo: Topology, name: str | None = None, physics_from: str | None = None,
               threads_per_core: int | None = None, where: str = "machine") -> Machine:
    n = len(topo.node_ids)
    base = physics_preset(n, physics_from)
    phys = {f: getattr(base, f) for f in PHYSICS_FIELDS}
    if phys["groups"] > 1 and n % phys["groups"]:
        phys.update(groups=1, lat_group_ns=None, link_group_gbs=None)
    counts = tuple(len(c) for c in topo.cpus)
    tpc = threads_per_core or topo.threads_per_core or 1
    bad = [topo.node_ids[i] for i, c in enumerate(counts) if c % tpc]
    if bad:
        raise ConfigError(f"{where}: threads_per_core={tpc} does not divide the CPU count of node(s) {bad} "
                          f"(CPUs per node {list(counts)}); set machine.threads_per_core")
    ids = tuple(topo.node_ids)
    holes = ids != tuple(range(n))
    desc = (f"{topo.source}: {n} nodes{' (numbered ' + ','.join(map(str, ids)) + ')' if holes else ''}, "
            f"CPUs per node {list(counts)}, MiB per node {list(topo.mem_mib)}, {tpc} thread(s) per core")
    m = Machine(
        name=name or f"{topo.source.split()[0]}_{n}node_{sum(counts)}cpu", n_nodes=n,
        cpus_per_node=max(counts), threads_per_core=tpc, mem_per_node_mib=max(topo.mem_mib),
        distance=topo.distance, node_cpus=counts, node_mem_mib=tuple(topo.mem_mib),
        node_ids=ids if holes else None,
        calibration=f"uncalibrated: memory-system physics of preset {base.name}",
        description=desc, sources=f"topology read from {topo.source}; physics: {base.name} ({base.sources})",
        **phys)
    try:
        return m.validate()
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def detect_format(path: str) -> str:
    if os.path.isdir(path):
        return "sysfs"
    with open(path, errors="replace") as f:
        head = f.read(4096)
    if head.lstrip().startswith("<?xml") or "<topology" in head:
        return "hwloc"
    if "available:" in head or "node distances" in head:
        return "numactl"
    raise ConfigError(f"machine.path={path!r}: not numactl --hardware output, a sysfs node directory "
                      "or an hwloc XML file (set machine.format)")


def read_topology(path: str, fmt: str = "auto") -> Topology:
    if fmt not in FORMATS:
        raise ConfigError(f"machine.format={fmt!r}: must be one of {list(FORMATS)}")
    if not os.path.exists(path):
        raise ConfigError(f"machine.path={path!r}: no such file or directory")
    fmt = detect_format(path) if fmt == "auto" else fmt
    where = f"machine.path={path!r}"
    if fmt == "sysfs":
        return read_sysfs(path)
    if os.path.isdir(path):
        raise ConfigError(f"{where}: a directory, but machine.format={fmt!r} reads a file")
    with open(path, errors="replace") as f:
        text = f.read()
    return parse_numactl(text, where) if fmt == "numactl" else parse_hwloc(text, where)


def load(path: str, fmt: str = "auto", name: str | None = None, physics_from: str | None = None,
         threads_per_core: int | None = None, **physics) -> Machine:
    """A Machine from a topology file; ``physics`` fields (e.g. node_bw_gbs=25.0) replace the
    borrowed ones. Any physics field given also changes ``calibration`` to say which were given."""
    topo = read_topology(path, fmt)
    m = to_machine(topo, name=name, physics_from=physics_from, threads_per_core=threads_per_core,
                   where=f"machine.path={path!r}")
    if physics:
        unknown = sorted(set(physics) - set(PHYSICS_FIELDS) - {"latency_ns", "link_matrix_gbs", "calibration"})
        if unknown:
            raise ConfigError(f"machine.{unknown[0]}: not a physics field (one of {list(PHYSICS_FIELDS)})")
        cal = physics.pop("calibration", None) or (
            f"{m.calibration}, except {', '.join(sorted(physics))} (given)" if physics else m.calibration)
        m = replace(m, calibration=cal, **physics).validate()
    return m
