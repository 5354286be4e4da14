"""What a topology file says about a machine, before any physics is attached."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Topology:
    """Nodes in the order the file lists them (ascending firmware number).

    ``node_ids``: the firmware's node numbers (holes allowed, e.g. (0, 2)); ``cpus``: the OS CPU
    numbers of each node (empty for a memory-only node); ``mem_mib``: MiB of memory of each node
    (0 for a CPU-only node); ``distance``: the SLIT rows in node order; ``threads_per_core``: SMT
    siblings per core when the file tells (sysfs thread_siblings_list, hwloc Core objects), else
    None; ``source``: what was read, for the machine's description."""
    node_ids: tuple
    cpus: tuple  # tuple of tuples of OS CPU numbers
    mem_mib: tuple
    distance: tuple
    threads_per_core: int | None = None
    source: str = ""

    def check(self, where: str) -> "Topology":
        n = len(self.node_ids)
        if n == 0:
            raise ConfigError(f"{where}: no NUMA node found")
        if n > 64:
            raise ConfigError(f"{where}: {n} nodes; at most 64 are supported")
        if len(set(self.node_ids)) != n:
            raise ConfigError(f"{where}: node numbers repeat: {list(self.node_ids)}")
        if len(self.cpus) != n or len(self.mem_mib) != n:
            raise ConfigError(f"{where}: CPUs or sizes missing for some of nodes {list(self.node_ids)}")
        seen: dict = {}
        for nid, cs in zip(self.node_ids, self.cpus):
            for c in cs:
                if c in seen:
                    raise ConfigError(f"{where}: CPU {c} is listed on node {seen[c]} and node {nid}")
                seen[c] = nid
        if not seen:
            raise ConfigError(f"{where}: no node has CPUs")
        if len(self.distance) != n or any(len(r) != n for r in self.distance):
            raise ConfigError(f"{where}: the distance matrix must be {n}x{n} (one row and column per node "
                              f"{list(self.node_ids)}), got {[len(r) for r in self.distance]} columns")
        return self


def parse_cpulist(text: str, where: str) -> list[int]:
    """The kernel's cpulist format: "0-5,12-17" (empty for none)."""
    out: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"{where}: {part!r} is not a CPU number or range (cpulist format: 0-5,12-17)") from None
    return out


def even_mib(mib: float) -> int:
    """Whole 2 MiB page units (the simulator's unit), rounded down."""
    return int(mib) // 2 * 2
