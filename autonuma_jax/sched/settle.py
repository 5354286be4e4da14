"""Settling the concurrent task moves of one tick, shared by the policies that exchange tasks.

In the kernel, decisions taken on different CPUs are serialised by runqueue locks and the
stop_one_cpu works; in a tick they are taken together, so conflicting ones must be settled by a
fixed rule (never by scatter order). Two shapes occur:

- per-CPU proposals (AutoNUMA's ``sched_autonuma_balance``, sched-numa's pull bias): the task running
  on CPU c proposes to swap with the task running on ``target[c]``;
- per-task proposals (3.13 ``task_numa_migrate``, numa/core placement): task t moves to CPU
  ``dst[t]`` and the task running there, if any (``partner[t]``), takes t's CPU. Their acceptance
  rules differ and stay with each policy; applying the accepted moves is shared.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

i32 = jnp.int32


def settle_cpu_proposals(proposer, target):
    """Per target CPU the lowest proposing CPU wins; a CPU that is itself targeted, or whose target
    proposes too, waits for its next interval. Returns (accepted [C], target clipped to [0, C))."""
    C = proposer.shape[0]
    cpus = jnp.arange(C, dtype=i32)
    tgt = jnp.where(proposer, target, C)
    targeted = jax.ops.segment_sum(proposer.astype(i32), tgt, num_segments=C + 1)[:C] > 0
    winner = jax.ops.segment_min(jnp.where(proposer, cpus, C), tgt, num_segments=C + 1)[:C]
    tgt_safe = jnp.minimum(tgt, C - 1)
    accepted = proposer & (winner[tgt_safe] == cpus) & ~targeted & ~proposer[tgt_safe]
    return accepted, tgt_safe


def exchange_cpus(cpu, accepted, here, there, target):
    """Apply accepted per-CPU exchanges: task ``here[c]`` goes to ``target[c]``, task ``there[c]``
    (the one running on the target) comes to c. Returns (task cpu [T], moved [T])."""
    T = cpu.shape[0]
    cpus = jnp.arange(accepted.shape[0], dtype=i32)
    a = jnp.where(accepted, here, T)
    b = jnp.where(accepted, there, T)
    cpu = cpu.at[a].set(target, mode="drop").at[b].set(cpus, mode="drop")
    moved = jnp.zeros(T, bool).at[a].set(True, mode="drop").at[b].set(True, mode="drop")
    return cpu, moved


def move_tasks(cpu, accepted, dst, partner):
    """Apply accepted per-task moves: task t goes to CPU ``dst[t]``; its partner (the task running
    there, -1 for an idle CPU) takes t's old CPU. Returns (task cpu [T], moved [T])."""
    T = cpu.shape[0]
    ids = jnp.arange(T, dtype=i32)
    a = jnp.where(accepted, ids, T)
    b = jnp.where(accepted & (partner >= 0), partner, T)
    new = cpu.at[a].set(dst, mode="drop").at[b].set(cpu, mode="drop")
    moved = jnp.zeros(T, bool).at[a].set(True, mode="drop").at[b].set(True, mode="drop")
    return new, moved
