"""A workload from its command-line form: ``{name, variant, build, size_mib, loops, params}``.

The CLI's ``workload`` group and the tuner's ``tune.workloads`` entries both describe a workload
this way; ``build_workload`` turns one into what ``RunConfig.workload`` takes: the benchmark's
name when nothing is changed (built for the machine and seed by ``RunConfig``), else a
``Workload`` built for this machine and seed.
"""
from __future__ import annotations

from ..errors import ConfigError
from ..machine import Machine, get_machine
from . import BENCHMARKS, VARIANTS, MiB, build_variant, make_workload, numa01, numa02, size_loops_params


def _force_node(seed: int) -> int:
    from ..config import RunConfig  # config imports this package: late import
    return RunConfig(seed=seed).force_node()


def _variant(policy: str, w: dict) -> str:
    from ..config import POLICIES
    return (POLICIES.get(policy, (None, None))[1]) or w.get("variant", "default")


def build_workload(w: dict, machine, policy: str, seed: int):
    """The workload name, or a Workload when size_mib / loops / params are set."""
    name = w.get("name")
    if name not in BENCHMARKS:
        raise ConfigError(f"workload.name={name!r}: must be one of {sorted(BENCHMARKS)}")
    size, loops = w.get("size_mib"), w.get("loops")
    params = {k: v for k, v in (w.get("params") or {}).items() if v is not None}
    if size is None and loops is None and not params:
        return name
    if params or not name.startswith(("numa01", "numa02")):
        return _build_registered(name, w, params, machine, policy, seed)
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ConfigError(f"workload.size_mib={size!r}: must be an integer >= 1 (MiB per process)")
    if loops is not None and (not isinstance(loops, int) or loops < 1):
        raise ConfigError(f"workload.loops={loops!r}: must be an integer >= 1")
    m = machine if isinstance(machine, Machine) else get_machine(machine)
    variant = _variant(policy, w)
    if variant not in VARIANTS:
        raise ConfigError(f"workload.variant={variant!r}: must be one of {list(VARIANTS)}")
    variant = build_variant(name, variant, w.get("build") or "latest")
    force_node = _force_node(seed)
    kw = {}
    if loops is not None:
        kw["loops"] = loops
    if name.startswith("numa01"):
        if size is not None:
            kw["size"] = size * MiB
        return numa01(m, variant, thread_alloc=name == "numa01_THREAD_ALLOC", force_node=force_node, **kw)
    if size is not None:
        kw["size"] = size * MiB
    return numa02(m, variant, smt=name == "numa02_SMT", **kw)


def _build_registered(name: str, w: dict, params: dict, machine, policy: str, seed: int):
    """A registered workload with its parameters; size_mib / loops set the parameters the registry
    names for them."""
    for key, pname in zip(("size_mib", "loops"), size_loops_params(name, params)):
        v = w.get(key)
        if v is None:
            continue
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"workload.{key}={v!r}: must be an integer >= 1")
        if pname is None:
            raise ConfigError(f"workload.{key}={v!r}: not supported by workload {name!r} (use workload.params)")
        params[pname] = v
    m = machine if isinstance(machine, Machine) else get_machine(machine)
    variant = _variant(policy, w)
    return make_workload(name, m, variant, _force_node(seed), w.get("build") or "latest", **params)
