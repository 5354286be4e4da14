"""Workload definitions: processes x threads x memory regions with an access pattern."""
from .base import Process, Thread, Workload
from .autonuma_benchmark import BENCHMARKS, VARIANTS, make_benchmark, numa01, numa02

__all__ = ["Process", "Thread", "Workload", "BENCHMARKS", "VARIANTS", "make_benchmark", "numa01", "numa02"]
