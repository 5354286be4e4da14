"""Frozen static configuration: everything that decides array shapes (capacities).

Two configurations with equal ``Static`` share one compiled program; everything else is a traced
value in ``Params``. Capacities that depend on knob values (scan window, migration window,
accesses per tick) are rounded up to powers of two so that sweeping a knob stays in one bucket.
"""
from __future__ import annotations

from dataclasses import dataclass

UNIT_2M = 512  # 4 KiB pages per 2 MiB unit
UNIT_4K = 1


@dataclass(frozen=True)
class Static:
    n_nodes: int
    n_cpus: int
    n_tasks: int
    n_mms: int
    n_units: int
    unit_pages: int  # 4 KiB pages per page unit: 512 (2 MiB) or 1 (4 KiB)
    pte_faults: bool  # 4 KiB units with knuma_scand/pmd=0: ptes are armed and fault one by one
    tick_ns: int
    units_per_tick: int  # A: most page units one thread can begin writing in one tick
    scan_pmds_per_tick: int  # W: most pmds knuma_scand walks in one tick
    migrate_window: int  # entries knuma_migrated looks at per source list per batch
    ring_capacity: int  # entries per (destination, source) queue ring
    report_ticks: int  # ticks per time-series row
    n_reports: int  # rows in the whole run
    check_invariants: bool = False
    task_scan_units: int = 8  # most units one task-context scan covers (upstream policies)
    policies: tuple = (0, 1)  # engine policies present in the bucket: only their phases are compiled

    # Capacities: array sizes a configuration needs at least; a larger one changes no result
    # (tests/test_engine_properties.py: alone == next to a neighbour with larger capacities).
    CAPACITIES = ("units_per_tick", "scan_pmds_per_tick", "migrate_window", "task_scan_units")

    def covers(self, need: "Static") -> str | None:
        """None when a batch compiled for ``self`` can run configurations that need ``need``: the
        same shapes, capacities at least as large, and their policies compiled in; else the first
        field that differs."""
        for f in self.__dataclass_fields__:
            a, b = getattr(self, f), getattr(need, f)
            if f in self.CAPACITIES:
                if a < b:
                    return f"{f}: {a} < {b}"
            elif f == "policies":
                if not set(b) <= set(a):
                    return f"policies: {a} lacks {sorted(set(b) - set(a))}"
            elif a != b:
                return f"{f}: {a} != {b}"
        return None

    # ---- derived shapes ------------------------------------------------------------------
    @property
    def units_per_pmd(self) -> int:
        return 512 // self.unit_pages

    @property
    def n_pmds(self) -> int:
        return self.n_units // self.units_per_pmd

    @property
    def n_rings(self) -> int:
        return self.n_nodes * max(1, self.n_nodes - 1)

    @property
    def n_ticks(self) -> int:
        return self.report_ticks * self.n_reports

    @property
    def access_entries(self) -> int:
        return self.n_tasks * self.units_per_tick

    @property
    def access_compact(self) -> int:
        """Entries of the access phase's compact path (``mm/memory.access``): the touched candidates
        that are absent or armed. A steady tick has a few per configuration; a tick with more (a
        burst of first touches, a freshly armed pte range) takes the whole-array path instead."""
        return min(self.access_entries, pow2_at_least(self.n_tasks, 16))

    @property
    def fault_events(self) -> int:
        """Distinct hinting-fault keys (pmds, or units in pte mode) one tick can take."""
        if self.unit_pages == UNIT_4K and not self.pte_faults:
            return self.n_tasks * (self.units_per_tick // 512 + 2)
        return self.access_entries

    @property
    def units_per_fault(self) -> int:
        """Page units one fault event covers: a pmd fault in 4 KiB pmd mode walks 512 ptes."""
        return 512 if (self.unit_pages == UNIT_4K and not self.pte_faults) else 1

    @property
    def tick_s(self) -> float:
        return self.tick_ns * 1e-9


def pow2_at_least(x: int, floor: int = 1) -> int:
    x = max(int(x), int(floor), 1)
    return 1 << (x - 1).bit_length()
