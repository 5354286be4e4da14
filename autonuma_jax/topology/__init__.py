"""A ``Machine`` from the files that describe a real one: ``numactl --hardware`` text, a copy of
``/sys/devices/system/node`` (with ``cpu/cpuN/topology`` when present) or an hwloc XML export.

Each reader returns a ``Topology`` (what the files say: node numbers, CPUs, memory, SLIT, SMT
siblings); ``to_machine`` turns it into a ``Machine`` whose memory-system physics (latencies,
miss slots, bandwidths), which no topology file gives, comes from a documented preset of the same
class and is marked uncalibrated until the user supplies measured numbers. ``load`` does both.
"""
from .build import load, physics_preset, to_machine
from .topo import Topology
from .numactl import parse_numactl
from .sysfs import read_sysfs
from .hwloc import parse_hwloc

__all__ = ["Topology", "load", "parse_hwloc", "parse_numactl", "physics_preset", "read_sysfs", "to_machine"]
