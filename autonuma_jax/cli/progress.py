"""Progress over compiled chunks: a bar with ETA on a terminal, plain periodic lines otherwise."""
from __future__ import annotations

import sys
import time


def _fmt_s(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """``update(bucket)`` after every chunk; ``skip(n)`` for chunks an early stop made unnecessary.

    ETA: the mean wall time of the chunks after each batch's first one (that one includes the
    compile) times the chunks left; "?" until such a chunk has run.
    """

    def __init__(self, total_chunks: int, n_configs: int, mode: str = "auto", interval_s: float = 10.0,
                 stream=None, log=None):
        self.total = max(1, total_chunks)
        self.done = 0
        self.n_configs = n_configs
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self.interval_s = interval_s
        self.log = log
        self.t0 = time.time()
        self.last_line = 0.0
        self.steady_chunks = 0
        self.steady_s = 0.0
        self._t_last = self.t0
        self._first_in_batch = True
        self._emitted_done = -1

    def new_batch(self):
        self._first_in_batch = True
        self._t_last = time.time()

    def eta(self) -> float:
        left = self.total - self.done
        if left <= 0:
            return 0.0
        if self.steady_chunks:
            return left * self.steady_s / self.steady_chunks
        return float("nan")  # only compile-laden first chunks so far: no honest estimate yet

    def update(self, bucket=None):
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
            sim = f" sim {bucket.reports_done * st.report_ticks * st.tick_s:.0f}/{st.n_ticks * st.tick_s:.0f} s"
        self._emit(sim)

    def skip(self, n: int):
        self.done = min(self.total, self.done + max(0, n))

    def _emit(self, extra: str = "", final: bool = False):
        elapsed = time.time() - self.t0
        frac = self.done / self.total
        if self.mode == "bar":
            width = 30
            fill = int(round(width * frac))
            line = (f"\r[{'#' * fill}{'.' * (width - fill)}] {100 * frac:5.1f}% chunk {self.done}/{self.total}"
                    f"{extra} | {_fmt_s(elapsed)} elapsed, ETA {_fmt_s(self.eta())}   ")
            self.stream.write(line)
            if final:
                self.stream.write("\n")
            self.stream.flush()
        elif self.mode == "lines":
            now = time.time()
            if final and self._emitted_done == self.done:
                return  # the last chunk's line already said it
            if final or now - self.last_line >= self.interval_s:
                self.last_line = now
                self._emitted_done = self.done
                msg = (f"progress: {100 * frac:5.1f}% ({self.done}/{self.total} chunks, {self.n_configs} "
                       f"configurations){extra}, {_fmt_s(elapsed)} elapsed, ETA {_fmt_s(self.eta())}")
                if self.log is not None:
                    self.log.info(msg)
                else:
                    print(msg, file=self.stream, flush=True)

    def close(self, complete: bool = True):
        """The last line: 100 % when the job finished; where it stood when it stopped (preemption)."""
        if complete:
            self.done = self.total
            self._emit(final=True)
        else:
            self._emitted_done = -1  # always say where it stopped
            self._emit(" stopped (checkpointed)", final=True)
