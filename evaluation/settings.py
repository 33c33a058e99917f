"""Settings of the library's commands (search, train, attack, correlate): each value is checked
for type and range with one message that names its key, so bad input fails before any work
starts or any file is written. YAML and the command line hand values over as they read them
(``8/255`` arrives as text, ``true`` as a boolean), hence the tolerant readers below."""
from __future__ import annotations

import difflib
import math


class SettingError(ValueError):
    """A setting that is unknown, of the wrong type or out of range."""


class TrainingError(ValueError):
    """Bad training input (unknown method, missing architecture, conflicting resume); the base of
    the checkpoint and attack errors, so one ``except`` reports any of them."""


def check_known(config: dict, known, where: str) -> None:
    """Every key of ``config`` must be one of ``known``; a misspelt one gets a suggestion."""
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingError(f"unknown config key {key!r} in {where}{hint}")


def as_number(value, key: str, minimum: float | None = None, allow_none: bool = False) -> float | None:
    """A finite number; text such as ``8/255`` is read as a fraction."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise SettingError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            if "/" in text:
                top, bottom = text.split("/", 1)
                number = float(top) / float(bottom)
            else:
                number = float(text)
        except (ValueError, ZeroDivisionError):
            raise SettingError(f"{key}: expected a number such as 0.03 or 8/255, got {value!r}") from None
    if not math.isfinite(number):
        raise SettingError(f"{key}: expected a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise SettingError(f"{key}: must be at least {minimum:g}, got {number:g}")
    return number


def as_int(value, key: str, minimum: int | None = None, allow_none: bool = False, maximum: int | None = None):
    """An integer (a whole float such as ``3.0`` counts); a boolean does not, though Python says it is one."""
    if value is None and allow_none:
        return None
    whole = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise SettingError(f"{key}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise SettingError(f"{key}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingError(f"{key}: must be at most {maximum}, got {value}")
    return int(value)


def as_bool(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise SettingError(f"{key}: expected true or false, got {value!r}")
    return value


def as_choice(value, key: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SettingError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def as_text(value, key: str, allow_none: bool = False) -> str | None:
    """A name or a path. A number is taken as its text (``seed1`` folders, numeric names); a
    list or mapping is a mistake."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
        raise SettingError(f"{key}: expected a name or path, got {value!r}")
    return str(value)


def as_names(value, key: str) -> list[str]:
    """Names from a list or comma-separated text (``fgsm,pgd20``); at least one."""
    items = value if isinstance(value, (list, tuple)) else [] if value is None else str(value).split(",")
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        raise SettingError(f"{key}: expected one or more names, got {value!r}")
    return names
