"""Where the time goes: each running thread streams writes through its region (``bzero``).

Per tick, a thread with CPU budget B (its fair share of the tick minus kernel work it owes) begins
the next page units of its region in order. How fast it writes them is the memory system's answer
(``memsys.py``): the thread keeps ``n`` line misses in flight (its core's miss slots, shared with a
busy SMT sibling, within its socket's), each taking the loaded latency from its CPU's node to the
unit's node, so one unit takes ``unit * 4 * L_ps / (n_q8 * speed_pm)`` ns. The loaded latencies are
the tick's fixed point over every thread's demand on every memory controller and link (the nodes
of its next candidate units, or for absent units the node first touch would pick).

The same progress drives both work done and the units touched, so a slowed thread also takes
fewer hinting faults (modelling notes). Fault and allocation costs are paid from the next tick's
budget (``debt_ns``) rather than inside this one, which keeps the tick non-circular.

A thread's region may be a two-region cycle (``Thread.cycle_work`` passes over its work region,
then ``cycle_alt`` over its alternate region, repeated: private/shared mixes, hot sets, GC sweeps);
``locate`` maps (passes, position) plus k units to the k-th next unit in closed form, so a tick's
candidates may cross pass and region boundaries at no extra cost.

All times are integer ns; the only floats are isolated products and quotients, floored at once.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from . import memsys
from .mm.mempolicy import bind_mask, first_choice, preference
from .ops import f32, floor_i32, materialize, q16_part, udivmod, urem
from .pytree import pytree_dataclass
from .state import T_INIT

i32 = jnp.int32


@pytree_dataclass
class Stream:
    unit: jnp.ndarray  # [T, A] global unit index of each candidate
    valid: jnp.ndarray  # [T, A] candidate inside the thread's remaining work
    touched: jnp.ndarray  # [T, A] the thread begins (or continues) writing it this tick
    est_node: jnp.ndarray  # [T, A] node of the unit (first allocation choice when absent)
    absent: jnp.ndarray  # [T, A] the unit has no page yet (as the tick began)
    order: jnp.ndarray  # [T, A, N] allocation zonelist for absent units
    allowed: jnp.ndarray  # [T, A, N]
    tau: jnp.ndarray  # [T, A] ns into the tick of the first write to the unit
    kib: jnp.ndarray  # [T, A] KiB written into the unit this tick
    n_done: jnp.ndarray  # [T] units completed
    frac: jnp.ndarray  # [T] Q16 progress into the next unit
    capped: jnp.ndarray  # [T] the thread could have done more than units_per_tick units
    rho_mc: jnp.ndarray  # [N] Q16 utilisation of each memory controller (the tick's fixed point)
    rho_link: jnp.ndarray  # [N, N] Q16 utilisation of each link a -> b


@pytree_dataclass
class Cycle:
    """The regions a thread's current phase goes over: ``a`` passes over region A, then ``b`` passes
    over region B, repeated, ``target`` passes in all. An init phase, and a work phase without a
    cycle, is a = 1, b = 0: every pass over region A."""
    start_a: jnp.ndarray
    len_a: jnp.ndarray
    start_b: jnp.ndarray
    len_b: jnp.ndarray
    a: jnp.ndarray
    b: jnp.ndarray
    target: jnp.ndarray


def cycle(tasks, wp):
    in_init = tasks.phase == T_INIT
    return Cycle(start_a=jnp.where(in_init, wp.init_start, wp.work_start),
                 len_a=jnp.maximum(jnp.where(in_init, wp.init_len, wp.work_len), 1),
                 start_b=jnp.where(in_init, wp.init_start, wp.alt_start),
                 len_b=jnp.maximum(jnp.where(in_init, 1, wp.alt_len), 1),
                 a=jnp.where(in_init, 1, wp.cyc_work), b=jnp.where(in_init, 0, wp.cyc_alt),
                 target=jnp.where(in_init, wp.init_passes, wp.work_passes))


def locate(cy, passes, pos, n):
    """(pass, offset in its region, unit) of the unit ``n`` units after position (passes, pos).

    Closed form over the cycle of a * len_a + b * len_b units (broadcasting). With b = 0 and a = 1 it
    is the plain ``pass = passes + (pos + n) // len, offset = (pos + n) % len``. Every operand is
    non-negative; the divisions along the candidates are ``ops.udivmod`` (exact, vectorised)."""
    P = cy.a + cy.b
    q = urem(passes, P)  # pass inside the current cycle
    span_a = cy.a * cy.len_a
    off = jnp.where(q < cy.a, q * cy.len_a, span_a + (q - cy.a) * cy.len_b) + pos
    x = off + n
    C = span_a + cy.b * cy.len_b
    xc, y = udivmod(x, C)
    in_a = y < span_a
    ya, oa = udivmod(y, cy.len_a)
    yb, ob = udivmod(jnp.maximum(y - span_a, 0), cy.len_b)
    p = passes - q + xc * P + jnp.where(in_a, ya, cy.a + yb)
    o = jnp.where(in_a, oa, ob)
    return p, o, jnp.where(in_a, cy.start_a, cy.start_b) + o


def _cost(ns, frac, valid, cap):
    """Time of each candidate: the rest of the current unit, then whole units."""
    k0 = jnp.arange(ns.shape[1])[None, :] == 0
    c = jnp.where(k0, q16_part(ns, 65536 - frac[:, None]), ns)
    return jnp.where(valid, jnp.minimum(c, cap), cap)


def stream(tasks, pages, params, static, draws, budget, running, core_busy, autonuma_on, memsys_prev, go=None):
    mp, wp = params.machine, params.workload
    T, A, N = static.n_tasks, static.units_per_tick, static.n_nodes
    cap = static.tick_ns + 1
    unit_kib = f32(static.unit_pages * 4)
    cy = cycle(tasks, wp)
    target = cy.target
    k = jnp.arange(A, dtype=i32)[None, :]
    active = running & (budget > 0)
    cpu_node = mp.cpu_node[jnp.maximum(tasks.cpu, 0)]

    def candidates():
        cy2 = Cycle(**{f: getattr(cy, f)[:, None] for f in Cycle.__dataclass_fields__})
        # one stacked result: two would be two fusions, each computing the whole of ``locate``
        pass_k, unit = materialize(
            go, lambda: jnp.stack(locate(cy2, tasks.passes[:, None], tasks.pos[:, None], k)[::2]))
        # the array holds A candidates (the batch's capacity); this configuration uses its own limit
        valid = active[:, None] & (pass_k < target[:, None]) & (k < params.derived.units_limit)
        node = pages.node[unit].astype(i32)
        tid = jnp.arange(T, dtype=i32)[:, None]
        mask = bind_mask(tasks, params, tid, unit)
        order, allowed = preference(mask, cpu_node[:, None], tasks.task_selected_nid[:, None], autonuma_on,
                                    mp.zonelist)
        est = jnp.where(node >= 0, node, first_choice(order, allowed))
        w_count = jnp.sum((valid[:, :, None] & (est[:, :, None] == jnp.arange(N, dtype=i32)[None, None, :]))
                          .astype(i32), axis=1)
        return unit, valid, node, order, allowed, est, w_count

    # computed once (``ops.materialize``): XLA would otherwise recompute ``locate`` in each consumer
    unit, valid, node, order, allowed, est, w_count = materialize(go, candidates)
    B = budget[:, None]

    # the memory system's fixed point over this tick's demand -> loaded latencies, miss slots
    frac_q10 = (jnp.right_shift(budget, 4) << 10) // max(static.tick_ns >> 4, 1)
    with jax.named_scope("memsys_solve"):
        L, n_q8, rho_mc, rho_link = memsys.solve(mp, memsys_prev.rho_mc, memsys_prev.rho_link, cpu_node, w_count,
                                                 core_busy, frac_q10, draws.speed_pm, active, N)

    def progress():
        ns = memsys.unit_ns(L[cpu_node[:, None], est], n_q8, draws.speed_pm, static.unit_pages * 4096)
        c = _cost(ns, tasks.frac, valid, cap)
        e = jnp.cumsum(c, axis=1)
        s = e - c
        touched = valid & (s < B)
        completed = valid & (e <= B)
        n_done = jnp.sum(completed.astype(i32), axis=1)
        tin = jnp.where(valid, jnp.clip(jnp.minimum(e, B) - s, 0), 0)
        kib = floor_i32(tin.astype(f32) / ns.astype(f32) * unit_kib)
        j = jnp.minimum(n_done, A - 1)
        pj = jnp.take_along_axis(touched & ~completed, j[:, None], axis=1)[:, 0] & (n_done < A)
        s_j = jnp.take_along_axis(s, j[:, None], axis=1)[:, 0]
        ns_j = jnp.take_along_axis(ns, j[:, None], axis=1)[:, 0]
        part = floor_i32((budget - s_j).astype(f32) / ns_j.astype(f32) * f32(65536.0))
        frac = jnp.where(pj, jnp.where(n_done == 0, tasks.frac + part, part), 0)
        frac = jnp.where(active, jnp.clip(frac, 0, 65535), tasks.frac)  # a thread that did not run keeps its place
        lim = jnp.minimum(params.derived.units_limit, A)
        capped = active & (n_done == lim) & (jnp.take_along_axis(e, (lim - 1)[None, None].repeat(T, 0), axis=1)[:, 0]
                                             < budget) & (jnp.sum(valid, axis=1) == lim)
        tau = s + draws.phase_ns[:, None]
        return touched, kib, n_done, frac, capped, tau

    touched, kib, n_done, frac, capped, tau = materialize(go, progress)
    return Stream(unit=unit, valid=valid, touched=touched, est_node=est, absent=node < 0, order=order,
                  allowed=allowed, tau=tau,
                  kib=kib, n_done=n_done, frac=frac, capped=capped, rho_mc=rho_mc, rho_link=rho_link)
