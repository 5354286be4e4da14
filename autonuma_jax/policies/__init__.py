"""Rival NUMA-balancing policies that share the engine's primitives (scanning, hinting faults,
migration, task moves). ``upstream.py``: Linux 3.8 balancenuma and 3.13 automatic NUMA balancing.

Engine policy ids (a traced integer, so policies can share a compiled batch):
0 none, 1 autonuma24 (mm/autonuma.py, sched/numa.py), 2 balancenuma, 3 numa_balancing.
"""
