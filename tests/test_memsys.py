"""The memory system (memsys.py) against its equations, and against the NumPy reference.

Each test builds the inputs of one tick by hand (threads, their nodes, their next units' nodes,
busy SMT siblings, the part of the tick they run) and checks a property the physics must have:
Little's law for a thread alone, the local/remote latency ratio, SMT siblings sharing a core's
miss slots, a node's slots shared by its threads, queueing that adds the same delay to local and
remote misses, a fixed point that is one, monotone loads, and bzero's read for ownership.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from autonuma_jax import memsys
from autonuma_jax.machine import Machine
from autonuma_jax.params import machine_params

BIG = Machine(name="t", n_nodes=2, cpus_per_node=8, threads_per_core=2, mem_per_node_mib=1024,
              distance=((10, 20), (20, 10)), lat_local_ns=80.0, lat_remote_ns=140.0, core_mlp=10.0,
              socket_mlp=200.0, node_bw_gbs=5000.0, link_bw_gbs=5000.0, bzero_traffic=2.0)


def mparams(m):
    return SimpleNamespace(**{k: jnp.asarray(v) for k, v in machine_params(m).items()})


@jax.jit
def _solve_jit(mp: dict, prev_mc, prev_link, *args):
    """One tick of the solver, compiled once per shape (the machine's numbers are arguments, not
    constants: the property tests draw a new machine per example)."""
    return memsys.solve(SimpleNamespace(**mp), prev_mc, prev_link, *args, prev_mc.shape[0])


def solve(m, nodes, mem, busy=None, frac=None, speed=None, active=None, units=4, ticks=40, prev=None):
    """Threads on CPU nodes ``nodes``, each with its ``units`` next units on node ``mem[t]`` (or a
    list of nodes per thread), for ``ticks`` ticks from idle queues (or ``prev`` = (rho_mc,
    rho_link)): each tick starts from the last one's utilisations. Returns (L, n_q8, rho_mc,
    rho_link, rates bytes/us) of the last tick."""
    T, N = len(nodes), m.n_nodes
    w = np.zeros((T, N), np.int32)
    for t, x in enumerate(mem):
        for node in (x if isinstance(x, (list, tuple)) else [x] * units):
            w[t, node] += 1
    busy = np.ones(T, np.int32) if busy is None else np.asarray(busy, np.int32)
    frac = np.full(T, 1024, np.int32) if frac is None else np.asarray(frac, np.int32)
    speed = np.full(T, 1000, np.int32) if speed is None else np.asarray(speed, np.int32)
    active = np.ones(T, bool) if active is None else np.asarray(active, bool)
    mp = vars(mparams(m))
    args = (jnp.asarray(nodes, jnp.int32), jnp.asarray(w), jnp.asarray(busy), jnp.asarray(frac), jnp.asarray(speed),
            jnp.asarray(active))
    f = lambda pm, pl, *a: _solve_jit(mp, pm, pl, *a)  # noqa: E731
    rmc, rl = (jnp.zeros(N, jnp.int32), jnp.zeros((N, N), jnp.int32)) if prev is None else map(jnp.asarray, prev)
    for _ in range(ticks):
        L, n, rmc, rl = f(rmc, rl, *args)
    r, _ = memsys.rates(L, args[0], memsys.weights(args[1]), n, args[4], args[3])
    return np.asarray(L), np.asarray(n), np.asarray(rmc), np.asarray(rl), np.asarray(r)


def test_a_thread_alone_follows_littles_law():
    L, n, rmc, rl, r = solve(BIG, [0], [0])
    assert n[0] == 10 * 256
    assert abs(L[0, 0] - 80_000) < 100  # idle: no queueing to speak of
    # rate = n * 64 B / latency: 10 * 64 / 80 ns = 8 GB/s = 8000 bytes/us
    assert abs(r[0] - 8000) <= 10


def test_remote_is_slower_by_the_latency_ratio():
    _, _, _, _, r = solve(BIG, [0, 1], [1, 1])  # thread 0 writes node 1 from node 0; thread 1 is local there
    assert abs(r[1] / r[0] - 140 / 80) < 0.01


def test_smt_siblings_share_the_core_miss_slots():
    _, n1, _, _, r1 = solve(BIG, [0], [0])
    _, n2, _, _, r2 = solve(BIG, [0, 0], [0, 0], busy=[2, 2])
    assert (n2 == n1[0] // 2).all()
    assert abs(r2.sum() - r1[0]) <= 10  # the core does the same work, split between its two threads


def test_a_nodes_threads_share_its_miss_slots():
    m = dataclasses.replace(BIG, socket_mlp=16.0)
    _, n, _, _, r = solve(m, [0] * 4, [0] * 4)  # 4 cores x 10 slots asked, 16 available
    assert n.sum() <= 16 * 256 and n.sum() >= 16 * 256 - 4
    _, n1, _, _, _ = solve(m, [0], [0])
    assert n1[0] == 10 * 256  # one thread alone is below the node's cap


def test_a_thread_running_part_of_the_tick_holds_its_slots_for_that_part():
    m = dataclasses.replace(BIG, socket_mlp=10.0)
    _, n_full, _, _, _ = solve(m, [0, 0], [0, 0])
    _, n_half, _, _, _ = solve(m, [0, 0], [0, 0], frac=[512, 512])
    assert n_full.sum() <= 10 * 256
    assert (n_half == 10 * 256).all()  # half the time each: 10 slots in use on average, no cap


def test_queueing_adds_the_same_delay_to_local_and_remote_misses():
    m = dataclasses.replace(BIG, node_bw_gbs=20.0)
    L, _, rmc, rl, _ = solve(m, [0] * 8 + [1] * 8, [0] * 16)  # everybody writes node 0
    assert rmc[0] > 0.8 * 65536
    q_local = L[0, 0] - 80_000
    q_remote = L[1, 0] - 140_000 - int(memsys.queue_ps(jnp.asarray(machine_params(m)["link_svc_ps"][1, 0]),
                                                      jnp.asarray(rl[1, 0])))
    assert q_local > 20_000 and abs(q_local - q_remote) <= 1


def test_a_saturated_controller_serves_at_most_its_capacity():
    m = dataclasses.replace(BIG, node_bw_gbs=20.0, bzero_traffic=2.0)
    _, _, rmc, _, r = solve(m, [0] * 8 + [1] * 8, [0] * 16)
    written = r.sum()  # bytes/us of bzero into node 0
    assert written * 2 <= 20_000 * 1.01  # each written line moves two lines at the controller
    assert written * 2 >= 20_000 * 0.9


def exact_rates(m, nodes, mem, units=4):
    """The model's equations solved in float64, slowly and exactly (Gauss-Seidel sweeps of 1-D
    bisections, one utilisation at a time): bytes/us of every thread."""
    N, T = m.n_nodes, len(nodes)
    w = np.zeros((T, N))
    for t, x in enumerate(mem):
        w[t, x] += units
    w /= w.sum(1, keepdims=True)
    lat = m.latency_matrix() * 1000.0
    svc_mc = 64.0 * m.bzero_traffic / m.node_bw_gbs * 1000.0
    svc_l = 64.0 / m.link_matrix() * 1000.0
    n = np.full(T, m.core_mlp)
    for a in range(N):
        sel = np.array(nodes) == a
        if n[sel].sum() > m.socket_mlp:
            n[sel] *= m.socket_mlp / n[sel].sum()
    off = ~np.eye(N, dtype=bool)

    def implied(x):
        mc, lk = x[:N], x[N:].reshape(N, N)
        q = lambda s, r: s * r / (1 - r)  # noqa: E731
        L = lat + q(svc_mc, mc)[None, :] + np.where(off, q(svc_l, lk), 0)
        r = n * 64e6 / (w * L[nodes]).sum(1)  # bytes/us
        dem = r[:, None] * w
        X = np.zeros((N, N))
        for t in range(T):
            X[nodes[t]] += dem[t]
        f_mc = dem.sum(0) / 64 * svc_mc / 1e6
        f_l = np.where(off, (X + (m.bzero_traffic - 1) * X.T) / 64 * svc_l / 1e6, 0)
        return np.concatenate([f_mc, f_l.ravel()]), r

    x = np.zeros(N + N * N)
    for _ in range(60):
        for v in range(N + N * N):
            if v >= N and not off.ravel()[v - N]:
                continue
            lo, hi = 0.0, 1 - 1e-9
            for _ in range(60):
                mid = (lo + hi) / 2
                x[v] = mid
                if implied(x)[0][v] > mid:
                    lo = mid
                else:
                    hi = mid
            x[v] = lo
    return implied(x)[1]


@pytest.mark.parametrize("case", ["one_node_saturated", "remote_writers_on_a_slow_link", "mixed"])
def test_rates_match_the_exact_fixed_point(case):
    m = dataclasses.replace(BIG, node_bw_gbs=30.0, link_bw_gbs=10.0, socket_mlp=32.0)
    nodes, mem = {"one_node_saturated": ([0] * 8 + [1] * 8, [0] * 16),
                  "remote_writers_on_a_slow_link": ([0] * 6 + [1] * 6, [0] * 3 + [1] * 3 + [0] * 6),
                  "mixed": ([0] * 6 + [1] * 6, [0, 1] * 6)}[case]
    _, _, _, _, r = solve(m, nodes, mem, ticks=120)
    want = exact_rates(m, nodes, mem)
    assert np.allclose(r, want, rtol=0.02), (r, want.round())
    assert abs(r.sum() / want.sum() - 1) < 0.01


def test_the_fixed_point_is_one():
    m = dataclasses.replace(BIG, node_bw_gbs=30.0, link_bw_gbs=10.0)
    nodes, mem = [0] * 6 + [1] * 6, [0] * 3 + [1] * 3 + [0] * 6
    L, n, rmc, rl, _ = solve(m, nodes, mem, ticks=120)
    mp = mparams(m)
    w = np.zeros((12, 2), np.int32)
    for t, x in enumerate(mem):
        w[t, x] = 4
    args = dict(node_of=jnp.asarray(nodes, jnp.int32), wq=memsys.weights(jnp.asarray(w)), n_q8=jnp.asarray(n),
                speed_pm=jnp.full(12, 1000, jnp.int32), frac_q10=jnp.full(12, 1024, jnp.int32))

    def implied(mc, lk):
        Lx = memsys.latency(mp.lat_ps, mp.mc_svc_ps, mp.link_svc_ps, jnp.asarray(mc), jnp.asarray(lk))
        _, dem = memsys.rates(Lx, **args)
        return [np.asarray(x) for x in memsys.utilisation(dem, args["node_of"], mp.mc_scale, mp.link_scale, mp.rfo, 2)]

    f_mc, f_l = implied(rmc, rl)
    # after the queues settled, every utilisation is (nearly) the one its implied demand gives:
    # within 1 % where a controller and the links into it load the same threads
    assert np.abs(f_mc - rmc).max() <= 0.01 * 65536
    off = ~np.eye(2, dtype=bool)
    assert np.abs(f_l - rl)[off].max() <= 0.01 * 65536


def test_queues_settle_within_a_few_ticks_of_a_change():
    m = dataclasses.replace(BIG, node_bw_gbs=20.0)
    _, _, settled, _, _ = solve(m, [0] * 8, [0] * 8, ticks=60)
    for ticks in (1, 4, 8, 16):
        _, _, r, _, _ = solve(m, [0] * 8, [0] * 8, ticks=ticks)
        assert r[0] == min(settled[0], ticks * (memsys.WARM_WINDOW + 1))  # one window per tick, then exact


def test_one_queue_alone_is_solved_exactly():
    m = dataclasses.replace(BIG, node_bw_gbs=20.0)
    T = 6
    _, n, rmc, rl, _ = solve(m, [0] * T, [0] * T)
    mp = mparams(m)
    w = jnp.full((T, 2), 0, jnp.int32).at[:, 0].set(4)
    kw = dict(node_of=jnp.zeros(T, jnp.int32), wq=memsys.weights(w), n_q8=jnp.asarray(n),
              speed_pm=jnp.full(T, 1000, jnp.int32), frac_q10=jnp.full(T, 1024, jnp.int32))

    def f(x):
        Lx = memsys.latency(mp.lat_ps, mp.mc_svc_ps, mp.link_svc_ps, jnp.asarray([x, 0]), jnp.zeros((2, 2), jnp.int32))
        return int(memsys.utilisation(memsys.rates(Lx, **kw)[1], kw["node_of"], mp.mc_scale, mp.link_scale, mp.rfo, 2)[0][0])

    x = int(rmc[0])
    assert f(x) <= x and f(x - 1) > x - 1  # the smallest Q16 value at or above its implied utilisation


def test_more_threads_load_the_node_more_and_each_goes_slower():
    m = dataclasses.replace(BIG, node_bw_gbs=25.0, socket_mlp=64.0)
    prev_rho, prev_r = -1, 1e9
    for k in (1, 2, 4, 8):
        _, _, rmc, _, r = solve(m, [0] * k, [0] * k)
        assert rmc[0] > prev_rho and r[0] < prev_r + 1
        prev_rho, prev_r = rmc[0], r[0]


def test_read_for_ownership_doubles_the_controller_load():
    m1 = dataclasses.replace(BIG, node_bw_gbs=100.0, bzero_traffic=1.0)
    m2 = dataclasses.replace(BIG, node_bw_gbs=100.0, bzero_traffic=2.0)
    _, _, r1, _, w1 = solve(m1, [0], [0])
    _, _, r2, _, w2 = solve(m2, [0], [0])
    assert abs(r2[0] / max(r1[0], 1) * w1[0] / w2[0] - 2) < 0.05


def test_rfo_data_loads_the_link_back_to_the_writer():
    """A thread on node 0 writing node 1: its written lines cross 0 -> 1; with read for ownership
    the lines it reads cross 1 -> 0 as well; non-temporal stores load only 0 -> 1."""
    for beta, back in ((2.0, True), (1.0, False)):
        m = dataclasses.replace(BIG, link_bw_gbs=20.0, bzero_traffic=beta)
        _, _, _, rl, _ = solve(m, [0], [1])
        assert rl[0, 1] > 0 and ((rl[1, 0] > 0) == back)


def test_unit_time_matches_the_rate():
    L, n, _, _, r = solve(BIG, [0], [0])
    ns = np.asarray(memsys.unit_ns(jnp.asarray(L[[0]][:, [0]]), jnp.asarray(n), jnp.asarray([1000]), 2 << 20))
    assert abs(ns[0, 0] - (2 << 20) / r[0] * 1000) / ns[0, 0] < 1e-3


# ------------------------------------------------------------------------------------------------
# the reference computes the same numbers (random ticks)
# ------------------------------------------------------------------------------------------------
@st.composite
def ticks(draw):
    N = draw(st.sampled_from([2, 4]))
    T = draw(st.integers(1, 12))
    lat = draw(st.floats(50, 200))
    m = Machine(name="f", n_nodes=N, cpus_per_node=4, threads_per_core=2, mem_per_node_mib=1024,
                distance=tuple(tuple(10 if i == j else 20 for j in range(N)) for i in range(N)),
                lat_local_ns=lat, lat_remote_ns=draw(st.floats(lat, 400)), core_mlp=draw(st.floats(1, 16)),
                socket_mlp=draw(st.floats(1, 64)), node_bw_gbs=draw(st.floats(2, 60)),
                link_bw_gbs=draw(st.floats(0.5, 30)), bzero_traffic=draw(st.sampled_from([1.0, 1.5, 2.0])))
    cpu = [draw(st.integers(0, N * 4 - 1)) for _ in range(T)]
    mem = [[draw(st.integers(0, N - 1)) for _ in range(draw(st.integers(1, 6)))] for _ in range(T)]
    budget = [draw(st.sampled_from([0, 250_000, 500_000, 1_000_000])) for _ in range(T)]
    speed = [draw(st.integers(600, 1400)) for _ in range(T)]
    prev_mc = [draw(st.integers(0, 65472)) for _ in range(N)]
    prev_l = [[0 if a == b else draw(st.integers(0, 65472)) for b in range(N)] for a in range(N)]
    return m, cpu, mem, budget, speed, prev_mc, prev_l


@settings(max_examples=40, deadline=None)
@given(ticks())
def test_reference_memory_system_agrees(tick):
    from autonuma_jax.reference.numpy_model import ReferenceModel
    m, cpu, mem, budget, speed, prev_mc, prev_l = tick
    T, N = len(cpu), m.n_nodes
    node_of = [c // 4 for c in cpu]
    nr = [sum(1 for c in cpu if c == x) for x in range(N * 4)]
    busy_cpu = [sum(1 for o in range(N * 4) if o // 2 == x // 2 and nr[o] > 0) for x in range(N * 4)]
    busy = [busy_cpu[c] for c in cpu]
    active = [b > 0 for b in budget]
    frac = [((b >> 4) << 10) // (1_000_000 >> 4) for b in budget]
    prev = (np.asarray(prev_mc, np.int32), np.asarray(prev_l, np.int32))
    L, n, rmc, rl, _ = solve(m, node_of, mem, busy=busy, frac=frac, speed=speed, active=active, ticks=1, prev=prev)
    mp = machine_params(m)
    ref = SimpleNamespace(N=N, T=T, tick_ns=1_000_000, w=512, core_mlp_q8=int(mp["core_mlp_q8"]),
                          socket_mlp_q8=[int(x) for x in mp["socket_mlp_q8"]],
                          lat_ps=[[int(x) for x in r] for r in mp["lat_ps"]], mc_svc_ps=[int(x) for x in mp["mc_svc_ps"]],
                          link_svc_ps=[[int(x) for x in r] for r in mp["link_svc_ps"]],
                          mc_scale=[np.float32(x) for x in mp["mc_scale"]],
                          link_scale=[[np.float32(x) for x in r] for r in mp["link_scale"]], rfo=np.float32(mp["rfo"]),
                          tasks=SimpleNamespace(cpu=cpu),
                          memsys=SimpleNamespace(rho_mc=list(prev_mc), rho_link=[list(r) for r in prev_l]))
    cands = {t: [(k, 0, x) for k, x in enumerate(mem[t])] for t in range(T) if active[t]}
    busy_by_cpu = {c: b for c, b in zip(cpu, busy)}
    r = ReferenceModel.memory_system(ref, cands, node_of, [busy_by_cpu.get(c, 1) for c in range(N * 4)], budget, speed)
    assert r.L == L.tolist()
    assert r.rho_mc == rmc.tolist() and r.rho_link == rl.tolist()
    assert all(r.n[t] == n[t] for t in r.n)
