"""The memory side: mempolicy / first touch (mempolicy.py), AutoNUMA's scanner and hinting faults
(autonuma.py, mm/autonuma.c), the knuma_migrated queues (migrate.py) and khugepaged."""
