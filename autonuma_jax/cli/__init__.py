"""The command-line layer: hydra configs, sweeps, wandb logging, results files.

This package is the only place that imports hydra, omegaconf, wandb and submitit; the simulation
core never imports it. Importing ``autonuma_jax.cli`` itself is cheap: hydra is loaded by
``autonuma_jax.cli.app`` only.

- ``app``: ``@hydra.main`` entry point (console script ``autonuma-sim``, ``python -m autonuma_jax``);
- ``schema``: structured config schemas registered in hydra's ConfigStore;
- ``build``: composed config -> core ``RunConfig``s (in-process sweep expansion);
- ``job``: validate, simulate in batches, write results / plots, log to wandb;
- ``results``: results.parquet / timeseries.parquet, atomic and no-clobber;
- ``wandb_log``: the wandb run of one job (offline by default, never fatal);
- ``progress``: a progress bar with ETA on a terminal, periodic lines otherwise.
"""
