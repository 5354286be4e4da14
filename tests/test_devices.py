"""The configuration axis sharded over 8 (virtual CPU) devices gives bit-identical results to one
device, in a subprocess because the device count is fixed when jax starts."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np
    from conftest import mini
    from autonuma_jax.simulate import Bucket
    assert len(jax.local_devices()) == 8
    cfgs = [mini(policy=p, seed=s, duration_s=1.5) for p in ("autonuma24", "none", "hard_bind") for s in (0, 1)]
    b8 = Bucket.build(cfgs)
    assert b8.sharding is not None and b8.n_pad == 2
    r8 = b8.run(reports_per_chunk=2, stop_when_done=False)
    r1 = Bucket.build(cfgs, devices=jax.local_devices()[:1]).run(reports_per_chunk=2, stop_when_done=False)
    for a, b in zip(r8, r1):
        for k in a.rows:
            assert np.array_equal(a.rows[k], b.rows[k]), k
        for k in a.final:
            assert np.array_equal(a.final[k], b.final[k]), k
    print("IDENTICAL", len(r8))
""")


def test_eight_devices_equal_one_device(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(HERE)], capture_output=True, text=True, timeout=600,
                       env=env)
    assert p.returncode == 0 and "IDENTICAL 6" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
