"""The published baseline runs the machine presets are calibrated against.

Runs of the autonuma-benchmark programs with *no* NUMA balancing policy on the real 2012 machines:
the stock kernel (``none``), the benchmark's own hard binding (``hard_bind``) and its inverse
binding (``inverse_bind``). No balancing policy runs in them, so they test only the physical side
of the simulator (latencies, miss slots, memory-controller and link capacity, SMT, scheduler
spreading, first touch): one set of physical numbers per machine, nothing per workload or policy.
Published *policy* results on the same machines are deliberately not here: they are what the
simulator must predict, never what it is fitted to.

Seconds are wall-clock (``/usr/bin/time -f %e`` of the whole program), lower is better. Each row
names the machine preset that models the box, the benchmark build its date implies
(``workloads.BUILDS``) and the posting it comes from (linux-mm / LKML Message-ID).

- M1, 2 sockets x 6 cores x 2 SMT (Westmere-EP class), 8 GiB per node, kernel 3.2/3.3-rc, March
  2012 (AutoNUMA alpha6 thread; the author: "not a single time it deviates more than 10sec from the
  average"). The THREAD_ALLOC build of that time did not force the same node.
- M3, 2 sockets x 6 cores, 24 GB, kernel 3.7.0-rc3, November 2012, averages of several runs
  (min/max within 2 %), SMT off (12 CPUs) and on (24 CPUs).
- M4, 4-node AMD Opteron (Magny-Cours), 32 cores, 64 GB, v3.7-rc, November 2012, ``perf stat
  --repeat 3``. No inverse-bind runs. On 4 nodes the hard bind binds each numa01 process to a
  2-node half, so it is not a perfect placement there.
- M6, 8 sockets x 8 cores, 320 GB, SMT off, flat SLIT 10/20, kernel 3.6, October 2012, averages
  of 5 iterations with wide min-max ranges (numa01 hard bind 865-1826 s): +-25 % bands.

Physical facts these numbers carry (``docs/model.md`` works them out): numa01 on M1 under hard
bind writes 12 threads x 51 passes x 3 GiB = 1836 GiB per node in 196 s, about 9.4 GiB/s per node;
on M4 numa02 under hard bind writes 800 GiB in 14.9 s over four nodes, about 13.4 GiB/s per node.
A different 4-node box (Message-ID 20130731173513.GA12770@linux.vnet.ibm.com, ``perf bench numa``):
one thread streams 3.341 GB/s from local RAM and 1.815 GB/s from remote RAM.
"""
from __future__ import annotations

from dataclasses import dataclass

POLICIES = ("none", "hard_bind", "inverse_bind")


@dataclass(frozen=True)
class Box:
    """One real machine of the published runs."""
    key: str  # M1, M3, M4, M6
    preset: str  # the autonuma_jax.machine preset that models it
    build: str  # the benchmark build its runs' date implies (workloads.BUILDS)
    date: str
    kernel: str
    message_id: str
    description: str


@dataclass(frozen=True)
class Row:
    machine: str  # Box.key (M3 with SMT off and on are two presets of one box)
    preset: str
    benchmark: str
    none_s: float | None
    hard_bind_s: float | None
    inverse_bind_s: float | None
    message_id: str
    # a published figure the fit leaves out, and why (it is still reported): "" = none
    unfitted: tuple = ()
    why: str = ""
    # another build the run may have used (validate also runs the unbound policy under it)
    alt_build: str = ""

    def seconds(self, policy: str) -> float | None:
        return getattr(self, f"{policy}_s")


_M1 = "20120321124937.GX24602@redhat.com"
_M3 = "20121105171106.GA25353@linux.vnet.ibm.com"
_M4 = "20121112184833.GA17503@gmail.com"
_M6 = "20121013184019.GA3837@linux.vnet.ibm.com"

MACHINES = {
    "M1": Box("M1", "2node_24cpu", "2012-03", "2012-03", "3.2/3.3-rc", _M1,
                  "2 sockets x 6 cores x 2 SMT (Westmere-EP class), 2 x 8 GiB"),
    "M3": Box("M3", "2node_12core", "latest", "2012-11", "3.7.0-rc3", _M3, "2 sockets x 6 cores, SMT off, 24 GB"),
    "M3smt": Box("M3smt", "2node_12core_smt", "latest", "2012-11", "3.7.0-rc3", _M3,
                     "2 sockets x 6 cores, SMT on, 24 GB"),
    "M4": Box("M4", "4node_32cpu", "latest", "2012-11", "3.7-rc", _M4, "4-node Opteron (Magny-Cours), 32 cores, 64 GB"),
    "M6": Box("M6", "8node_64cpu", "latest", "2012-10", "3.6", _M6, "8 sockets x 8 cores, 320 GB, SMT off"),
}

ROWS = (
    Row("M1", "2node_24cpu", "numa01", 305.36, 196.07, 378.34, _M1),
    Row("M1", "2node_24cpu", "numa01_THREAD_ALLOC", 491.0, 321.0, 623.0, _M1),
    Row("M1", "2node_24cpu", "numa02", 64.0, 42.0, 81.0, _M1, unfitted=("none/hard_bind",),
        why="which numa02 source the March 2012 runs used is not stated: the January 2012 one (split first "
            "touch, which the date implies) or a later one (all memory on one node)", alt_build="latest"),
    Row("M3", "2node_12core", "numa01", 121.53, 80.96, 145.97, _M3),
    Row("M3", "2node_12core", "numa01_THREAD_ALLOC", 397.47, 264.18, 476.53, _M3),
    Row("M3", "2node_12core", "numa02", 53.15, 35.25, 63.54, _M3),
    Row("M3", "2node_12core", "numa02_SMT", 61.33, 43.22, 77.31, _M3),
    Row("M3smt", "2node_12core_smt", "numa01", 243.68, 169.38, 299.71, _M3),
    Row("M3smt", "2node_12core_smt", "numa01_THREAD_ALLOC", 401.5, 278.75, 493.54, _M3),
    Row("M3smt", "2node_12core_smt", "numa02", 53.19, 36.82, 66.09, _M3),
    Row("M3smt", "2node_12core_smt", "numa02_SMT", 53.35, 35.24, 63.52, _M3),
    Row("M4", "4node_32cpu", "numa01", 340.3, 166.6, None, _M4),
    Row("M4", "4node_32cpu", "numa01_THREAD_ALLOC", 425.1, 200.56, None, _M4),
    Row("M4", "4node_32cpu", "numa02", 56.1, 14.9, None, _M4),
    Row("M4", "4node_32cpu", "numa02_SMT", 56.1, 14.6, None, _M4),
    Row("M6", "8node_64cpu", "numa01", 1793.9, 1334.85, 3345.12, _M6),
    Row("M6", "8node_64cpu", "numa01_THREAD_ALLOC", 1214.32, 825.63, 2186.33, _M6),
    Row("M6", "8node_64cpu", "numa02", 136.88, 25.97, 345.59, _M6),
    Row("M6", "8node_64cpu", "numa02_SMT", 186.85, 33.57, 296.44, _M6),
)

# Calibration targets (issue "fidelity"): relative error allowed on the absolute hard_bind runtime
# and on the none / hard_bind and inverse_bind / hard_bind ratios, by number of nodes.
TOLERANCE = {2: 0.10, 4: 0.15, 8: 0.25}


def rows_for(preset: str) -> list[Row]:
    return [r for r in ROWS if r.preset == preset]


def machine_for(preset: str) -> Box | None:
    return next((m for m in MACHINES.values() if m.preset == preset), None)


def presets() -> list[str]:
    return list(dict.fromkeys(r.preset for r in ROWS))


# Datasheet-class priors of each preset's memory system, with their sources: what the calibration
# starts from and reports the fitted values against (docs/model.md explains the far ones).
_WSM_EP = {
    "lat_local_ns": (70.0, "Westmere-EP idle local latency ~65-70 ns (published MLC-class figures)"),
    "lat_remote_ns": (110.0, "one QPI hop ~105-110 ns idle"),
    "core_mlp": (10.0, "10 line fill buffers per Nehalem/Westmere core"),
    "socket_mlp": (16.0, "global queue: 32 entries for reads / RFOs but 16 for writebacks per socket (Nehalem/"
                         "Westmere uncore); a store stream needs one of each per line"),
    "node_bw_gbs": (25.0, "3 x DDR3-1333 = 32 GB/s peak per socket, ~78 % sustained"),
    "link_bw_gbs": (12.8, "QPI 6.4 GT/s: 12.8 GB/s per direction"),
    "bzero_traffic": (2.0, "ordinary stores: each written line is read for ownership, then written back"),
}
PRIORS = {
    "2node_24cpu": _WSM_EP,
    "2node_12core": _WSM_EP,
    "2node_12core_smt": _WSM_EP,
    "4node_32cpu": {
        "lat_local_ns": (100.0, "Magny-Cours idle local latency ~100 ns (HT Assist probe filter on)"),
        "lat_remote_ns": (140.0, "one HyperTransport hop ~140 ns idle"),
        "core_mlp": (8.0, "8 miss address buffers per K10 core"),
        "socket_mlp": (24.0, "per-die system request queue"),
        "node_bw_gbs": (16.0, "2 x DDR3-1333 = 21.3 GB/s peak per die, ~75 % sustained"),
        "link_bw_gbs": (6.4, "HyperTransport 3, x8 at 6.4 GT/s: 6.4 GB/s per direction"),
        "bzero_traffic": (2.0, "ordinary stores: each written line is read for ownership, then written back"),
    },
    "8node_64cpu": {
        "lat_local_ns": (130.0, "Westmere-EX idle local latency ~130 ns (memory through scalable memory buffers)"),
        "lat_remote_ns": (200.0, "one QPI hop ~190-220 ns idle"),
        "core_mlp": (10.0, "10 line fill buffers per Westmere core"),
        "socket_mlp": (32.0, "per-socket global queue"),
        "node_bw_gbs": (25.0, "4 x DDR3-1066 through SMBs, ~34 GB/s peak per socket, ~75 % sustained"),
        "link_bw_gbs": (12.8, "QPI 6.4 GT/s: 12.8 GB/s per direction"),
        "bzero_traffic": (2.0, "ordinary stores: each written line is read for ownership, then written back"),
    },
}
