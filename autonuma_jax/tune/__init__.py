"""Tuning: find the knobs that are best for a machine and a workload, and say how sure we are.

- ``space``: the searched knobs (ranges, log or linear scale, integers and flags) and the
  candidates (the defaults plus a Latin hypercube from the seed);
- ``objective``: what is minimised (runtime, time to converge, kernel CPU, or runtime plus a
  stated weight times kernel CPU), with projections for the short looks of early rungs;
- ``job``: successive halving per cell (machine x workload) over vmapped batches, then the
  evaluation on fresh seeds (the defaults and every cell's best, for the transfer table);
- ``store``: the job's records in one JSON file, its checkpoint between batches;
- ``evaluate``: the fresh-seed comparison with a paired confidence interval, and the transfer table.

Like the rest of the core this imports only jax and numpy (``cli/tune_app.py`` is the command
line; ``cli/tune_outputs.py`` writes the parquet, plots and wandb runs).

    from autonuma_jax.tune import SearchSpace, TuneSpec, tune
    space = SearchSpace.build({"autonuma.knuma_scand.pages_to_scan": {"lo": 4096, "hi": 262144}}, "autonuma24")
    records = tune(TuneSpec(machines=("2node_24cpu",), workloads=("numa02",), policy="autonuma24", space=space))
"""
from __future__ import annotations

from .evaluate import compare, fresh_seed_table, transfer_table
from .job import DEFAULT_RUNGS, FRESH_OFFSET, Rung, Stopped, Tuner, TuneSpec, cell_name
from .objective import OBJECTIVES, measure, workload_mib
from .space import Dimension, SearchSpace
from .store import Store


def tune(spec: TuneSpec, store: Store | None = None, **kw) -> list[dict]:
    """Validate ``spec`` (one-line ConfigError before any compile) and run it; returns the records
    (one per simulated run: stage, cell, rung, candidate, seed, knobs, summary metrics, objective)."""
    return Tuner(spec.validate(), store or Store(), **kw).run()


__all__ = ["tune", "TuneSpec", "Rung", "DEFAULT_RUNGS", "FRESH_OFFSET", "Tuner", "Stopped", "cell_name", "SearchSpace",
           "Dimension", "Store", "OBJECTIVES", "measure", "workload_mib", "compare", "fresh_seed_table",
           "transfer_table"]
