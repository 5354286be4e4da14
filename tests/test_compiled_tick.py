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
    text = jax.jit(lambda s, p: bench._run_ticks(s, p, st, 3), donate_argnums=(0,)).lower(b.state, b.params).compile().as_text()
    copies = _copies(text)
    assert copies, "no copy instruction found: the HLO text format changed and this guard reads nothing"
    # per-candidate arrays ([B, T x A]: they grow with the tick's events) may be copied; the page
    # arrays ([B, U]) and the knuma_migrated rings ([B, R, capacity]) must not
    assert st.n_units not in (st.n_tasks * st.units_per_tick, st.ring_capacity)  # the shapes tell them apart
    big = [c for c in copies if st.n_units in c[1] or (st.n_rings in c[1] and st.ring_capacity in c[1])]
    assert not big, f"the tick copies page arrays ({st.n_units} units) or rings: {big[:4]}"
