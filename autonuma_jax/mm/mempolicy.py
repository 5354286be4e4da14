"""Page allocation on first touch (mm/mempolicy.c, mm/page_alloc.c, spec §6.4 and modelling notes).

Order of preference for a new page touched by task t on a CPU of node c:
1. an explicit VMA policy (mbind) or task mempolicy MPOL_BIND: the allowed nodes, nearest to c;
2. under AutoNUMA, ``task_selected_nid`` when set (its zonelist, even while t runs elsewhere);
3. otherwise the local node's zonelist (first touch).
A node is used while its free pages stay above the low watermark; then the zonelist falls back to
the next node by distance; a second pass ignores the watermark (the kernel's min-watermark
retry); an allocation that still finds no room over-commits its first choice and is counted.

The first touches of one tick are served together, in rounds [I]: in round r every request still
unserved tries its r-th allowed node, and the requests for one node are granted in page order
while the node stays above the reserve; all N rounds run with the low watermark as reserve, then
all N again with none. This differs from serving the requests one by one only when a node fills up
in the middle of a tick.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ops import bit
from ..state import T_INIT

i32 = jnp.int32


def bind_mask(tasks, params, t_idx, units):
    """Effective MPOL_BIND node mask for task t_idx allocating `units` (0 = no binding)."""
    wp = params.workload
    vma = wp.mm_vma_bind[wp.task_mm[t_idx]]
    n = params.machine.distance.shape[0]
    slice_node = ((units - wp.init_start[t_idx]) * n) // jnp.maximum(wp.init_len[t_idx], 1)
    init_mask = jnp.where(wp.init_by_slice[t_idx] == 1, jnp.left_shift(1, jnp.clip(slice_node, 0, n - 1)),
                          wp.init_bind[t_idx])
    task_mask = jnp.where(tasks.phase[t_idx] == T_INIT, init_mask, wp.work_bind[t_idx])
    return jnp.where(vma != 0, vma, task_mask).astype(i32)


def preference(mask, cpu_node, selected_nid, autonuma_on, zonelist):
    """(order[..., N], allowed[..., N]) of the nodes to try."""
    base = jnp.where(mask != 0, cpu_node, jnp.where(autonuma_on & (selected_nid >= 0), selected_nid, cpu_node))
    order = zonelist[base]
    allowed = (mask[..., None] == 0) | bit(mask[..., None], order)
    return order, allowed


def first_choice(order, allowed):
    return jnp.take_along_axis(order, jnp.argmax(allowed, axis=-1)[..., None], axis=-1)[..., 0]


def allocate(req, order, allowed, w, free, wmark_low, n_nodes: int):
    """Serve allocation requests in array order. Returns (node[E] (-1 = none asked), free, oom[E])."""
    E = req.shape[0]
    assigned = jnp.full(E, -1, i32)
    for reserve in (wmark_low, jnp.zeros_like(wmark_low)):
        for r in range(n_nodes):
            node = order[:, r]
            ok = req & allowed[:, r] & (assigned < 0)
            onehot = (node[:, None] == jnp.arange(n_nodes, dtype=i32)[None, :]) & ok[:, None]
            cum = jnp.cumsum(onehot.astype(i32) * w[:, None], axis=0)  # [E, N] pages asked so far per node
            mine = jnp.take_along_axis(cum, node[:, None], axis=1)[:, 0]
            accept = ok & (free[node] - mine >= reserve[node])
            assigned = jnp.where(accept, node, assigned)
            free = free - jax.ops.segment_sum(jnp.where(accept, w, 0), node, num_segments=n_nodes)
    oom = req & (assigned < 0)
    fallback = first_choice(order, allowed)
    assigned = jnp.where(oom, fallback, assigned)
    free = free - jax.ops.segment_sum(jnp.where(oom, w, 0), fallback, num_segments=n_nodes)
    return assigned, free, oom
