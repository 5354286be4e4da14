"""The compiled tick copies no page array: a read of a page array outside the loops that update
it in place, left unordered with their writes, makes XLA copy the whole array every tick (16 MB
per tick for ``pages.node`` at 64 GiB of 4 KiB units: the tick then grows with memory, not with
its events). The guard reads the optimised HLO of a few batched ticks."""
from __future__ import annotations

import re

import jax

from autonuma_jax import bench
from autonuma_jax.simulate import Bucket

from conftest import TINY2, mini


def _copies(text: str) -> list[tuple[str, list[int]]]:
    """The copy instructions the compiled program runs (a fusion whose root is a copy is a layout
    change inside one kernel, not a copy of a buffer: fused computations are skipped)."""
    out, fused = [], False
    for line in text.splitlines():
        if line and not line[0].isspace():  # a computation's header (or its closing brace)
            fused = line.startswith(("%fused", "fused"))
            continue
        m = re.search(r"= (\w+)\[([\d,]*)\]\S* copy\(", line)
        if m and not fused:
            out.append((m.group(0), [int(d) for d in m.group(2).split(",") if d]))
    return out


def test_a_tick_copies_no_page_array_or_ring():
    # 4 KiB units: 65536 page units per configuration, far more than any per-thread or per-node array
    b = Bucket.build([mini(TINY2, "numa01", seed=s, duration_s=1.0, page_unit="4K", size_mib=128) for s in (0, 1)])
    b.init()
    st = b.static
    # donated, as every chunk is: the loop then updates the state in place (else its entry copies it)
    text = jax.jit(lambda s, p: bench._run_ticks(s, p, st, 3), donate_argnums=(0,)).lower(
        b.state, b.params).compile().as_text()
    copies = _copies(text)
    assert copies, "no copy instruction found: the HLO text format changed and this guard reads nothing"
    # per-candidate arrays ([B, T x A]: they grow with the tick's events) may be copied; the page
    # arrays ([B, U]) and the knuma_migrated rings ([B, R, capacity]) must not
    assert st.n_units not in (st.n_tasks * st.units_per_tick, st.ring_capacity)  # the shapes tell them apart
    big = [c for c in copies if st.n_units in c[1] or (st.n_rings in c[1] and st.ring_capacity in c[1])]
    assert not big, f"the tick copies page arrays ({st.n_units} units) or rings: {big[:4]}"


def test_a_tick_on_2m_units_copies_no_pmd_flags_or_ring():
    """On 2 MiB units the pmd flags are one byte per unit: the fault path's second read of them
    (the flags before the fault, unordered with the disarming scatter) once made XLA copy them
    twice per access phase. One copy of ``migrate_nid`` per tick is left (knuma_migrated writes
    it, the ring compaction reads it and khugepaged writes it again, in no order XLA can see:
    BENCHMARKS.md), so only the other page arrays are checked here."""
    # 2 x 300 units of 2 MiB: a page-unit count no other array of the tick has
    b = Bucket.build([mini(TINY2, "numa01", seed=s, duration_s=1.0, size_mib=600) for s in (0, 1)])
    b.init()
    st = b.static
    assert st.n_units == 600 and st.n_units not in (st.n_tasks * st.units_per_tick, st.ring_capacity)
    text = jax.jit(lambda s, p: bench._run_ticks(s, p, st, 3), donate_argnums=(0,)).lower(
        b.state, b.params).compile().as_text()
    shaped = [c for c in _copies(text) if st.n_units in c[1] or (st.n_rings in c[1] and st.ring_capacity in c[1])]
    bad = [c for c in shaped if not c[0].startswith("= s8[")]
    assert not bad, f"the tick copies pmd flags, migrate_seq or rings ({st.n_units} units): {bad[:4]}"
    assert len(shaped) <= 2, shaped  # at most the known migrate_nid copies, no new s8 ones
