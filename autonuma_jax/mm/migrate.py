"""knuma_migrated: per-node queues and daemons (mm/autonuma.c, spec §5).

Each (destination D, source S) list of the kernel is a ring of page-unit indices in enqueue order.
The kernel inserts at the front and isolates from the tail, so each list is FIFO; a cancelled or
re-queued page is unlinked. Here an entry is *live* only while the page is still queued to D, on
S, with ``migrate_seq`` equal to the entry's position: cancelled and re-queued pages leave dead
entries behind, which the daemon discards when it reaches them. FIFO order is therefore exact.
A full ring refuses the queueing (counted in ``queue_overflows``), as the kernel does for pages it
cannot link.

The daemon of node D, once woken (its counter crossed ``pages_to_migrate``, or knuma_scand's
end-of-pass flush), isolates pages round robin, one per source list per round, while the node has
room above ``high_wmark + pages already isolated`` (for every page of a 2 MiB unit) and until
``pages_to_migrate`` pages are taken;
it then sleeps ``migrate_sleep_millisecs`` (plus the time the copies took) and repeats until its
queue is empty, when it waits for the next wake-up. A 2 MiB THP unit is split when isolated
(``PMD_THP`` cleared) and its 512 pages migrate together.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ops import rank_by_key
from ..pytree import replace
from ..state import PMD_THP

i32 = jnp.int32


def ring_index(dst, src, n_nodes: int):
    """Ring of the (dst, src) list; src != dst."""
    if n_nodes == 1:
        return jnp.zeros_like(dst)
    return dst * (n_nodes - 1) + jnp.where(src < dst, src, src - 1)


def unit_mm(units, mm_start):
    """Process slot of each unit. ``compare_all``: the few process starts are compared at once; the
    default method is a binary-search loop, which on the CPU copies its operands every step (for
    ``compact_rings``, the whole [R, capacity] rings)."""
    return (jnp.searchsorted(mm_start, units, side="right", method="compare_all") - 1).astype(i32)


def knuma_migrated(state, params, static, wake):
    """Run the daemons whose turn it is. Returns (state, pages_taken[N], migrate_cost_ns[N])."""
    mg, pages, mms = state.migrated, state.pages, state.mms
    mp, wp, kn = params.machine, params.workload, params.knobs.autonuma.knuma_migrated
    N, W, cap = static.n_nodes, static.migrate_window, static.ring_capacity
    w = static.unit_pages
    tick = state.tick
    cnt = mg.nr_migrate_pages
    run = (mg.waiting & wake & (cnt > 0)) | (~mg.waiting & (tick >= mg.wake_tick))

    D = jnp.arange(N, dtype=i32)[:, None]
    S = jnp.arange(N, dtype=i32)[None, :]
    pair = D != S
    r = jnp.where(pair, ring_index(D, S, N), 0)
    head = mg.head[r]
    tail = mg.tail[r]
    j = jnp.arange(W, dtype=i32)
    pos = head[..., None] + j
    in_q = (pos < tail[..., None]) & pair[..., None] & (j < params.derived.migrate_limit)
    page = mg.ring[r[..., None], pos % cap]
    live = (in_q & (pages.migrate_nid[page].astype(i32) == D[..., None])
            & (pages.node[page].astype(i32) == S[..., None]) & (pages.migrate_seq[page] == pos)
            & mms.alive[unit_mm(page, wp.mm_start)])
    li = live.astype(i32)
    rank = jnp.cumsum(li, axis=-1) - li
    avail = jnp.sum(li, axis=-1)  # [D, S]
    # Isolation order: round by round, in each round the oldest live unit of every source in node
    # order. A unit is isolated while the node keeps room for all of its pages (free > high +
    # isolated, checked page by page in the kernel: spec §5.4) and its round started below the
    # batch (the loop's `until n >= pages_to_migrate`). Both conditions only tighten along the order,
    # so the isolated units are a prefix of it: the first unit that fails stalls the batch.
    rnd = jnp.arange(W, dtype=i32)  # 0-based round
    at_round = jnp.sum(jnp.minimum(rnd[None, None, :], avail[..., None]) * w, axis=1)  # [D, round]
    more = (avail[..., None] > rnd[None, None, :]).astype(i32)  # [D, S, round] source S still has one
    earlier = jnp.cumsum(more, axis=1) - more  # sources before S that give a unit in this round
    rk = jnp.minimum(rank, W - 1)
    n_start = jnp.take_along_axis(at_round[:, None, :].repeat(N, 1), rk, axis=2)  # [D, S, W]
    n_before = n_start + w * jnp.take_along_axis(earlier, rk, axis=2)
    started = (rank == 0) | (n_start < kn.pages_to_migrate)
    room = state.free_pages[:, None, None] > mp.wmark_high[:, None, None] + n_before + (w - 1)
    take = live & started & room & run[:, None, None]

    # ---- migrate the isolated pages -------------------------------------------------------
    U = static.n_units
    tp = jnp.where(take, page, U).ravel()
    dst = jnp.broadcast_to(D[..., None], take.shape).ravel()
    src = jnp.broadcast_to(S[..., None], take.shape).ravel()
    node = pages.node.at[tp].set(dst.astype(pages.node.dtype), mode="drop")
    mig = pages.migrate_nid.at[tp].set(jnp.int8(-1), mode="drop")
    pmd_flags = pages.pmd_flags
    if static.unit_pages == 512:  # split_huge_page() before isolation
        pmd_flags = pmd_flags.at[tp].set(pmd_flags[jnp.minimum(tp, U - 1)] & ~jnp.uint8(PMD_THP), mode="drop")
    n_pair = jnp.sum(take.astype(i32), axis=-1) * w  # [D, S] pages moved S -> D
    moved_in = jnp.sum(n_pair, axis=1)
    moved_out = jnp.sum(n_pair, axis=0)
    free = state.free_pages - moved_in + moved_out
    tf = take.ravel()
    m_of = unit_mm(jnp.minimum(tp, U - 1), wp.mm_start)
    M = static.n_mms
    delta = (jax.ops.segment_sum(jnp.where(tf, w, 0), jnp.where(tf, m_of * N + dst, M * N), num_segments=M * N + 1)
             - jax.ops.segment_sum(jnp.where(tf, w, 0), jnp.where(tf, m_of * N + src, M * N), num_segments=M * N + 1))
    node_pages = mms.node_pages + delta[:M * N].reshape(M, N)
    q_delta = jax.ops.segment_sum(jnp.where(tf, w, 0), jnp.where(tf, m_of * N + dst, M * N), num_segments=M * N + 1)
    queued = mms.queued_pages - q_delta[:M * N].reshape(M, N)
    cnt = cnt - moved_in

    # ---- advance the heads over the consumed prefix (taken or dead entries) -----------------
    keep = in_q & live & ~take
    first_keep = jnp.where(jnp.any(keep, axis=-1), jnp.argmax(keep, axis=-1), jnp.sum(in_q.astype(i32), axis=-1))
    new_head = head + jnp.where(run[:, None] & pair, first_keep.astype(i32), 0)
    head_all = mg.head.at[jnp.where(pair, r, static.n_rings)].set(new_head, mode="drop")

    # ---- sleep or wait ------------------------------------------------------------------------
    cost_ns = moved_in * params.knobs.costs.migrate_per_page_ns
    copy_ticks = (cost_ns + static.tick_ns - 1) // static.tick_ns
    waiting = jnp.where(run, cnt == 0, mg.waiting)
    wake_tick = jnp.where(run & (cnt > 0), tick + params.derived.migrate_sleep_ticks + copy_ticks, mg.wake_tick)
    mg = replace(mg, nr_migrate_pages=cnt, waiting=waiting, wake_tick=wake_tick, head=head_all,
                 pages_migrated=mg.pages_migrated + jnp.sum(moved_in))
    pages = replace(pages, node=node, migrate_nid=mig, pmd_flags=pmd_flags)
    mms = replace(mms, node_pages=node_pages, queued_pages=queued)
    state = replace(state, migrated=mg, pages=pages, mms=mms, free_pages=free)
    return state, moved_in, cost_ns


def push(mg, pages, units, dst, src, want, order_valid, static):
    """Queue `units` (in array order) onto their (dst, src) rings: advances the tails and returns
    (mg, pushed, seq, slot), where ``slot`` is the ring entry each pushed unit is written to,
    flattened and plus one (0: nothing to write). The entries are written by ``write_rings``
    after the access phase: not carried through that phase, the rings are never copied around it
    (as they were when it was a conditional: 60 MB per tick at batch 64 on eight nodes)."""
    N, R, cap = static.n_nodes, static.n_rings, static.ring_capacity
    r = ring_index(dst, src, N)
    r = jnp.where(want, r, R)
    rank = rank_by_key(r, R)  # place among this tick's pushes onto the same ring
    rs = jnp.minimum(r, R - 1)
    seq = mg.tail[rs] + rank
    ok = want & (seq - mg.head[rs] < cap)
    slot = jnp.where(ok, rs * cap + seq % cap + 1, 0)
    n_ok = jax.ops.segment_sum(ok.astype(i32), jnp.where(ok, rs, R), num_segments=R + 1)[:R]
    mg = replace(mg, tail=mg.tail + n_ok)
    return mg, ok, seq, slot


def write_rings(ring, slot, units):
    """Write the entries ``push`` reserved (``slot`` 0: none) into the rings [R, cap]."""
    R, cap = ring.shape
    flat = jnp.where(slot > 0, slot - 1, R * cap)
    return ring.reshape(R * cap).at[flat].set(units, mode="drop").reshape(R, cap)


def rings_to_compact(mg, static):
    """Rings more than 3/4 full: dead entries are squeezed out before they can refuse a queueing."""
    return (mg.tail - mg.head) > static.ring_capacity - static.ring_capacity // 4


def compact_rings(state, params, static):
    """Drop the dead entries of the rings that ``rings_to_compact`` flags, keeping the live ones in
    FIFO order (their ``migrate_seq`` follows). A full ring would otherwise refuse new queueings
    while a stalled live entry at its head keeps the daemon from discarding what is behind it.
    The work is proportional to the ring capacity, so it runs only for rings that need it."""
    mg, pages, mms = state.migrated, state.pages, state.mms
    N, R, cap, U = static.n_nodes, static.n_rings, static.ring_capacity, static.n_units
    wp = params.workload
    need = rings_to_compact(mg, static)  # [R]
    D = jnp.repeat(jnp.arange(N, dtype=i32), max(1, N - 1))
    S = jnp.array([s for d in range(N) for s in range(N) if s != d] or [0], dtype=i32)
    j = jnp.arange(cap, dtype=i32)
    pos = mg.head[:, None] + j[None, :]
    in_q = pos < mg.tail[:, None]
    page = mg.ring[jnp.arange(R)[:, None], pos % cap]
    live = (in_q & (pages.migrate_nid[page].astype(i32) == D[:, None]) & (pages.node[page].astype(i32) == S[:, None])
            & (pages.migrate_seq[page] == pos) & mms.alive[unit_mm(page, wp.mm_start)] & need[:, None])
    li = live.astype(i32)
    new_pos = mg.head[:, None] + jnp.cumsum(li, axis=1) - li
    ring = mg.ring.at[jnp.where(live, jnp.arange(R)[:, None], R), new_pos % cap].set(page, mode="drop")
    seq = pages.migrate_seq.at[jnp.where(live, page, U).ravel()].set(new_pos.ravel(), mode="drop")
    tail = jnp.where(need, mg.head + jnp.sum(li, axis=1), mg.tail)
    return replace(state, migrated=replace(mg, ring=ring, tail=tail), pages=replace(pages, migrate_seq=seq))
