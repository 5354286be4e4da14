"""autonuma-jax: a batch simulator of Linux NUMA balancing (AutoNUMA24 and its baselines) in JAX.

The core (everything but ``autonuma_jax.cli``, the analysis layer ``autonuma_jax.analysis`` and
``report``) imports only jax and numpy; ``validate`` and ``analysis.stats`` need nothing more
(matplotlib for plots), so the matrix runs on a bare GPU box.

``simulate(cfgs)`` runs configurations; ``results_frame`` / ``timeseries_frame`` turn its results
into pandas tables (pandas needed for those two only).
"""
from typing import TYPE_CHECKING

from .config import POLICIES, RunConfig, SimConfig
from .errors import ConfigError
from .frames import results_frame, timeseries_frame
from .knobs import Knobs, with_overrides
from .machine import PRESETS as MACHINES, Machine, get_machine
from .topology import load as machine_from_file
from .progress import ProgressRecord
from .simulate import Bucket, Result
from .workloads import BENCHMARKS, WORKLOADS, make_benchmark, make_workload

if TYPE_CHECKING:
    # Type checkers see the function (its signature and return type: list[Result]) ...
    from .simulate import simulate as simulate
else:
    # ... while at run time the attribute stays the module, which is callable
    # (simulate._CallableModule): an.simulate(cfgs) calls the function, and
    # `import autonuma_jax.simulate as m` gives the module, not the function it used to be shadowed by.
    from . import simulate

__all__ = ["POLICIES", "RunConfig", "SimConfig", "ConfigError", "Knobs", "with_overrides", "MACHINES", "Machine", "machine_from_file",
           "get_machine", "Bucket", "Result", "simulate", "ProgressRecord", "results_frame", "timeseries_frame",
           "BENCHMARKS", "WORKLOADS", "make_benchmark", "make_workload"]
__version__ = "0.1.0"
