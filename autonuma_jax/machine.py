"""NUMA machine presets: topology, memory, SLIT distances and bandwidths.

One set of physical numbers per machine, each with its source or reasoning; nothing here is
tuned per workload or per policy. CPUs are numbered node-major (cpu = node * cpus_per_node + i)
and SMT siblings are adjacent (core = cpu // threads_per_core). The kernel iterates "for each
node, for each CPU of the node", so this numbering does not change any decision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, require

PAGE_SIZE = 4096
HPAGE_PMD_NR = 512  # 4 KiB pages per 2 MiB pmd


@dataclass(frozen=True)
class Machine:
    name: str
    n_nodes: int
    cpus_per_node: int
    threads_per_core: int
    mem_per_node_mib: int
    distance: tuple  # SLIT, n_nodes x n_nodes, 10 on the diagonal
    node_bw_gbs: float  # memory-controller bandwidth of one node (STREAM-class), GB/s
    link_bw_gbs: float  # interconnect bandwidth per direction between two nodes, GB/s
    thread_bw_gbs: float  # one thread alone on a core streaming writes to local memory, GB/s
    smt_share: float  # share of thread_bw each of two busy SMT siblings gets
    sources: str = ""
    description: str = ""

    # ---- derived -------------------------------------------------------------------------
    @property
    def n_cpus(self) -> int:
        return self.n_nodes * self.cpus_per_node

    @property
    def node_pages(self) -> int:
        return self.mem_per_node_mib * 1024 * 1024 // PAGE_SIZE

    def cpu_node(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_nodes, dtype=np.int32), self.cpus_per_node)

    def cpu_core(self) -> np.ndarray:
        return (np.arange(self.n_cpus, dtype=np.int32) // self.threads_per_core).astype(np.int32)

    def distance_matrix(self) -> np.ndarray:
        return np.asarray(self.distance, dtype=np.int32)

    def zonelist(self) -> np.ndarray:
        """Row n: nodes ordered by SLIT distance from n, ties by node id (the kernel's zonelist)."""
        d = self.distance_matrix()
        return np.stack([np.lexsort((np.arange(self.n_nodes), d[n])) for n in range(self.n_nodes)]).astype(np.int32)

    def watermarks_pages(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(min, low, high) watermarks per node in 4 KiB pages.

        Linux 3.6 init_per_zone_wmark_min: min_free_kbytes = sqrt(lowmem_kbytes * 16), clamped
        to [128, 65536]; each zone gets a share proportional to its size; low = min * 5/4,
        high = min * 3/2. We treat each node as one zone [I].
        """
        total_kb = self.n_nodes * self.mem_per_node_mib * 1024
        min_free_kb = int(min(65536, max(128, math.isqrt(total_kb * 16))))
        per_node_min = min_free_kb // 4 // self.n_nodes  # kB -> pages, split evenly over nodes
        mn = np.full(self.n_nodes, per_node_min, dtype=np.int32)
        return mn, mn + mn // 4, mn + mn // 2

    def validate(self) -> "Machine":
        require(self.n_nodes >= 1 and self.n_nodes <= 64, "machine.n_nodes", self.n_nodes, "an integer in [1, 64]")
        require(self.cpus_per_node >= 1, "machine.cpus_per_node", self.cpus_per_node, "an integer >= 1")
        require(self.threads_per_core in (1, 2, 4) and self.cpus_per_node % self.threads_per_core == 0,
                "machine.threads_per_core", self.threads_per_core, "1, 2 or 4, dividing cpus_per_node")
        require(self.mem_per_node_mib >= 64 and self.mem_per_node_mib % 2 == 0, "machine.mem_per_node_mib",
                self.mem_per_node_mib, "an even number of MiB >= 64 (whole 2 MiB page units)")
        require(self.node_pages < 2**31 // 2, "machine.mem_per_node_mib", self.mem_per_node_mib,
                "< 4 TiB per node (int32 page counters)")
        d = np.asarray(self.distance)
        require(d.shape == (self.n_nodes, self.n_nodes), "machine.distance", f"shape {d.shape}",
                f"a {self.n_nodes}x{self.n_nodes} SLIT matrix")
        require(bool(np.all(np.diag(d) == 10)), "machine.distance", "diagonal " + str(np.diag(d).tolist()),
                "10 on the diagonal (SLIT local distance)")
        off = d[~np.eye(self.n_nodes, dtype=bool)]
        require(bool(np.all(off > 10)) and bool(np.all(off <= 254)), "machine.distance", off.tolist(),
                "in (10, 254] off the diagonal")
        for name in ("node_bw_gbs", "link_bw_gbs", "thread_bw_gbs"):
            v = getattr(self, name)
            require(v > 0 and v < 10000, f"machine.{name}", v, "a bandwidth in (0, 10000) GB/s")
        require(0 < self.smt_share <= 1, "machine.smt_share", self.smt_share, "in (0, 1]")
        return self


def _flat(n: int, remote: int) -> tuple:
    return tuple(tuple(10 if i == j else remote for j in range(n)) for i in range(n))


# Opteron 61xx (Magny-Cours) two sockets, two dies each: SLIT 16 to the sibling die / one-hop
# node and 22 to the diagonal (two-hop) node, as its BIOS reports.
_OPTERON4 = ((10, 16, 16, 22), (16, 10, 22, 16), (16, 22, 10, 16), (22, 16, 16, 10))

PRESETS: dict[str, Machine] = {}


def _add(m: Machine) -> None:
    PRESETS[m.name] = m.validate()


_add(Machine(
    name="2node_24cpu", n_nodes=2, cpus_per_node=12, threads_per_core=2, mem_per_node_mib=8192,
    distance=_flat(2, 20), node_bw_gbs=20.0, link_bw_gbs=12.8, thread_bw_gbs=6.0, smt_share=0.6,
    description="2 sockets x 6 cores x 2 SMT (Westmere-EP class, e.g. Xeon X5650), 16 GiB, SLIT 10/20",
    sources=("3 x DDR3-1333 channels per socket = 32 GB/s peak, STREAM ~20 GB/s per socket; "
             "QPI 6.4 GT/s = 12.8 GB/s per direction; one core streams ~6 GB/s of writes; two "
             "busy hyperthreads of a memory-bound core each get ~60% of one alone [I]"),
))
_add(Machine(
    name="2node_12core", n_nodes=2, cpus_per_node=6, threads_per_core=1, mem_per_node_mib=12288,
    distance=_flat(2, 21), node_bw_gbs=20.0, link_bw_gbs=12.8, thread_bw_gbs=6.5, smt_share=1.0,
    description="2 sockets x 6 cores, SMT off (Westmere-EP, e.g. Xeon X5670), 24 GiB, SLIT 10/21",
    sources="as 2node_24cpu; Intel BIOSes of that era report 21 for the remote socket",
))
_add(Machine(
    name="4node_32cpu", n_nodes=4, cpus_per_node=8, threads_per_core=1, mem_per_node_mib=16384,
    distance=_OPTERON4, node_bw_gbs=11.0, link_bw_gbs=6.4, thread_bw_gbs=4.5, smt_share=1.0,
    description="2 x Opteron 6134 (Magny-Cours, one 8-core die per node), 64 GiB, SLIT 10/16/22",
    sources=("2 x DDR3-1333 channels per die = 21 GB/s peak, STREAM ~11 GB/s per node; HyperTransport 3 "
             "x8/x16 links ~6.4 GB/s per direction; one K10 core streams ~4.5 GB/s"),
))
_add(Machine(
    name="4node_48cpu", n_nodes=4, cpus_per_node=12, threads_per_core=1, mem_per_node_mib=16384,
    distance=_OPTERON4, node_bw_gbs=11.0, link_bw_gbs=6.4, thread_bw_gbs=4.0, smt_share=1.0,
    description="2 x Opteron 6172 (12 cores per node), 64 GiB, SLIT 10/16/22",
    sources="as 4node_32cpu, one K10 core at 2.1 GHz streams ~4 GB/s",
))
_add(Machine(
    name="8node_64cpu", n_nodes=8, cpus_per_node=8, threads_per_core=1, mem_per_node_mib=40960,
    distance=_flat(8, 20), node_bw_gbs=18.0, link_bw_gbs=12.8, thread_bw_gbs=5.0, smt_share=1.0,
    description="8 sockets x 8 cores (Westmere-EX, e.g. Xeon E7-8837), 320 GiB, flat SLIT 10/20",
    sources=("4 x DDR3-1066 channels per socket through scalable memory buffers, STREAM ~18 GB/s per "
             "socket; QPI 6.4 GT/s = 12.8 GB/s per direction; BIOS reports a flat 20"),
))


def get_machine(name: str) -> Machine:
    if name not in PRESETS:
        raise ConfigError(f"machine={name!r}: must be one of {sorted(PRESETS)}")
    return PRESETS[name]
