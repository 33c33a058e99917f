"""Reading the settings of training and of attack evaluation, and the error bad ones raise.

Training and attacks both read numbers from YAML or the command line, where ``8/255`` arrives
as text; both report a bad value the same way.
"""
from __future__ import annotations


class TrainingError(ValueError):
    """Bad training input (unknown method, missing architecture, conflicting resume); the base of
    the checkpoint and attack errors, so one ``except`` reports any of them."""


def as_number(value, key: str) -> float:
    """Numbers from YAML or the command line, where ``8/255`` arrives as text."""
    if isinstance(value, bool):
        raise TrainingError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            top, bottom = text.split("/", 1)
            return float(top) / float(bottom)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise TrainingError(f"{key}: expected a number such as 0.03 or 8/255, got {value!r}") from None


def as_int(value, key: str, minimum: int | None = None, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise TrainingError(f"{key}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise TrainingError(f"{key}: must be at least {minimum}, got {value}")
    return int(value)
