#!/usr/bin/env python3
"""Expand hydra sweep overrides into a points file for slurm/array.sbatch: one sweep point per
line, its overrides separated by spaces, in the order hydra's basic sweeper runs them (so line
i+1 is what `-m` would run as hydra.job.num=i).

    python slurm/expand_sweep.py policy=autonuma24,numa_balancing 'seed=range(0,4)' > points.txt
    python slurm/expand_sweep.py --count policy=a,b seed=1,2,3        # prints 6

With hydra-core installed, the full override grammar is understood (range(), choice(), quoting,
+/~ prefixes); without it, only plain comma-separated lists are (`key=a,b,c`).
"""
from __future__ import annotations

import itertools
import sys


def _split_with_hydra(overrides: list[str]) -> list[list[str]]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, None)
    return [point for batch in batches for point in batch]


def _split_plain(overrides: list[str]) -> list[list[str]]:
    axes = []
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if not sep:
            raise SystemExit(f"expand_sweep: not an override: {ov!r}")
        axes.append([f"{key}={v}" for v in value.split(",")])
    return [list(p) for p in itertools.product(*axes)]


def expand(overrides: list[str]) -> list[list[str]]:
    try:
        import hydra  # noqa: F401
    except ImportError:
        return _split_plain(overrides)
    return _split_with_hydra(overrides)


def main(argv: list[str]) -> int:
    count = False
    if argv and argv[0] == "--count":
        count, argv = True, argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 0 if argv else 2
    points = expand(argv)
    for point in points:
        for ov in point:
            if any(c.isspace() for c in ov):
                raise SystemExit(f"expand_sweep: {ov!r} contains whitespace, which a points file "
                                 "cannot hold")
    if count:
        print(len(points))
    else:
        sys.stdout.write("".join(" ".join(p) + "\n" for p in points))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
