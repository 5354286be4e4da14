"""sched_numa (variant B of spec schednuma.md §3): the load balancer's home-node preference.

Statistics, scanning and migration are shared with policies/upstream.py (``POLICY_SCHED_NUMA``):
task-context scans of 256 MB (B-late), the two-sample ``last_nid`` rule for tasks with a home node,
synchronous migration without a rate limit, one fault counter per node halved per scan sequence,
the home node chosen once per scan sequence (``upstream.schednuma_placement``).

Here: NUMA_PULL / NUMA_PULL_BIAS (§2.5, §3.5). A busy CPU of node n whose running task is off its
home node (or has none) pulls, from another node, a running task whose home is n, giving its own
task in exchange (the balance is kept: one task per CPU); when the pulled task's runqueue runs only
it, the kernel uses active balancing - in this model the two tasks swap CPUs. It runs at each busy
CPU's balance interval (``sched_numa.balance_interval_millisecs``) [I]; the remote candidate is the
first one in node/CPU order [I: the kernel picks a random remote group]. Concurrent decisions of one
tick are settled as AutoNUMA's exchanges (sched/numa.py): for each target the lowest CPU wins, a
CPU targeted by someone or targeting a proposer waits for its next interval. NUMA_HOT (moves away
from the home node refused) and the home-node allocation act through ``task_selected_nid``, which
mirrors the home node (sched/fair.py, mm/mempolicy.py).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..config import POLICY_SCHED_NUMA
from ..ops import bit, first_argmax
from ..pytree import replace
from ..sched.runqueue import curr
from ..sched.settle import exchange_cpus, settle_cpu_proposals

i32 = jnp.int32


def pull_bias(state, params, static, fire):
    """Home-node exchanges on the CPUs whose balance timer fired. Returns (tasks, n, moved[T])."""
    tasks, nb = state.tasks, state.numab
    mp, wp = params.machine, params.workload
    C, T = static.n_cpus, static.n_tasks
    on = (params.policy == POLICY_SCHED_NUMA) & (params.knobs.sched_numa.numa_migration == 1)
    cur = curr(tasks, C)
    busy = cur >= 0
    q = jnp.maximum(cur, 0)
    n = mp.cpu_node  # [C]
    home = nb.preferred
    off = busy & (home[q] != n)  # the local task is off its home node (or has none)
    act = on & fire & off
    # candidates c (remote, busy) whose task p has its home on this CPU's node  [a, c]
    p_c = jnp.maximum(cur, 0)
    cand = ((n[None, :] != n[:, None]) & busy[None, :] & (home[p_c][None, :] == n[:, None])
            & bit(wp.cpus_allowed[p_c][None, :], n[:, None]) & bit(wp.cpus_allowed[q][:, None], n[None, :]))
    found = jnp.any(cand, axis=1) & act
    tgt_cpu = first_argmax(cand.astype(i32), axis=1)
    accepted, ts = settle_cpu_proposals(found, tgt_cpu)
    cpu, moved = exchange_cpus(tasks.cpu, accepted, q, cur[ts], ts)
    return replace(tasks, cpu=cpu), jnp.sum(accepted.astype(i32)), moved
