"""Will a bucket fit? An estimate of a compiled batch's memory, checked before anything is built.

A bucket holds, per configuration, its state (the per-page-unit arrays, the knuma_migrated queue
rings - usually the largest part: N(N-1) rings x capacity x 4 bytes - and the small per-task and
per-node arrays), the time-series rows of a chunk, and the temporaries of one tick (the [threads x
candidates] arrays of the access phase, the fault events expanded to the units they cover). The
state is double-buffered while a chunk runs. ``check`` compares the estimate with the memory this
process may use (the cgroup limit, e.g. a SLURM ``--mem``, and what the host has available) and
with the device's, and refuses with one line that gives both numbers and what to change.

Estimates are deliberately on the high side (x ``SAFETY``); the checks can be switched off with
``AUTONUMA_JAX_NO_MEMORY_CHECK=1``.
"""
from __future__ import annotations

import os

from .errors import ConfigError
from .static import Static

SAFETY = 1.5


def state_bytes(s: Static) -> int:
    U, T, M, N, C = s.n_units, s.n_tasks, s.n_mms, s.n_nodes, s.n_cpus
    pages = U * (1 + 1 + 1 + 4 + (1 if s.pte_faults else 0)) + s.n_pmds
    rings = s.n_rings * s.ring_capacity * 4
    tasks = T * (4 * 16 + 4 * N) + T * (4 * 2 * N * 2 + 64)  # task_autonuma + the upstream per-task data
    mms = M * (4 * N * 3 + 64)
    small = 4 * (N * N * 4 + C * 4 + 256)
    return pages + rings + tasks + mms + small


def rows_bytes(s: Static, reports: int) -> int:
    per_row = 4 * (32 + s.n_mms * s.n_nodes + 2 * s.n_tasks + 4 * s.n_nodes)
    return per_row * reports


def tick_bytes(s: Static) -> int:
    """Temporaries of one tick: ~60 [T, A] arrays of 4 bytes in the access phase, the fault events
    expanded to their units, the scan window and the migration batch."""
    ta = s.n_tasks * s.units_per_tick * (60 * 4 + 4 * 2 * s.n_nodes)
    faults = s.fault_events * s.units_per_fault * 40
    scan = s.scan_pmds_per_tick * s.units_per_pmd * 24
    migrate = s.n_rings * s.migrate_window * 16
    return ta + faults + scan + migrate


def estimate(s: Static, batch: int, reports_per_chunk: int) -> int:
    """Bytes a compiled batch of ``batch`` configurations needs (state twice, rows, one tick)."""
    per = 2 * state_bytes(s) + rows_bytes(s, min(reports_per_chunk, s.n_reports)) + tick_bytes(s)
    return int(SAFETY * per * batch)


def host_available() -> int | None:
    """Bytes this process may still allocate: the tightest of the cgroup limit (v2 or v1, minus
    what the cgroup uses) and MemAvailable; None when nothing can be read."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for lim, use in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                     ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(lim) as f:
                v = f.read().strip()
            if v == "max":
                continue
            n = int(v)
            if n >= 1 << 60:  # "unlimited" in cgroup v1
                continue
            u = 0
            try:
                with open(use) as f:
                    u = int(f.read().strip())
            except (OSError, ValueError):
                pass
            limits.append(max(0, n - u))
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def device_available() -> tuple[int | None, str]:
    """(bytes, device kind) of the first local accelerator; (None, 'cpu') on the CPU backend."""
    try:
        import jax
        d = jax.local_devices()[0]
        if d.platform == "cpu":
            return None, "cpu"
        stats = d.memory_stats() or {}
        lim = stats.get("bytes_limit")
        used = stats.get("bytes_in_use", 0)
        return (int(lim - used) if lim else None), d.device_kind
    except Exception:  # noqa: BLE001 - no device information is not an error
        return None, "unknown"


def _gib(x: int) -> str:
    return f"{x / 2**30:.1f} GiB"


def check(s: Static, batch: int, reports_per_chunk: int = 10, devices: int = 1, what: str = "") -> None:
    """Raise one ConfigError line when the bucket cannot fit in this process's memory or, with the
    batch sharded over ``devices`` accelerators, in one device's."""
    if os.environ.get("AUTONUMA_JAX_NO_MEMORY_CHECK") == "1":
        return
    need = estimate(s, batch, reports_per_chunk)
    per_cfg = need // max(batch, 1)
    big = ("the knuma_migrated queue rings" if s.n_rings * s.ring_capacity * 4 > s.n_units * 8
           else "the page-unit arrays")
    hint = (f"{what}needs ~{_gib(need)} ({_gib(per_cfg)} per configuration, {s.n_units:,} page units; most of it "
            f"{big}); use fewer configurations per batch (sim.batch_size), a smaller workload, "
            f"sim.page_unit=2M, or a machine with more memory")
    host = host_available()
    if host is not None and need > host and device_available()[0] is None:  # on the CPU backend
        raise ConfigError(f"memory: this batch {hint} - this process may use {_gib(host)}")
    dev, kind = device_available()
    per_dev = estimate(s, -(-batch // max(devices, 1)), reports_per_chunk)
    if dev is not None and per_dev > dev:
        raise ConfigError(f"memory: this batch {hint} - {_gib(per_dev)} on each device, and the device ({kind}) "
                          f"has {_gib(dev)} free")
