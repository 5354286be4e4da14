"""The memory system of one tick: loaded latency, outstanding misses and the rate of every thread.

A thread that streams writes (``bzero``) is not limited by a bandwidth of its own but by how many
cache-line misses it can keep in flight and how long each one takes (Little's law):

    rate_t = n_t * 64 B / Lbar_t

- ``n_t``: the line misses thread t keeps outstanding. A core has ``core_mlp`` miss slots (line fill
  buffers), shared equally by its busy SMT siblings; a node (socket / die) has ``socket_mlp`` slots
  for all its cores (the uncore's queue), shared in proportion when its threads ask for more.
  A thread that runs only part of the tick (CPU time-shared, kernel work owed) holds its slots
  for that part only.
- ``Lbar_t``: the mean latency of its misses, weighted by where the units it is about to write
  live (``w[t, m]``: its next candidate units on node m). The latency of a miss from a CPU of
  node a to memory of node b is the idle latency ``lat[a, b]`` (local, one hop, two hops...) plus
  the queueing delay at b's memory controller plus, when a != b, the queueing delay on the link
  a -> b. Queueing *adds* delay, to local and remote misses alike, which is what narrows the
  local/remote gap as a controller saturates.
- A queue with utilisation rho and service time S per line waits ``S * rho / (1 - rho)`` (M/M/1).
  A controller serves ``bzero_traffic`` lines of DRAM traffic per line written (2: each line is
  read for ownership, then written back; 1: non-temporal stores); a link a -> b carries the
  written lines of threads on a writing b's memory, and ``bzero_traffic - 1`` lines per line of
  the read-for-ownership data of threads on b writing a's memory.

Rates, utilisations and latencies depend on each other; the fixed point is found by integer
bisection on the utilisations (Q16), all controllers and links at once, near last tick's
(``solve``): each utilisation's "demand it implies" falls as any utilisation rises.

Everything is integer arithmetic (ps, bytes per microsecond, Q6/Q8/Q10/Q16 fixed point) or an
isolated float32 product or quotient floored at once, so the NumPy reference computes the same
numbers bit for bit. Bounds that keep int32 safe: latencies and each queueing delay are capped
(``Q_CAP_PS``), a thread's rate is capped at ``RATE_CAP`` bytes/us (262 GB/s), weights are Q6.
"""
from __future__ import annotations

import jax.numpy as jnp

from .ops import f32, floor_i32, udiv

i32 = jnp.int32

WARM_WINDOW = 1 << 12  # this tick's utilisations are searched within +-6.25 % of last tick's
BISECT_STEPS = 14  # a test at last tick's value, then 13 halvings of the <= WARM_WINDOW + 1 values left
RHO_ONE = 65536
RHO_MAX = RHO_ONE - 64  # utilisation is capped just below 1 (the M/M/1 delay stays finite)
Q_CAP_PS = 1 << 23  # each queueing delay is capped at 8.4 us
RATE_CAP = 1 << 18  # bytes per microsecond of one thread (262 GB/s), so node sums stay in int32
W_BITS = 6  # weights of a thread's memory nodes, Q6
PS_PER_US = 1_000_000
LINE = 64


def queue_ps(svc_ps, rho):
    """M/M/1 waiting time ``svc * rho / (1 - rho)`` in ps (rho in Q16), capped."""
    q = svc_ps.astype(f32) * rho.astype(f32) / (RHO_ONE - rho).astype(f32)
    return floor_i32(jnp.minimum(q, f32(Q_CAP_PS)))


def _sum0(x):
    """Sum over the leading axis of a few (the nodes), written out: elementwise adds that fuse into
    their neighbours, where a reduction would be a kernel of its own (integer sums are exact in any
    order, so the result is the reference's)."""
    acc = x[0]
    for i in range(1, x.shape[0]):
        acc = acc + x[i]
    return acc


def outstanding(core_busy, frac_q10, node_of, active, core_mlp_q8, socket_mlp_q8, n_nodes: int):
    """[T] miss slots (Q8) each active thread holds while it runs."""
    n = jnp.where(active, jnp.maximum(udiv(core_mlp_q8, jnp.maximum(core_busy, 1)), 1), 0)
    on = (node_of[None, :] == jnp.arange(n_nodes)[:, None]) & active[None, :]  # [N, T]
    occ = jnp.sum(jnp.where(on, ((n * frac_q10) >> 10)[None, :], 0), axis=1)  # [N] slots in use per node
    cap = socket_mlp_q8[node_of]
    o = occ[node_of]
    n = jnp.where(o > cap, jnp.maximum(udiv(n * cap, jnp.maximum(o, 1)), 1), n)
    return jnp.where(active, n, 0).astype(i32)


def weights(w_count):
    """[T, N] Q6 weights from candidate counts (rows of zeros stay zero)."""
    tot = jnp.sum(w_count, axis=1, keepdims=True)
    return udiv(w_count << W_BITS, jnp.maximum(tot, 1)).astype(i32)


def latency(lat_ps, mc_svc_ps, link_svc_ps, rho_mc, rho_link):
    """[N, N] loaded latency (ps) of a miss from a CPU of node a to memory of node b."""
    n = lat_ps.shape[0]
    q_mc = queue_ps(mc_svc_ps, rho_mc)  # [N]
    q_l = jnp.where(jnp.eye(n, dtype=bool), 0, queue_ps(link_svc_ps, rho_link))  # [N, N]
    return lat_ps + q_mc[None, :] + q_l


# The solver's inner loop works on node-major arrays ([N, T]: a node's row over the threads), so
# that its one reduction (over the threads) runs along the contiguous axis and everything between
# two reductions is one fused elementwise kernel; ``rates`` and ``utilisation`` are the same
# arithmetic on thread-major arrays.
def _rates_t(L, node_of, wqT, n_q8, speed_pm, frac_q10):
    n = L.shape[0]
    wsum = _sum0(wqT)
    # row L[node_of[t], :] of each thread, as selects over the few nodes (no gather kernel)
    LrowT = _sum0(jnp.stack([jnp.where(node_of[None, :] == a, L[a][:, None], 0) for a in range(n)]))  # [N, T]
    lbar = udiv(_sum0(wqT * LrowT), jnp.maximum(wsum, 1))  # all operands here are non-negative
    r = udiv(n_q8 * (PS_PER_US * LINE // 256), jnp.maximum(lbar, 1))
    r = jnp.minimum(udiv(r * speed_pm, 1000), RATE_CAP)
    r = jnp.where(wsum > 0, r, 0)
    r_eff = (r * frac_q10) >> 10
    return r, ((r_eff[None, :] * wqT) >> W_BITS).astype(i32)


def _utilisation_t(demandT, onT, mc_scale, link_scale, rfo):
    n = demandT.shape[0]
    x = jnp.sum(jnp.where(onT[:, None, :], demandT[None, :, :], 0), axis=2)  # [a, b] from CPUs of a to memory b
    d_node = _sum0(x)  # [N] bytes/us written into each node's memory
    traffic = x + floor_i32(x.T.astype(f32) * rfo)  # a -> b: written lines, plus RFO data of b's threads writing a
    rho_mc = floor_i32(jnp.minimum(d_node.astype(f32) * mc_scale, f32(RHO_MAX)))
    rho_l = floor_i32(jnp.minimum(traffic.astype(f32) * link_scale, f32(RHO_MAX)))
    return rho_mc, jnp.where(jnp.eye(n, dtype=bool), 0, rho_l)


def _on_node_t(node_of, n_nodes: int):
    return node_of[None, :] == jnp.arange(n_nodes, dtype=node_of.dtype)[:, None]  # [N, T]


def rates(L, node_of, wq, n_q8, speed_pm, frac_q10):
    """[T] bytes per microsecond each thread writes while it runs, and [T, N] its average demand
    on each node over the tick (bytes/us, already scaled by the part of the tick it runs)."""
    r, demandT = _rates_t(L, node_of, wq.T, n_q8, speed_pm, frac_q10)
    return r, demandT.T


def utilisation(demand, node_of, mc_scale, link_scale, rfo, n_nodes: int):
    """Q16 utilisation of every controller [N] and link [N, N] that ``demand`` [T, N] implies."""
    return _utilisation_t(demand.T, _on_node_t(node_of, n_nodes), mc_scale, link_scale, rfo)


def solve(mp, prev_mc, prev_link, node_of, w_count, core_busy, frac_q10, speed_pm, active, n_nodes: int):
    """The tick's fixed point: (L [N, N] loaded latency in ps, n_q8 [T], rho_mc [N], rho_link [N, N]).

    Bisection of every utilisation (controllers and links at once) within ``WARM_WINDOW`` of last
    tick's (``prev_mc``, ``prev_link``), first tested at last tick's values themselves: at the test
    point, the utilisation the implied demand gives is above it -> the root is above. ``BISECT_STEPS`` halvings find the largest Q16 value
    whose implied utilisation is still above it, plus one; a root outside the window is reached
    over the next ticks (the queues settle within a few ms of a change, e.g. a thread starting).
    Starting at last tick's values matters beyond speed: all utilisations move together, so a
    search over the whole range takes its first decisions for a controller while the links into it
    sit at their midpoints, and a controller and the link feeding it load the same threads; from a
    nearby start the others are already close to their roots."""
    wq = jnp.where(active[:, None], weights(w_count), 0)
    n_q8 = outstanding(core_busy, frac_q10, node_of, active & (jnp.sum(wq, axis=1) > 0), mp.core_mlp_q8,
                       mp.socket_mlp_q8, n_nodes)
    wqT, onT = wq.T, _on_node_t(node_of, n_nodes)
    # controllers and links as one vector [N + N*N] (fewer, larger kernels per halving)
    N = n_nodes
    join = lambda mc, link: jnp.concatenate([mc, link.reshape(-1)])  # noqa: E731
    prev = join(prev_mc, prev_link)
    svc = join(mp.mc_svc_ps, mp.link_svc_ps)
    lo, hi = jnp.maximum(prev - WARM_WINDOW, 0), jnp.minimum(prev + WARM_WINDOW, RHO_MAX)

    def loaded(rho):
        q = queue_ps(svc, rho)
        return mp.lat_ps + q[None, :N] + jnp.where(jnp.eye(N, dtype=bool), 0, q[N:].reshape(N, N))

    for step in range(BISECT_STEPS):
        # the first test is at last tick's values themselves (all consistent with each other), then halves
        mid = prev if step == 0 else (lo + hi) >> 1
        _, demT = _rates_t(loaded(mid), node_of, wqT, n_q8, speed_pm, frac_q10)
        f = join(*_utilisation_t(demT, onT, mp.mc_scale, mp.link_scale, mp.rfo))
        lo, hi = jnp.where(f > mid, mid + 1, lo), jnp.where(f > mid, hi, mid)
    lo_mc, lo_l = lo[:N], lo[N:].reshape(N, N)
    L = loaded(lo)
    return L, n_q8, lo_mc, lo_l


UNIT_NS_CAP = 1 << 30  # a unit that would take longer (> 1 s) is taken to take 1 s (int32 time sums)


def unit_ns(L_ps, n_q8, speed_pm, unit_bytes: int):
    """[T, A] ns to write one page unit at latencies ``L_ps`` [T, A] for threads with ``n_q8`` [T]
    slots at ``speed_pm`` [T]: unit / (n * 64 B / L) * 1000 / speed = unit * 4 * L_ps / (n_q8 * speed_pm),
    in [1, UNIT_NS_CAP]. The quotient is taken as a product with the thread's reciprocal, computed at
    the thread's own shape: XLA rewrites a division by a broadcast value into exactly that (it is
    not correctly rounded), so the reference does the same."""
    inv = f32(1.0) / jnp.maximum(n_q8 * speed_pm, 1).astype(f32)
    x = L_ps.astype(f32) * f32(4 * unit_bytes) * inv[:, None]
    return jnp.maximum(floor_i32(jnp.minimum(x, f32(UNIT_NS_CAP))), 1)
