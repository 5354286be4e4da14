"""One throughput point of whichever autonuma_jax is first on sys.path (scripts/bench_compare.sh runs
it against two checkouts in turn): min and median over repeats of simulated configuration-seconds
per wall second, after a warm-up, compile apart. Uses only helpers every version of bench.py has."""
import json
import sys
import time

import jax

import autonuma_jax
from autonuma_jax import bench
from autonuma_jax.simulate import Bucket

B, n, workload, machine = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
reps = int(sys.argv[5]) if len(sys.argv) > 5 else 5
b = Bucket.build(bench._cfgs(B, duration_s=(2000 + n * reps) / 1000 + 2, machine=machine, workload=workload))
bench._warm_state(b, 2000)
st = b.static
f = jax.jit(lambda s, p: bench._run_ticks(s, p, st, n), donate_argnums=(0,))
t0 = time.perf_counter()
comp = f.lower(b.state, b.params).compile()
compile_s = time.perf_counter() - t0
rates = []
for _ in range(reps):
    t0 = time.perf_counter()
    b.state = jax.block_until_ready(comp(b.state, b.params))
    rates.append(B * n * st.tick_s / (time.perf_counter() - t0))
rates.sort()
print(json.dumps(dict(tree=autonuma_jax.__file__.rsplit("/", 2)[0], batch=B, workload=workload, machine=machine,
                      sim_s_per_s_max=round(rates[-1], 2), sim_s_per_s_median=round(rates[reps // 2], 2),
                      compile_s=round(compile_s, 1))))
