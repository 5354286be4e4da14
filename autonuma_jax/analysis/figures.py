"""Shared frame of every figure: the Agg backend, distinct line styles, panels per cell, atomic save."""
from __future__ import annotations

import math
import os
import tempfile

from ..plots import pyplot  # noqa: F401  (re-exported: the one place matplotlib is configured)

LINESTYLES = ("-", "--", ":", "-.")


def style(i: int, n: int, plt) -> dict:
    """Colour and line style of the i-th of n curves, all distinct: tab10 up to 10, tab20 up to
    20, then tab20 colours x four line styles (80 distinct curves)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return {"color": cmap(i % cmap.N), "linestyle": LINESTYLES[(i // cmap.N) % len(LINESTYLES)]}


def grid(n: int, ncol_max: int = 3) -> tuple[int, int]:
    ncol = max(1, min(ncol_max, n))
    return math.ceil(n / ncol), ncol


def save(fig, path: str, dpi: int = 110) -> str:
    """Write the figure through a temporary file in the same folder, then rename it into place."""
    plt = pyplot()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".png", dir=d)
    os.close(fd)
    from ..checkpoint import default_mode
    os.chmod(tmp, default_mode())  # the umask's permissions, not mkstemp's 0600
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        plt.close(fig)
    return path


def safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)[:80]


def legend_below(fig, handles, labels, fontsize: int = 7) -> float:
    """A legend under the panels, as many columns as fit; returns the height it takes (figure fraction)."""
    if not labels:
        return 0.0
    longest = max(len(lb) for lb in labels)
    ncol = max(1, min(4, len(labels), 130 // max(1, longest)))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=fontsize)
    return 0.02 + 0.025 * math.ceil(len(labels) / ncol)
