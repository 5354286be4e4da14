"""``numactl --hardware`` output -> Topology.

The lines numactl prints (numactl 2.x, libnuma's view of sysfs)::

    available: 2 nodes (0-1)
    node 0 cpus: 0 1 2 3 4 5 12 13 14 15 16 17
    node 0 size: 12277 MB
    node 0 free: 11563 MB
    ...
    node distances:
    node   0   1
      0:  10  21
      1:  21  10

A node without CPUs prints an empty ``cpus:`` list; a node without memory prints ``size: 0 MB``;
nodes absent from the numbering (holes) are simply not listed. numactl's MB are MiB (it divides
by 1 << 20). It says nothing about SMT siblings: threads_per_core stays unknown.
"""
from __future__ import annotations

import re

from ..errors import ConfigError
from .topo import Topology, even_mib, parse_cpulist

_AVAIL = re.compile(r"^available:\s*(\d+)\s+nodes?\s*\(([^)]*)\)")
_CPUS = re.compile(r"^node\s+(\d+)\s+cpus:(.*)$")
_SIZE = re.compile(r"^node\s+(\d+)\s+size:\s*(\d+)\s*MB")
_ROW = re.compile(r"^\s*(\d+):((?:\s+\d+)+)\s*$")


def parse_numactl(text: str, where: str = "numactl --hardware") -> Topology:
    lines = text.splitlines()
    ids = None
    cpus: dict = {}
    size: dict = {}
    header = None
    rows: dict = {}
    in_dist = False
    for ln in lines:
        s = ln.rstrip()
        if m := _AVAIL.match(s):
            ids = parse_cpulist(m.group(2), f"{where}: available")
            if len(ids) != int(m.group(1)):
                raise ConfigError(f"{where}: 'available: {m.group(1)} nodes' lists {len(ids)} node numbers")
        elif m := _CPUS.match(s):
            try:
                cpus[int(m.group(1))] = [int(x) for x in m.group(2).split()]
            except ValueError:
                raise ConfigError(f"{where}: {s!r}: CPU numbers must be integers") from None
        elif m := _SIZE.match(s):
            size[int(m.group(1))] = int(m.group(2))
        elif s.strip().startswith("node distances"):
            in_dist = True
        elif in_dist and s.strip().startswith("node"):
            header = [int(x) for x in s.split()[1:]]
        elif in_dist and (m := _ROW.match(s)):
            rows[int(m.group(1))] = [int(x) for x in m.group(2).split()]
    if ids is None:
        if not cpus:
            raise ConfigError(f"{where}: not numactl --hardware output (no 'available: N nodes' line)")
        ids = sorted(cpus)
    ids = sorted(ids)
    for nid in ids:
        if nid not in cpus:
            raise ConfigError(f"{where}: node {nid} has no 'node {nid} cpus:' line")
        if nid not in size:
            raise ConfigError(f"{where}: node {nid} has no 'node {nid} size: ... MB' line")
    if len(ids) == 1 and not rows:
        dist = ((10,),)
    else:
        if header is None or not rows:
            raise ConfigError(f"{where}: no 'node distances:' matrix")
        if sorted(header) != ids or sorted(rows) != ids:
            raise ConfigError(f"{where}: the distance matrix covers nodes {header}, the machine has {ids}")
        col = {nid: j for j, nid in enumerate(header)}
        dist = tuple(tuple(rows[a][col[b]] for b in ids) for a in ids)
    return Topology(node_ids=tuple(ids), cpus=tuple(tuple(cpus[n]) for n in ids),
                    mem_mib=tuple(even_mib(size[n]) for n in ids), distance=dist,
                    threads_per_core=None, source="numactl --hardware").check(where)
