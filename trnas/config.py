"""YAML configs plus ``key=value`` overrides, checked against a command's known keys."""
from __future__ import annotations

import difflib
from pathlib import Path

import yaml


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


# shipped inside the package, so a name works from any folder after a plain `pip install .`
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def resolve_config_path(path: str) -> Path:
    """A config given as a path, or as a bare preset name (``quick``) shipped with the package."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    named = CONFIG_DIR / f"{path}.yaml"
    if named.is_file():
        return named
    raise UsageError(f"config file not found: {path}")


def parse_value(text: str):
    """Read an override's value the way YAML reads it (numbers, booleans, lists, null)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def check_keys(config: dict, known: dict, where: str):
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown config key {key!r} in {where}{hint}")


def load_config(path: str | None, overrides: list[str], defaults: dict) -> dict:
    """Defaults, then the YAML file, then ``key=value`` overrides; every key must be known."""
    config = dict(defaults)
    if path:
        resolved = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(resolved.read_text()) or {}
        except yaml.YAMLError as error:
            raise UsageError(f"{resolved}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{resolved}: expected a mapping of keys to values")
        check_keys(loaded, defaults, str(resolved))
        config.update(loaded)
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {item!r}")
        parsed[key.strip()] = parse_value(value)
    check_keys(parsed, defaults, "the command line")
    config.update(parsed)
    return config
