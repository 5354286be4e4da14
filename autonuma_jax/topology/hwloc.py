"""An hwloc topology export (``lstopo --of xml``, hwloc 1.x or 2.x) -> Topology.

The XML is read with the standard library's ElementTree (hwloc's own Python bindings are not a
maintained package; its XML schema is stable and documented). What is used:

- ``object type="NUMANode"``: ``os_index``, ``local_memory`` (bytes, hugetlb reserves left out) and ``cpuset`` (the PUs it
  is local to; a memory-only node has an empty one). In hwloc 2.x NUMA nodes are memory children
  of a package or group, in 1.x the parents of their cores; ``cpuset`` is right in both.
- ``object type="PU"`` under ``object type="Core"``: SMT siblings (PUs per core).
- distances: hwloc 2.x ``distances2`` (``indexes`` of NUMA os_index, ``u64values`` row-major),
  hwloc 1.x ``distances`` (``latency`` values relative to ``latency_base``).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from ..errors import ConfigError
from .topo import Topology, even_mib


def _cpuset(text: str | None, where: str) -> set[int]:
    """hwloc bitmap "0x0000000f,0xffffffff" (32-bit words, most significant first) -> CPU set."""
    if not text:
        return set()
    if text.strip() == "0x0":
        return set()
    try:
        words = [int(w, 16) for w in text.strip().split(",")]
    except ValueError:
        raise ConfigError(f"{where}: cpuset {text!r} is not an hwloc bitmap (0x...,0x...)") from None
    v = 0
    for w in words:
        v = (v << 32) | w
    return {i for i in range(v.bit_length()) if v >> i & 1}


def parse_hwloc(text: str, where: str = "hwloc XML") -> Topology:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ConfigError(f"{where}: not XML ({e})") from None
    if root.tag != "topology":
        raise ConfigError(f"{where}: not an hwloc topology (root element <{root.tag}>, expected <topology>)")
    objs = list(root.iter("object"))
    nodes = [o for o in objs if o.get("type") == "NUMANode"]
    if not nodes:
        raise ConfigError(f"{where}: no NUMANode object (a machine without NUMA: nothing to balance)")
    info = {}
    for o in nodes:
        nid = int(o.get("os_index", "0"))
        # local_memory: what ordinary allocations can use (pre-reserved hugetlb pages, listed as
        # page_type entries, are not: the benchmarks' anonymous memory never comes from them)
        mem = int(o.get("local_memory", "0"))
        info[nid] = (_cpuset(o.get("cpuset"), where), mem)
    ids = sorted(info)
    pus = {int(o.get("os_index")) for o in objs if o.get("type") == "PU" and o.get("os_index") is not None}
    cpus = tuple(tuple(sorted(info[n][0] & pus if pus else info[n][0])) for n in ids)
    per_core = {len([c for c in o.iter("object") if c.get("type") == "PU"]) for o in objs if o.get("type") == "Core"}
    per_core.discard(0)
    if len(per_core) > 1:
        raise ConfigError(f"{where}: cores have different numbers of PUs {sorted(per_core)}; "
                          "set machine.threads_per_core")
    tpc = per_core.pop() if per_core else None
    return Topology(node_ids=tuple(ids), cpus=cpus, mem_mib=tuple(even_mib(info[n][1] / 2**20) for n in ids),
                    distance=_distances(root, ids, where), threads_per_core=tpc, source="hwloc XML").check(where)


def _distances(root, ids: list[int], where: str) -> tuple:
    n = len(ids)
    if n == 1:
        return ((10,),)
    for d in root.iter("distances2"):
        if d.get("type") != "NUMANode":
            continue
        idx = [int(x) for e in d.findall("indexes") for x in (e.text or "").split()]
        vals = [int(x) for e in d.findall("u64values") for x in (e.text or "").split()]
        if sorted(idx) != ids or len(vals) != n * n:
            raise ConfigError(f"{where}: distances2 covers NUMA nodes {idx}, the machine has {ids}")
        pos = {nid: j for j, nid in enumerate(idx)}
        return tuple(tuple(vals[pos[a] * n + pos[b]] for b in ids) for a in ids)
    for d in root.iter("distances"):
        lat = [float(e.get("value")) for e in d.findall("latency")]
        if int(d.get("nbobjs", "0")) != n or len(lat) != n * n:
            continue
        base = float(d.get("latency_base", "10"))
        # hwloc 1.x lists the NUMA nodes of the distance matrix in logical (os_index) order
        return tuple(tuple(int(round(lat[i * n + j] * base)) for j in range(n)) for i in range(n))
    raise ConfigError(f"{where}: no NUMA distance matrix (distances2 / distances); "
                      "export with lstopo --of xml on the machine itself")
