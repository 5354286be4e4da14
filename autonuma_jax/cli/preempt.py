"""Preemption: SIGUSR1 (SLURM's `--signal=USR1@...` before the time limit, or submitit) and SIGTERM
ask the running job to save a checkpoint at the end of the current chunk and stop.

Afterwards ``finish()`` hands the signal on: to the handler that was installed before ours (the
submitit launcher's, which requeues the job), else the process exits with status
``EXIT_PREEMPTED``; rerunning the same command in the same output folder (a requeued job does)
resumes from the checkpoint, with bit-identical results.
"""
from __future__ import annotations

import logging
import signal
import sys

EXIT_PREEMPTED = 3
log = logging.getLogger("autonuma_jax.cli")

_state = {"signum": None, "prev": {}}


def _handler(signum, frame):
    if _state["signum"] is None:
        log.warning(f"got {signal.Signals(signum).name}: saving a checkpoint at the end of this chunk, then stopping")
    _state["signum"] = signum


def install() -> None:
    _state["signum"] = None
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        try:
            prev = signal.signal(sig, _handler)
        except ValueError:  # not the main thread (e.g. inside some launchers): no preemption support
            return
        if prev is not _handler:
            _state["prev"][sig] = prev


def requested() -> bool:
    return _state["signum"] is not None


def finish() -> None:
    """After the checkpoint was saved: pass the signal on, or exit with EXIT_PREEMPTED."""
    signum = _state["signum"]
    prev = _state["prev"].get(signum)
    if callable(prev):
        log.warning("checkpoint saved; handing the signal to the launcher (requeue)")
        prev(signum, None)
    log.warning(f"checkpoint saved; exiting with status {EXIT_PREEMPTED}: rerun the same command with the same "
                f"output folder to resume")
    sys.exit(EXIT_PREEMPTED)
