"""Exceptions with messages that name the bad value and what is allowed."""


class SlimkitError(ValueError):
    """Base class: every user-facing error slimkit raises on bad input."""


class ConfigError(SlimkitError):
    """A config field has a value outside what is allowed."""


class CalibrationError(SlimkitError):
    """Calibration data is missing, empty, or not finite."""


def check_choice(field: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{field}={value!r} is not allowed; choose one of {sorted(allowed)!r}")
