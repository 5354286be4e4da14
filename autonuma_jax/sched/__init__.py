"""The scheduler side: CFS placement and balancing (fair.py), AutoNUMA's task exchange (numa.py)."""
