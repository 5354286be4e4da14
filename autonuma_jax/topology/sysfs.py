"""A copy of ``/sys/devices/system/node`` (or of ``/sys/devices/system``) -> Topology.

Read per node ``nodeN/cpulist`` ("0-5,12-17"), ``nodeN/distance`` ("10 21") and
``nodeN/meminfo`` ("Node 0 MemTotal:  12571880 kB"). SMT siblings come from
``cpu/cpuN/topology/thread_siblings_list`` next to the node directory when the copy has it.
"""
from __future__ import annotations

import os
import re

from ..errors import ConfigError
from .topo import Topology, even_mib, parse_cpulist

_NODE = re.compile(r"^node(\d+)$")
_MEMTOTAL = re.compile(r"MemTotal:\s*(\d+)\s*kB")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_sysfs(path: str) -> Topology:
    where = f"machine.path={path!r}"
    base = path
    if os.path.isdir(os.path.join(path, "node")) and not any(_NODE.match(e) for e in os.listdir(path)):
        base = os.path.join(path, "node")
    if not os.path.isdir(base):
        raise ConfigError(f"{where}: not a directory (a copy of /sys/devices/system/node)")
    ids = sorted(int(m.group(1)) for e in os.listdir(base) if (m := _NODE.match(e)))
    if not ids:
        raise ConfigError(f"{where}: no nodeN directories (a copy of /sys/devices/system/node)")
    cpus, mem, dist = [], [], []
    for nid in ids:
        d = os.path.join(base, f"node{nid}")
        try:
            cpus.append(tuple(parse_cpulist(_read(os.path.join(d, "cpulist")), f"{where}: node{nid}/cpulist")))
            row = _read(os.path.join(d, "distance")).split()
            meminfo = _read(os.path.join(d, "meminfo"))
        except FileNotFoundError as e:
            raise ConfigError(f"{where}: node{nid} lacks {os.path.basename(e.filename)} "
                              "(need cpulist, distance and meminfo)") from None
        try:
            dist.append(tuple(int(x) for x in row))
        except ValueError:
            raise ConfigError(f"{where}: node{nid}/distance must be integers, got {' '.join(row)!r}") from None
        m = _MEMTOTAL.search(meminfo)
        if not m:
            raise ConfigError(f"{where}: node{nid}/meminfo has no 'MemTotal: ... kB' line")
        mem.append(even_mib(int(m.group(1)) / 1024))
    # node<N>/distance lists the distances to every *online* node in order, which is `ids`
    return Topology(node_ids=tuple(ids), cpus=tuple(cpus), mem_mib=tuple(mem), distance=tuple(dist),
                    threads_per_core=_smt(os.path.join(os.path.dirname(os.path.abspath(base)), "cpu"),
                                          [c for cs in cpus for c in cs], where),
                    source="sysfs").check(where)


def _smt(cpu_dir: str, cpus: list[int], where: str) -> int | None:
    sizes = set()
    for c in cpus:
        p = os.path.join(cpu_dir, f"cpu{c}", "topology", "thread_siblings_list")
        if not os.path.exists(p):
            return None
        sizes.add(len(parse_cpulist(_read(p), f"{where}: cpu{c}/topology/thread_siblings_list")))
    if len(sizes) > 1:
        raise ConfigError(f"{where}: cores have different numbers of SMT siblings {sorted(sizes)}; "
                          "set machine.threads_per_core")
    return sizes.pop() if sizes else None
