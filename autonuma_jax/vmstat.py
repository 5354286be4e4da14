"""The kernel's NUMA counters (mm/vmstat.c, include/linux/vm_event_item.h) and what mmtests derives
from them.

Counted in the engine where the kernel counts them (``count_vm_numa_events``, added to the
interval and the whole-run counters alike):

- ``numa_pte_updates``: 4 KiB pages whose pte (or pmd) the scanner made NUMA-protecting
  (change_prot_numa; a huge pmd counts its 512 pages, as 3.13's change_pmd_range), only those not
  already armed; ``numa_huge_pte_updates``: huge pmds among them. Counted for knuma_scand
  (mm/autonuma.py) and task_numa_work (policies/upstream.py).
- ``numa_hint_faults``: hinting fault events (a pmd fault is one); ``numa_hint_faults_local``: those
  whose page was already on the faulting CPU's node (do_numa_page: page_nid == numa_node_id()).
- ``numa_pages_migrated``: 4 KiB pages migrated (knuma_migrated or migrate_misplaced_page).
- ``numa_hit`` / ``numa_miss`` / ``numa_local`` / ``numa_other`` (zone_statistics, every page
  allocated): hit = on the preferred node (the first allowed node of the zonelist the allocation
  started from), miss = a fallback elsewhere; local = on the node of the CPU allocating, other =
  elsewhere. Allocations are first touches and migration targets (a knuma_migrated daemon runs on
  its destination node: local hit; a fault migration is local when its destination is the
  faulting CPU's node). ``numa_foreign`` (counted on the preferred node of a miss) sums to
  ``numa_miss`` over the machine; ``numa_interleave`` is 0 (no workload here interleaves).
  Not counted [I]: khugepaged's collapse copies, page tables, the kernel's own allocations.

Which kernel had which counters (the dump and the summary give NaN / leave out the others): the
allocator's numa_hit..numa_other exist in every NUMA kernel; the NUMA-balancing counters came
with balancenuma (3.8) and stayed in mainline (``numa_huge_pte_updates`` from 3.13); the numa/core
tree carried the same foundation patches [I]; AutoNUMA24 added none (its counters are sysfs
files: ``/sys/kernel/mm/autonuma/knuma_scand/{full_scans,pages_scanned}``,
``/sys/kernel/mm/autonuma/knuma_migrated/pages_migrated``).
"""
from __future__ import annotations

import math

from .pytree import replace

# policy -> whether its kernel exported the NUMA-balancing vmstat counters
_BALANCING_VMSTAT = {"balancenuma": True, "numa_balancing": True, "sched_numa": True, "numa_core": True,
                     "autonuma24": False, "none": True, "hard_bind": True, "inverse_bind": True}
# baselines run on a mainline kernel with balancing off: the counters exist and stay 0

BALANCING_NAMES = ("numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
                   "numa_pages_migrated")
ALLOC_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other")
AUTONUMA_SYSFS = ("autonuma.knuma_scand.full_scans", "autonuma.knuma_scand.pages_scanned",
                  "autonuma.knuma_migrated.pages_migrated")
MMTESTS = ("mmtests_hint_local_pct", "mmtests_pte_updates_base", "mmtests_autonuma_cost")
KERNEL_COUNTERS = ALLOC_NAMES + BALANCING_NAMES + AUTONUMA_SYSFS + MMTESTS  # result columns


def count_vm_numa_events(state, **inc):
    """count_vm_numa_events(): add to this interval's and the whole run's counters."""
    acc = replace(state.acc, **{k: getattr(state.acc, k) + v for k, v in inc.items()})
    tot = replace(state.tot, **{k: getattr(state.tot, k) + v for k, v in inc.items()})
    return replace(state, acc=acc, tot=tot)


def has_balancing_vmstat(policy: str) -> bool:
    return _BALANCING_VMSTAT.get(policy, True)


def kernel_counters(tot: dict, policy: str, full_scans: int, pages_scanned: int, pages_migrated: int) -> dict:
    """Whole-run counters under the kernel's names (``tot``: the ``tot_*`` of a Result, without the
    prefix). Counters the policy's kernel did not have are NaN."""
    nan = float("nan")
    bal = has_balancing_vmstat(policy)
    out = {
        "numa_pte_updates": int(tot["numa_pte_updates"]) if bal else nan,
        "numa_huge_pte_updates": int(tot["numa_huge_pte_updates"]) if bal else nan,
        "numa_hint_faults": int(tot["hinting_faults"]) if bal else nan,
        "numa_hint_faults_local": int(tot["numa_hint_faults_local"]) if bal else nan,
        "numa_pages_migrated": int(pages_migrated) if bal else nan,
        "numa_hit": int(tot["numa_hit"]), "numa_miss": int(tot["numa_miss"]),
        "numa_foreign": int(tot["numa_miss"]), "numa_interleave": 0,
        "numa_local": int(tot["numa_local"]), "numa_other": int(tot["numa_other"]),
    }
    is_an = policy == "autonuma24"
    out["autonuma.knuma_scand.full_scans"] = int(full_scans) if is_an else nan
    out["autonuma.knuma_scand.pages_scanned"] = int(pages_scanned) if is_an else nan
    out["autonuma.knuma_migrated.pages_migrated"] = int(pages_migrated) if is_an else nan
    out.update(mmtests_figures(out))
    return out


def mmtests_figures(c: dict) -> dict:
    """What mmtests' vmstat compare report (MonitorMmtestsvmstat.pm) prints from the counters of a
    run (its before/after /proc/vmstat deltas; here the whole run's totals):

    - ``mmtests_hint_local_pct``, "NUMA hint local percent": numa_hint_faults_local * 100 /
      numa_hint_faults, and 100 when there were no hint faults (mmtests' own rule).
    - ``mmtests_pte_updates_base``, "NUMA PTE updates" (since 2019; the base pages alone):
      numa_pte_updates - 512 * numa_huge_pte_updates.
    - ``mmtests_autonuma_cost``, "AutoNUMA cost": ``autonuma_cost``.

    NaN where the policy's kernel had no such counters (AutoNUMA24: mmtests read nothing)."""
    nan = float("nan")

    def ok(*names):
        return all(isinstance(c.get(n), (int, float)) and not math.isnan(c[n]) for n in names)

    faults = c.get("numa_hint_faults")
    if ok("numa_hint_faults", "numa_hint_faults_local"):
        pct = 100.0 * c["numa_hint_faults_local"] / faults if faults else 100.0
    else:
        pct = nan
    base = (c["numa_pte_updates"] - 512 * c["numa_huge_pte_updates"]
            if ok("numa_pte_updates", "numa_huge_pte_updates") else nan)
    cost = autonuma_cost(c) if ok("numa_pte_updates", "numa_hint_faults", "numa_pages_migrated") else nan
    return {"mmtests_hint_local_pct": pct, "mmtests_pte_updates_base": base, "mmtests_autonuma_cost": cost}


# mmtests' AutoNUMA cost weights (MonitorMmtestsvmstat.pm, unchanged since October 2012): a pte
# update costs one x86-64 cache line's worth of work (56/8 = 7), a hinting fault 5000, a migrated
# page 7 + 12 (list operations and locks). Its source also defines a copy cost (7 + 4096/8 per
# page) that a stray ';' keeps out of the sum; mmtests' printed figures are without it, so ours are.
COST_PTE, COST_NUMA_HINT, COST_MIGRATE = 56 / 8, 5000, 56 / 8 + 12


def autonuma_cost(c: dict) -> float:
    """mmtests' "AutoNUMA cost": (7 * numa_pte_updates + 5000 * numa_hint_faults + 19 *
    numa_pages_migrated) / 1e6, in arbitrary units (not a percentage, not per second: a larger
    figure means more balancing work; old mmtests reports printed it with a stray '%')."""
    return (COST_PTE * c["numa_pte_updates"] + COST_NUMA_HINT * c["numa_hint_faults"]
            + COST_MIGRATE * c["numa_pages_migrated"]) / 1e6


def vmstat_text(counters: dict) -> str:
    """A /proc/vmstat-style dump ("name value" lines) of the counters the policy's kernel had;
    AutoNUMA24's sysfs counters follow as "path value" lines under their sysfs names."""
    lines = []
    for k in ALLOC_NAMES + BALANCING_NAMES:  # /proc/vmstat's order: zone statistics, then events
        v = counters.get(k)
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            lines.append(f"{k} {int(v)}")
    for k in AUTONUMA_SYSFS:
        v = counters.get(k)
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            lines.append(f"/sys/kernel/mm/{k.replace('.', '/')} {int(v)}")
    return "\n".join(lines) + "\n"
