"""The one exception type for bad input: a single line naming the field, the value and the range."""


class ConfigError(ValueError):
    """Raised before any compile when a machine, workload, knob or sim setting is invalid."""


def require(ok: bool, field: str, value, allowed: str) -> None:
    """Raise ``ConfigError("<field>=<value>: must be <allowed>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{field}={value!r}: must be {allowed}")
