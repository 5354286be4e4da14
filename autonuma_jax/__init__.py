"""autonuma-jax: a batch simulator of Linux NUMA balancing (AutoNUMA24 and its baselines) in JAX.

The core (everything outside ``autonuma_jax.cli``) imports only jax and numpy.
"""
from .config import POLICIES, RunConfig, SimConfig
from .errors import ConfigError
from .knobs import Knobs, with_overrides
from .machine import PRESETS as MACHINES, Machine, get_machine
from .simulate import Bucket, Result, simulate
from .workloads import BENCHMARKS, WORKLOADS, make_benchmark, make_workload

__all__ = ["POLICIES", "RunConfig", "SimConfig", "ConfigError", "Knobs", "with_overrides", "MACHINES", "Machine",
           "get_machine", "Bucket", "Result", "simulate", "BENCHMARKS", "WORKLOADS", "make_benchmark",
           "make_workload"]
__version__ = "0.1.0"
