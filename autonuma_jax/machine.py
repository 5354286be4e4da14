"""NUMA machine presets: topology, memory, SLIT distances and the memory system's physics.

One set of physical numbers per machine, each with its source or reasoning; nothing here is tuned
per workload or per policy. CPUs are numbered node-major (cpu = node * cpus_per_node + i) and SMT
siblings are adjacent (core = cpu // threads_per_core). The kernel iterates "for each node, for
each CPU of the node", so this numbering does not change any decision.

The kernel sees the SLIT (``distance``: zonelists, fallback order). The memory system
(``memsys.py``) sees latencies, miss slots and capacities: ``lat_local_ns`` / ``lat_remote_ns`` (a
miss's idle latency, locally and one hop away; further SLIT distances scale linearly, or
``latency_ns`` gives the matrix), ``core_mlp`` / ``socket_mlp`` (misses in flight per core and per
node), ``node_bw_gbs`` (DRAM traffic one node's controller sustains), ``link_bw_gbs`` (data per
direction per link, or ``link_matrix_gbs``) and ``bzero_traffic`` (DRAM lines moved per line
written). ``docs/model.md`` gives the equations and, for every preset, its datasheet priors, the
calibration against the published baseline runs and the fitted values.
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
    distance: tuple  # SLIT, n_nodes x n_nodes, 10 on the diagonal (what the kernel sees)
    lat_local_ns: float  # idle latency of a cache-line miss to the local node's memory, ns
    lat_remote_ns: float  # idle latency one hop away (the smallest remote SLIT distance), ns
    core_mlp: float  # line misses one core keeps in flight (its line fill buffers; SMT siblings share them)
    socket_mlp: float  # line misses all cores of one node keep in flight together (the uncore's queue)
    node_bw_gbs: float  # DRAM traffic one node's memory controller sustains, GB/s
    link_bw_gbs: float  # data one interconnect link carries per direction, GB/s
    bzero_traffic: float = 2.0  # DRAM lines per line bzero writes: 2 = read for ownership + writeback, 1 = non-temporal
    # nodes in `groups` equal groups (boards, chassis) [I]: a miss to a node of another group takes
    # lat_group_ns and crosses a link of link_group_gbs (the SLIT may not show it: M6's is flat)
    groups: int = 1
    lat_group_ns: float | None = None
    link_group_gbs: float | None = None
    latency_ns: tuple | None = None  # explicit idle latency matrix (overrides the derived one)
    link_matrix_gbs: tuple | None = None  # explicit per-direction capacity of each link a -> b
    # Uneven machines (topology files: autonuma_jax.topology). None = every node has cpus_per_node
    # CPUs and mem_per_node_mib MiB. A node may have no CPUs (memory-only) or no memory (CPU-only);
    # the engine sees per-node arrays (cpu_node, node_pages), so no shape changes.
    node_cpus: tuple | None = None  # CPUs of each node
    node_mem_mib: tuple | None = None  # MiB of memory of each node
    node_ids: tuple | None = None  # the firmware's node numbers (may have holes), for display only
    # "calibrated" (fitted to measured baselines) or "uncalibrated: <where the physics came from>";
    # results, reports and the CLI carry it so an uncalibrated prediction is never mistaken for one
    calibration: str = "calibrated"
    sources: str = ""
    description: str = ""

    # ---- derived -------------------------------------------------------------------------
    def cpus_of_nodes(self) -> np.ndarray:
        """[N] CPUs of each node."""
        if self.node_cpus is not None:
            return np.asarray(self.node_cpus, dtype=np.int64)
        return np.full(self.n_nodes, self.cpus_per_node, dtype=np.int64)

    def mib_of_nodes(self) -> np.ndarray:
        """[N] MiB of memory of each node."""
        if self.node_mem_mib is not None:
            return np.asarray(self.node_mem_mib, dtype=np.int64)
        return np.full(self.n_nodes, self.mem_per_node_mib, dtype=np.int64)

    @property
    def uneven(self) -> bool:
        return len(set(self.cpus_of_nodes().tolist())) > 1 or len(set(self.mib_of_nodes().tolist())) > 1

    @property
    def n_cpus(self) -> int:
        return int(self.cpus_of_nodes().sum())

    @property
    def node_pages(self) -> np.ndarray:
        """[N] capacity of each node in 4 KiB pages."""
        return self.mib_of_nodes() * (1024 * 1024 // PAGE_SIZE)

    def cpu_nodes_mask(self) -> int:
        """Bit mask of the nodes that have CPUs (a binding to any other node could never run)."""
        return sum(1 << n for n, c in enumerate(self.cpus_of_nodes().tolist()) if c > 0)

    def node_label(self, n: int) -> int:
        """The firmware's number of node n (numactl / sysfs), n itself when the numbering has no holes."""
        return int(self.node_ids[n]) if self.node_ids is not None else n

    @property
    def thread_peak_gbs(self) -> float:
        """One thread alone on a core writing local memory on an idle machine: core_mlp * 64 B / latency."""
        return self.core_mlp * 64.0 / float(self.latency_matrix().min())

    def cpu_node(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_nodes, dtype=np.int32), self.cpus_of_nodes()).astype(np.int32)

    def cpu_core(self) -> np.ndarray:
        return (np.arange(self.n_cpus, dtype=np.int32) // self.threads_per_core).astype(np.int32)

    def distance_matrix(self) -> np.ndarray:
        return np.asarray(self.distance, dtype=np.int32)

    def latency_matrix(self) -> np.ndarray:
        """[N, N] idle latency (ns) from a CPU of node a to memory of node b: explicit, or local plus
        (remote - local) per SLIT step of the smallest remote distance (two hops: twice)."""
        if self.latency_ns is not None:
            return np.asarray(self.latency_ns, dtype=np.float64)
        d = self.distance_matrix().astype(np.float64)
        if self.n_nodes == 1:
            return np.full((1, 1), self.lat_local_ns)
        d1 = d[~np.eye(self.n_nodes, dtype=bool)].min()
        lat = self.lat_local_ns + (self.lat_remote_ns - self.lat_local_ns) * (d - 10.0) / (d1 - 10.0)
        if self.groups > 1 and self.lat_group_ns is not None:
            lat = np.where(self._across(), self.lat_group_ns, lat)
        return lat

    def _across(self) -> np.ndarray:
        """[N, N]: the two nodes are in different groups."""
        g = np.arange(self.n_nodes) // max(1, self.n_nodes // max(self.groups, 1))
        return g[:, None] != g[None, :]

    def link_matrix(self) -> np.ndarray:
        if self.link_matrix_gbs is not None:
            return np.asarray(self.link_matrix_gbs, dtype=np.float64)
        lk = np.full((self.n_nodes, self.n_nodes), float(self.link_bw_gbs))
        if self.groups > 1 and self.link_group_gbs is not None:
            lk = np.where(self._across(), self.link_group_gbs, lk)
        return lk

    def zonelist(self) -> np.ndarray:
        """Row n: nodes ordered by SLIT distance from n, ties by node id (the kernel's zonelist)."""
        d = self.distance_matrix()
        return np.stack([np.lexsort((np.arange(self.n_nodes), d[n])) for n in range(self.n_nodes)]).astype(np.int32)

    def watermarks_pages(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(min, low, high) watermarks per node in 4 KiB pages.

        Linux 3.6 init_per_zone_wmark_min: min_free_kbytes = sqrt(lowmem_kbytes * 16), clamped
        to [128, 65536]; each zone gets a share proportional to its size (__setup_per_zone_wmarks);
        low = min * 5/4, high = min * 3/2. We treat each node as one zone [I].
        """
        mib = self.mib_of_nodes()
        total_kb = int(mib.sum()) * 1024
        min_free_kb = int(min(65536, max(128, math.isqrt(total_kb * 16))))
        # kB -> pages, shared in proportion to node size (equal nodes: min_free_kb // 4 // n_nodes)
        mn = ((min_free_kb // 4) * mib // max(int(mib.sum()), 1)).astype(np.int32)
        return mn, mn + mn // 4, mn + mn // 2

    def validate(self) -> "Machine":
        """Check every field's type, finiteness and range; return the machine with its numbers
        normalised (integral floats to int, matrices to tuples), or raise one ConfigError line."""
        from dataclasses import replace as _replace

        from . import checks as K
        if not isinstance(self.name, str):
            raise ConfigError(f"machine.name={self.name!r}: must be a string")
        n = K.integer("machine.n_nodes", self.n_nodes, 1, 64)
        norm = dict(
            n_nodes=n, cpus_per_node=K.integer("machine.cpus_per_node", self.cpus_per_node, 1, 4096),
            threads_per_core=K.integer("machine.threads_per_core", self.threads_per_core, 1, 4),
            mem_per_node_mib=K.integer("machine.mem_per_node_mib", self.mem_per_node_mib, 64, 4 << 20),
            distance=K.int_matrix("machine.distance", self.distance, n),
            groups=K.integer("machine.groups", self.groups, 1, n))
        for f in ("lat_local_ns", "lat_remote_ns", "core_mlp", "socket_mlp", "node_bw_gbs", "link_bw_gbs",
                  "bzero_traffic"):
            norm[f] = K.number(f"machine.{f}", getattr(self, f))
        for f in ("lat_group_ns", "link_group_gbs"):
            if getattr(self, f) is not None:
                norm[f] = K.number(f"machine.{f}", getattr(self, f))
        if self.latency_ns is not None:
            norm["latency_ns"] = K.num_matrix("machine.latency_ns", self.latency_ns, n)
        if self.link_matrix_gbs is not None:
            norm["link_matrix_gbs"] = K.num_matrix("machine.link_matrix_gbs", self.link_matrix_gbs, n)
        for f, hi in (("node_cpus", 4096), ("node_mem_mib", 4 << 20), ("node_ids", 4095)):
            v = getattr(self, f)
            if v is None:
                continue
            if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) != n:
                raise ConfigError(f"machine.{f}={v!r}: must be a list of {n} integers (one per node)")
            norm[f] = tuple(K.integer(f"machine.{f}[{i}]", x, 0, hi) for i, x in enumerate(v))
        if not isinstance(self.calibration, str) or not self.calibration:
            raise ConfigError(f"machine.calibration={self.calibration!r}: must be 'calibrated' or "
                              "'uncalibrated: <why>'")
        if self.node_cpus is not None:
            norm["cpus_per_node"] = max(norm["node_cpus"])  # the largest node (documentation only)
        if self.node_mem_mib is not None:
            norm["mem_per_node_mib"] = max(norm["node_mem_mib"])
        return _replace(self, **norm)._validate_ranges()

    def _validate_ranges(self) -> "Machine":
        require(self.n_nodes >= 1 and self.n_nodes <= 64, "machine.n_nodes", self.n_nodes, "an integer in [1, 64]")
        require(self.cpus_per_node >= 1, "machine.cpus_per_node", self.cpus_per_node, "an integer >= 1")
        require(self.n_cpus <= 4096, "machine.node_cpus" if self.node_cpus is not None else "machine.cpus_per_node",
                self.cpus_per_node, f"at most {4096 // self.n_nodes} with {self.n_nodes} nodes (4096 CPUs in all)")
        cpus, mib = self.cpus_of_nodes(), self.mib_of_nodes()
        require(self.threads_per_core in (1, 2, 4) and bool(np.all(cpus % self.threads_per_core == 0)),
                "machine.threads_per_core", self.threads_per_core,
                "1, 2 or 4, dividing every node's CPU count" + (f" {cpus.tolist()}" if self.uneven else
                                                                 " (cpus_per_node)"))
        if self.node_cpus is not None:
            require(int(cpus.sum()) >= 1, "machine.node_cpus", list(self.node_cpus), "at least one node with CPUs")
        if self.node_mem_mib is not None:
            bad = [int(x) for x in mib if x != 0 and (x < 64 or x % 2)]
            require(not bad and int(mib.sum()) >= 64, "machine.node_mem_mib", list(self.node_mem_mib),
                    "0 (a CPU-only node) or an even number of MiB >= 64 per node, >= 64 MiB in all")
        else:
            require(self.mem_per_node_mib >= 64 and self.mem_per_node_mib % 2 == 0, "machine.mem_per_node_mib",
                    self.mem_per_node_mib, "an even number of MiB >= 64 (whole 2 MiB page units)")
        require(bool(np.all(self.node_pages < 2**31 // 2)), "machine.mem_per_node_mib", int(mib.max()),
                "< 4 TiB per node (int32 page counters)")
        if self.node_ids is not None:
            require(len(set(self.node_ids)) == self.n_nodes, "machine.node_ids", list(self.node_ids),
                    "distinct node numbers")
        d = np.asarray(self.distance)
        require(d.shape == (self.n_nodes, self.n_nodes), "machine.distance", f"shape {d.shape}",
                f"a {self.n_nodes}x{self.n_nodes} SLIT matrix")
        require(bool(np.all(np.diag(d) == 10)), "machine.distance", "diagonal " + str(np.diag(d).tolist()),
                "10 on the diagonal (SLIT local distance)")
        off = d[~np.eye(self.n_nodes, dtype=bool)]
        require(bool(np.all(off > 10)) and bool(np.all(off <= 254)), "machine.distance", off.tolist(),
                "in (10, 254] off the diagonal")
        require(10 <= self.lat_local_ns <= 4000, "machine.lat_local_ns", self.lat_local_ns, "a latency in [10, 4000] ns")
        require(self.lat_local_ns <= self.lat_remote_ns <= 4000, "machine.lat_remote_ns", self.lat_remote_ns,
                f"a latency in [lat_local_ns ({self.lat_local_ns}), 4000] ns")
        require(isinstance(self.groups, int) and self.groups >= 1 and self.n_nodes % self.groups == 0,
                "machine.groups", self.groups, f"an integer >= 1 dividing n_nodes ({self.n_nodes})")
        if self.groups > 1:
            require(self.lat_group_ns is not None and self.lat_remote_ns <= self.lat_group_ns <= 4000,
                    "machine.lat_group_ns", self.lat_group_ns, f"a latency in [lat_remote_ns ({self.lat_remote_ns}), "
                    "4000] ns with groups > 1")
            require(self.link_group_gbs is not None and 0.05 <= self.link_group_gbs <= 10000, "machine.link_group_gbs",
                    self.link_group_gbs, "a bandwidth in [0.05, 10000] GB/s with groups > 1")
        if self.latency_ns is not None:
            lat = np.asarray(self.latency_ns, dtype=np.float64)
            require(lat.shape == (self.n_nodes, self.n_nodes), "machine.latency_ns", f"shape {lat.shape}",
                    f"a {self.n_nodes}x{self.n_nodes} matrix")
        lat = self.latency_matrix()
        if self.latency_ns is None:
            require(bool(lat.max() <= 4000), "machine.lat_remote_ns", self.lat_remote_ns,
                    f"a latency that keeps every SLIT distance's latency <= 4000 ns (SLIT distance "
                    f"{int(d[np.unravel_index(lat.argmax(), lat.shape)])} gives {lat.max():.0f} ns)")
        require(bool(np.all((lat >= 10) & (lat <= 4000))), "machine.latency_ns", lat.round(1).tolist(),
                "latencies in [10, 4000] ns")
        require(1 <= self.core_mlp <= 32, "machine.core_mlp", self.core_mlp, "in [1, 32] line misses per core")
        require(1 <= self.socket_mlp <= 256, "machine.socket_mlp", self.socket_mlp, "in [1, 256] line misses per node")
        require(0.5 <= self.node_bw_gbs <= 10000, "machine.node_bw_gbs", self.node_bw_gbs, "a bandwidth in [0.5, 10000] GB/s")
        require(0.05 <= self.link_bw_gbs <= 10000, "machine.link_bw_gbs", self.link_bw_gbs,
                "a bandwidth in [0.05, 10000] GB/s")
        if self.link_matrix_gbs is not None:
            lk = np.asarray(self.link_matrix_gbs, dtype=np.float64)
            require(lk.shape == (self.n_nodes, self.n_nodes), "machine.link_matrix_gbs", f"shape {lk.shape}",
                    f"a {self.n_nodes}x{self.n_nodes} matrix")
            off_l = lk[~np.eye(self.n_nodes, dtype=bool)]
            require(bool(np.all((off_l >= 0.05) & (off_l <= 10000))), "machine.link_matrix_gbs", off_l.tolist(),
                    "bandwidths in [0.05, 10000] GB/s off the diagonal")
        require(1.0 <= self.bzero_traffic <= 2.0, "machine.bzero_traffic", self.bzero_traffic,
                "in [1, 2] DRAM lines per line written (2 = read for ownership + writeback, 1 = non-temporal)")
        return self


def _flat(n: int, remote: int) -> tuple:
    return tuple(tuple(10 if i == j else remote for j in range(n)) for i in range(n))


# Opteron 61xx (Magny-Cours) two sockets, two dies each: SLIT 16 to the sibling die / one-hop
# node and 22 to the diagonal (two-hop) node, as its BIOS reports.
_OPTERON4 = ((10, 16, 16, 22), (16, 10, 22, 16), (16, 22, 10, 16), (22, 16, 16, 10))

PRESETS: dict[str, Machine] = {}


def _add(m: Machine) -> None:
    PRESETS[m.name] = m.validate()


# Each preset's physics (latencies, miss slots, capacities, bzero_traffic) is the calibration fit
# against the published baseline runs of its box (calibration.py; docs/model.md lists the datasheet
# priors beside the fitted values and explains the far ones).
_add(Machine(
    name="2node_24cpu", n_nodes=2, cpus_per_node=12, threads_per_core=2, mem_per_node_mib=8192,
    distance=_flat(2, 20), lat_local_ns=70.0, lat_remote_ns=112.5, core_mlp=10.0, socket_mlp=13.33,
    node_bw_gbs=30.0, link_bw_gbs=12.8, bzero_traffic=2.0,
    description="M1: 2 sockets x 6 cores x 2 SMT (Westmere-EP class, e.g. Xeon X5650), 16 GiB, SLIT 10/20",
    sources="Westmere-EP: 10 line fill buffers per core, 3 x DDR3-1333 per socket (32 GB/s peak), QPI 6.4 GT/s "
            "(12.8 GB/s per direction), ~70 ns local idle latency; fitted to the March 2012 baseline runs",
))
_M3 = dict(n_nodes=2, mem_per_node_mib=12288, distance=_flat(2, 21), lat_local_ns=70.0, lat_remote_ns=118.0,
           core_mlp=3.56, socket_mlp=14.46, node_bw_gbs=32.71, link_bw_gbs=12.8, bzero_traffic=1.0,
           sources="2 x 6-core Intel (Westmere-EP / Sandy Bridge-EP class), 24 GB, SLIT 10/21; fitted to the "
                   "November 2012 baseline runs with SMT off and on (one set of numbers for both)")
_add(Machine(name="2node_12core", cpus_per_node=6, threads_per_core=1,
             description="M3: 2 sockets x 6 cores, SMT off, 24 GB, SLIT 10/21", **_M3))
_add(Machine(name="2node_12core_smt", cpus_per_node=12, threads_per_core=2,
             description="M3 with SMT on: 2 sockets x 6 cores x 2 SMT, 24 GB, SLIT 10/21", **_M3))
_add(Machine(
    name="4node_32cpu", n_nodes=4, cpus_per_node=8, threads_per_core=1, mem_per_node_mib=16384,
    distance=_OPTERON4, lat_local_ns=100.0, lat_remote_ns=129.6, core_mlp=10.3, socket_mlp=30.5,
    node_bw_gbs=18.07, link_bw_gbs=3.5, bzero_traffic=1.0,
    description="M4: 2 x Opteron 6134 (Magny-Cours, one 8-core die per node), 64 GiB, SLIT 10/16/22",
    sources="Magny-Cours: 2 x DDR3-1333 per die (21.3 GB/s peak), HyperTransport 3 links, ~100 ns local idle "
            "latency; fitted to the November 2012 baseline runs",
))
_add(Machine(
    name="4node_48cpu", n_nodes=4, cpus_per_node=12, threads_per_core=1, mem_per_node_mib=16384,
    distance=_OPTERON4, lat_local_ns=100.0, lat_remote_ns=129.6, core_mlp=10.3, socket_mlp=30.5,
    node_bw_gbs=18.07, link_bw_gbs=3.5, bzero_traffic=1.0,
    description="2 x Opteron 6172 (12 cores per die), 64 GiB, SLIT 10/16/22",
    sources="no published baseline: the memory system of 4node_32cpu (same platform), 12 cores per die",
))
_add(Machine(
    name="8node_64cpu", n_nodes=8, cpus_per_node=8, threads_per_core=1, mem_per_node_mib=40960,
    distance=_flat(8, 20), lat_local_ns=130.0, lat_remote_ns=587.0, core_mlp=6.7, socket_mlp=7.9,
    node_bw_gbs=13.8, link_bw_gbs=1.09, bzero_traffic=2.0, groups=2, lat_group_ns=1306.0, link_group_gbs=0.895,
    description="M6: 8 sockets x 8 cores (Westmere-EX, e.g. Xeon E7-8837), 320 GiB, flat SLIT 10/20, two 4-socket halves",
    sources="Westmere-EX: 4 x DDR3-1066 per socket through memory buffers, QPI 6.4 GT/s, ~130 ns local idle "
            "latency; the published runs show two 4-node halves behind the flat SLIT (docs/model.md); "
            "effective loaded numbers fitted to the October 2012 baseline runs",
))


def get_machine(name: str) -> Machine:
    if name not in PRESETS:
        raise ConfigError(f"machine={name!r}: must be one of {sorted(PRESETS)}")
    return PRESETS[name]
