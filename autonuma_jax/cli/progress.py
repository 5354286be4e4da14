"""Progress over compiled chunks: a bar with ETA on a terminal, plain periodic lines otherwise.

The class lives in the core (``autonuma_jax.progress``) since ``simulate(progress=...)`` reports
the same way and the core may not import the CLI layer; this module keeps the CLI's import path
(``cli/job.py``, the tests) and its defaults: lines on stdout, the first line after the first chunk.
"""
from __future__ import annotations

from ..progress import Progress, ProgressRecord, _fmt_s, fmt_s

__all__ = ["Progress", "ProgressRecord", "fmt_s", "_fmt_s"]
