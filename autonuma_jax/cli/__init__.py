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
import logging as _logging

# On a machine without a TPU, jax logs "Unable to initialize backend 'tpu': ... libtpu.so ..." at
# INFO the first time it looks for devices, and hydra's job logging shows INFO, so every run began
# with it: it is not news to anyone. The logger keeps WARNING and above (a GPU jax cannot use, for
# one). Set here, before jax or hydra is imported: hydra's logging setup leaves the levels of
# loggers its config does not name alone (disable_existing_loggers: false).
_logging.getLogger("jax._src.xla_bridge").setLevel(_logging.WARNING)
