"""Progress over compiled chunks: a bar with ETA on a terminal, plain periodic lines otherwise.

Used by ``simulate(progress=...)`` (plain lines on stderr, or a callable that receives a
``ProgressRecord``) and by the command line (``autonuma_jax.cli.progress`` re-exports it). Pure
Python (``sys``, ``time``): it lives in the core so that the Python API has the same progress
report as the CLI without importing the CLI layer.

A *chunk* is one compiled call of a batch (``reports_per_chunk`` report intervals); control comes
back to Python between chunks, so that is the grain of every report. The ETA is the mean wall time
of the chunks after each batch's first one (that one includes the compile) times the chunks left;
"?" until such a chunk has run.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, TextIO

Mode = Literal["auto", "bar", "lines", "off"]


class _Logger(Protocol):
    def info(self, msg: str) -> Any: ...


def fmt_s(s: float) -> str:
    """Seconds as ``42s``, ``3m05s``, ``2h07m``; ``?`` for NaN or infinity (no estimate)."""
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


_fmt_s = fmt_s  # the name the CLI module used


@dataclass(frozen=True)
class ProgressRecord:
    """Where a ``simulate`` call stands: what a ``progress=`` callable receives after every chunk,
    and once more at the end with ``final=True``.

    Attributes:
        done_chunks: compiled chunks done (or made unnecessary by an early stop), 0..total_chunks.
        total_chunks: chunks of the whole call, over every batch.
        n_configs: configurations simulated by the call.
        batch: 1-based index of the batch (shape bucket) the last chunk belonged to; 0 before any.
        n_batches: batches of the call (one per distinct static shape); 0 when the caller did not
            say (the CLI).
        sim_s: simulated seconds reached by the current batch (every configuration of a batch
            advances together); NaN before the first chunk.
        batch_sim_s: simulated seconds the current batch runs at most (its ``sim.duration_s``);
            NaN before the first chunk.
        elapsed_s: wall-clock seconds since the call started.
        eta_s: estimated wall-clock seconds left; NaN while there is no honest estimate (only
            compile-laden first chunks so far).
        final: the last record of the call.
        stopped: (with ``final``) the run stopped early (a preempted CLI job), not complete.
    """
    done_chunks: int
    total_chunks: int
    n_configs: int
    batch: int
    n_batches: int
    sim_s: float
    batch_sim_s: float
    elapsed_s: float
    eta_s: float
    final: bool = False
    stopped: bool = False

    @property
    def fraction(self) -> float:
        """done_chunks / total_chunks, in [0, 1]."""
        return self.done_chunks / max(1, self.total_chunks)


class Progress:
    """``update(bucket)`` after every chunk; ``skip(n)`` for chunks an early stop made unnecessary;
    ``new_batch()`` before each batch; ``close()`` at the end.

    Args:
        total_chunks: chunks of the whole run (over every batch).
        n_configs: configurations, for the lines.
        mode: ``"bar"`` (one ``\\r``-rewritten line: terminals), ``"lines"`` (a plain line at most
            every ``interval_s``, and one at the end: logs, notebooks, pipes), ``"off"``, or
            ``"auto"``: ``bar`` when ``stream`` is a terminal, ``lines`` otherwise.
        interval_s: seconds between two lines in ``lines`` mode (0: a line after every chunk).
        stream: where lines go (default: ``sys.stdout``, the CLI's log stream).
        log: a ``logging.Logger`` that receives the lines instead of ``stream`` (``lines`` mode).
        callback: called with a ``ProgressRecord`` after every chunk and at ``close()``, whatever
            the mode (``mode="off"`` with a callback: the callback only).
        n_batches: batches of the run; when more than one, lines say which one is running.
        quiet_s: no line at all (periodic or final) before this many seconds have passed since the
            start, so that short runs stay silent (``simulate`` uses its interval here; the CLI 0:
            a line after the first chunk).
        t0: start time (``time.time()``) the elapsed time counts from (default: now).
    """

    def __init__(self, total_chunks: int, n_configs: int, mode: Mode = "auto", interval_s: float = 10.0,
                 stream: TextIO | None = None, log: _Logger | None = None,
                 callback: Callable[[ProgressRecord], object] | None = None, n_batches: int = 0,
                 quiet_s: float = 0.0, t0: float | None = None):
        self.total = max(1, total_chunks)
        self.done = 0
        self.n_configs = n_configs
        self.n_batches = n_batches
        self.batch = 0
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.interval_s = interval_s
        self.log = log
        self.callback = callback
        self.quiet_s = quiet_s
        self.t0 = time.time() if t0 is None else t0
        self.last_line = 0.0
        self.steady_chunks = 0
        self.steady_s = 0.0
        self.sim_s = float("nan")
        self.batch_sim_s = float("nan")
        self._t_last = time.time()
        self._first_in_batch = True
        self._emitted_done = -1

    def new_batch(self) -> None:
        self._first_in_batch = True
        self._t_last = time.time()
        self.batch += 1

    def eta(self) -> float:
        left = self.total - self.done
        if left <= 0:
            return 0.0
        if self.steady_chunks:
            return left * self.steady_s / self.steady_chunks
        return float("nan")  # only compile-laden first chunks so far: no honest estimate yet

    def record(self, final: bool = False, stopped: bool = False) -> ProgressRecord:
        return ProgressRecord(done_chunks=self.done, total_chunks=self.total, n_configs=self.n_configs,
                              batch=self.batch, n_batches=self.n_batches, sim_s=self.sim_s,
                              batch_sim_s=self.batch_sim_s, elapsed_s=time.time() - self.t0, eta_s=self.eta(),
                              final=final, stopped=stopped)

    def update(self, bucket: Any = None) -> None:
        """One chunk done; ``bucket`` (a ``simulate.Bucket``) gives the simulated time reached."""
        now = time.time()
        if self._first_in_batch:
            self._first_in_batch = False
        else:
            self.steady_chunks += 1
            self.steady_s += now - self._t_last
        self._t_last = now
        self.done = min(self.total, self.done + 1)
        sim = ""
        if bucket is not None:
            st = bucket.static
            self.sim_s = bucket.reports_done * st.report_ticks * st.tick_s
            self.batch_sim_s = st.n_ticks * st.tick_s
            sim = f" sim {self.sim_s:.0f}/{self.batch_sim_s:.0f} s"
        if self.n_batches > 1:
            sim = f" batch {self.batch}/{self.n_batches}" + sim
        self._emit(sim)
        if self.callback is not None:
            self.callback(self.record())

    def skip(self, n: int) -> None:
        self.done = min(self.total, self.done + max(0, n))

    def _emit(self, extra: str = "", final: bool = False) -> None:
        elapsed = time.time() - self.t0
        frac = self.done / self.total
        if self.mode == "bar":
            width = 30
            fill = int(round(width * frac))
            line = (f"\r[{'#' * fill}{'.' * (width - fill)}] {100 * frac:5.1f}% chunk {self.done}/{self.total}"
                    f"{extra} | {fmt_s(elapsed)} elapsed, ETA {fmt_s(self.eta())}   ")
            self.stream.write(line)
            if final:
                self.stream.write("\n")
            self.stream.flush()
        elif self.mode == "lines":
            now = time.time()
            if now - self.t0 < self.quiet_s:
                return  # a short run says nothing at all
            if final and self._emitted_done == self.done:
                return  # the last chunk's line already said it
            if final or now - self.last_line >= self.interval_s:
                self.last_line = now
                self._emitted_done = self.done
                msg = (f"progress: {100 * frac:5.1f}% ({self.done}/{self.total} chunks, {self.n_configs} "
                       f"configurations){extra}, {fmt_s(elapsed)} elapsed, ETA {fmt_s(self.eta())}")
                if self.log is not None:
                    self.log.info(msg)
                else:
                    print(msg, file=self.stream, flush=True)

    def close(self, complete: bool = True) -> None:
        """The last line: 100 % when the run finished; where it stood when it stopped (preemption)."""
        if complete:
            self.done = self.total
            self._emit(final=True)
        else:
            self._emitted_done = -1  # always say where it stopped
            self._emit(" stopped (checkpointed)", final=True)
        if self.callback is not None:
            self.callback(self.record(final=True, stopped=not complete))


def chunks_of(n_reports: int, reports_per_chunk: int) -> int:
    """Compiled chunks ``Bucket.run`` takes for ``n_reports`` rows at ``reports_per_chunk`` a chunk."""
    k = max(1, min(reports_per_chunk, n_reports))
    return math.ceil(n_reports / k)
