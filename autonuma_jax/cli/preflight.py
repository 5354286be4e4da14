"""Checks of the command line before hydra runs, and one line for whatever hydra itself refuses.

hydra composes the config, creates the output folder and opens its log before any of our code
runs; what fails there (a malformed YAML file, a wrong type, an unknown option, a read-only
folder) would end in hydra's multi-line report or a traceback. Here:
- ``check_primary_config``: the primary config given with -cd/-cp and -cn is readable YAML, a
  mapping, not empty, without duplicate keys;
- ``check_output_writable``: the output folder can be created;
- ``check_flag_overrides``: a boolean field given on the command line is written as a boolean
  (OmegaConf would read ``sim.check_invariants=2`` as true);
- ``user_error`` / ``one_line``: what hydra raises for a bad command line or config (run with
  HYDRA_FULL_ERROR so that it reaches us) becomes ``error: <one line>`` and exit 2.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import typing

from ..errors import ConfigError

BOOL_WORDS = ("true", "false", "yes", "no", "on", "off")


def arg_value(argv, names):
    """The value of a hydra option given as ``-x V``, ``--long V`` or ``--long=V``."""
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a[len(n) + 1:]
    return None


def _yaml_loader():
    import yaml

    class NoDuplicates(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (OmegaConf does, with a traceback)."""

    def mapping(loader, node, deep=False):
        seen = set()
        for k, _ in node.value:
            key = loader.construct_object(k, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", k.start_mark)
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    NoDuplicates.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return NoDuplicates


def yaml_problem(path: str):
    """(document, None) for a readable YAML file, else (None, one-line reason)."""
    import yaml
    try:
        with open(path) as f:
            return yaml.load(f, Loader=_yaml_loader()), None  # noqa: S506 (a SafeLoader subclass)
    except (OSError, yaml.YAMLError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        return None, f"{path}: not a readable YAML config{where}: {problem}"


def check_primary_config(argv, conf_dir: str) -> str | None:
    """One line for a primary config that hydra would fail on with a traceback: a malformed YAML file
    in the folder given with -cd / -cp and -cn, or an empty one. None when it looks loadable."""
    name = arg_value(argv, ("-cn", "--config-name")) or "config"
    dirs = [d for d in (arg_value(argv, ("-cd", "--config-dir")), arg_value(argv, ("-cp", "--config-path"))) if d]
    for d in dirs + [conf_dir]:
        path = os.path.join(d, name if name.endswith(".yaml") else name + ".yaml")
        if not os.path.isfile(path):
            continue
        doc, problem = yaml_problem(path)
        if problem:
            return problem
        if not doc:
            return (f"{path}: the primary config is empty; start it with `defaults: [config, _self_]` (the "
                    f"package's conf/config.yaml) and add overrides below, as the files in sweeps/ do")
        if not isinstance(doc, dict):
            return f"{path}: the primary config must be a YAML mapping, not a {type(doc).__name__}"
        return None
    return None


def check_output_writable(argv) -> str | None:
    """hydra creates the job's output folder and its log file before any of our code runs, and fails
    with a traceback when it cannot: say it in one line instead. The folder is hydra.run.dir /
    hydra.sweep.dir when given (before interpolation; ``+``/``++`` forms too), else under the
    working directory. A folder set inside a config file is caught by ``one_line`` instead."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    target = next((a.lstrip("+")[len(key):] for a in argv if a.lstrip("+").startswith(key)), None)
    if target is None or "${" in target:
        target = (target or "").split("${")[0] or os.getcwd()
    p = os.path.abspath(os.path.expanduser(target))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    import tempfile
    try:  # try it: permission bits do not stop root, a read-only mount does
        os.rmdir(tempfile.mkdtemp(prefix=".autonuma-write-test-", dir=p))
    except OSError as e:
        return (f"the output folder cannot be created under {p} ({e.strerror or e}): run from a writable folder "
                f"or pass {key}<a writable folder>")
    return None


def bool_fields(cls, prefix: str = "") -> set[str]:
    """Dotted paths of every boolean field of a schema dataclass (nested dataclasses included)."""
    out = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t = hints.get(f.name, f.type)
        if t is bool:
            out.add(prefix + f.name)
        elif dataclasses.is_dataclass(t):
            out |= bool_fields(t, prefix + f.name + ".")
    return out


def check_flag_overrides(argv) -> str | None:
    """``sim.check_invariants=2`` would be read as true: a boolean field takes true or false."""
    from .schema import AppConfig
    flags = bool_fields(AppConfig)
    for a in argv:
        if a.startswith("-") or "=" not in a:
            continue
        key, value = a.lstrip("+").split("=", 1)
        if key not in flags or value.startswith("${"):
            continue
        for v in value.split(","):  # several values: a -m sweep over the flag
            if v.strip().lower() not in BOOL_WORDS:
                return f"{key}={v.strip()}: must be true or false"
    return None


def user_error(e: BaseException) -> bool:
    """Is this what a bad command line, config or folder raises (one line), not a bug (traceback)?"""
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    return isinstance(e, (ConfigError, HydraException, OmegaConfBaseException, yaml.YAMLError, OSError))


_NOISE = ("full_key:", "object_type=", "reference_type=", "Set the environment variable HYDRA_FULL_ERROR")


def one_line(e: BaseException) -> str:
    """hydra's and OmegaConf's multi-line messages, their causes included, as one line."""
    parts: list[str] = []
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.filename:
            text = f"{e.strerror or e} ({e.filename}): the output folder must be writable (hydra.run.dir / hydra.sweep.dir)"
        else:
            text = str(e)
        listing = False
        for raw in text.splitlines():
            ln = raw.strip()
            if ln.startswith("Config search path"):
                break  # hydra's search path listing: long and not the point
            if not ln or ln.startswith(_NOISE) or "$VALUE" in ln or ln in parts:
                continue
            if parts and raw[:1] in ("\t", " ") and (listing or parts[-1].endswith(":")):
                parts[-1] += (" " if parts[-1].endswith(":") else ", ") + ln  # a list: one item each line
                listing = True
                continue
            listing = False
            parts.append(ln)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)  # `raise ... from None`: stop
    return ": ".join(parts) or "invalid configuration"


def run_compact(hydra_main, exit_status=lambda e: 2) -> None:
    """Run a ``@hydra.main`` function so that what the user got wrong ends as one ``error:`` line
    and ``exit_status(e)`` (2) instead of hydra's multi-line report: hydra prints that (exit 1)
    unless HYDRA_FULL_ERROR is set, so it is set and the exception reaches us. A user who set it
    keeps hydra's full traceback."""
    compact = "HYDRA_FULL_ERROR" not in os.environ
    if compact:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except Exception as e:  # noqa: BLE001
        reported = getattr(e, "autonuma_reported", False)  # a job's own error line, already printed
        if not compact or not (reported or user_error(e)):
            raise
        if not reported:
            print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        sys.exit(exit_status(e))
