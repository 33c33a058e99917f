"""Configs of the ``trnas`` commands: a YAML file (a path or a preset name) plus ``key=value``
overrides anywhere on the command line, over the command's one mapping of defaults. The keys
are the keyword names of the Python API, and the library checks every value."""
from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

import yaml

from evaluation.settings import check_known


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


# shipped inside the package, so a name works from any folder after a plain `pip install .`
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# key=value, or key.entry=value: one entry of a mapping setting (proxy_kwargs.model=m.skops)
OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?=")


def is_override(argument: str) -> bool:
    return bool(OVERRIDE.match(argument))


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


def yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what a YAML error is, in one line (line and column counted from 1)."""
    mark = getattr(error, "problem_mark", None)
    what = getattr(error, "problem", None) or str(error).splitlines()[0]
    if getattr(error, "context", None):
        what += f" ({error.context})"
    return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {what}" if mark else f"not valid YAML: {what}"


def read_config(path: str | None, overrides: list[str]) -> tuple[dict, str, dict]:
    """(the YAML file's settings, where they came from, the ``key=value`` overrides), unchecked."""
    loaded, where = {}, ""
    if path:
        resolved = resolve_config_path(path)
        try:
            loaded = yaml.safe_load(resolved.read_text()) or {}
        except yaml.YAMLError as error:
            raise UsageError(f"{resolved}: {yaml_problem(error)}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"{resolved}: expected a mapping of keys to values")
        where = str(resolved)
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {item!r}")
        parsed[key.strip()] = parse_value(value)
    return loaded, where, parsed


def load_config(path: str | None, overrides: list[str], defaults: dict) -> dict:
    """Defaults, then the YAML file, then ``key=value`` overrides in order; every key must be
    known. ``key.entry=value`` sets one entry of the mapping ``key`` holds so far."""
    loaded, where, parsed = read_config(path, overrides)
    check_known(loaded, defaults, where)
    check_known({key.partition(".")[0]: value for key, value in parsed.items()}, defaults, "the command line")
    config = {**defaults, **loaded}
    for key, value in parsed.items():
        top, dot, entry = key.partition(".")
        if not dot:
            config[top] = value
        elif isinstance(config[top], dict):
            config[top] = {**config[top], entry: value}
        else:
            raise UsageError(f"{key}=...: {top} is not a mapping (it is {yaml_text(config[top])}), so it has no "
                             f"entry {entry!r}")
    return config


def add_config_arguments(parser: argparse.ArgumentParser, defaults: dict, presets: str = "") -> None:
    """``--config NAME_OR_PATH`` and ``key=value ...``, with every key and its default in the help."""
    shipped = f", or a preset shipped with trnas ({presets})" if presets else ""
    parser.add_argument("--config", "-c", metavar="NAME_OR_PATH", help=f"YAML config: a path{shipped}")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="settings overriding the config, anywhere on the command line")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = textwrap.fill(parser.description or "", 88)
    keys = "\n".join(f"  {key} = {yaml_text(value)}" for key, value in defaults.items())
    parser.epilog = f"keys and their defaults (values are read as YAML):\n{keys}"


def add_run_folder_arguments(parser: argparse.ArgumentParser, resume_help: str, what: str = "run") -> None:
    """``--resume`` (what it keeps is ``resume_help``) and ``--restart`` of a command that writes a run folder."""
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument("--restart", action="store_true",
                        help=f"start a new {what} in a folder that holds one, moving the earlier {what}'s files to "
                             f"RUN_FOLDER/previous-N")


def yaml_text(value) -> str:
    """A value as one would write it on the command line (``null``, ``[0.5, 0.5]``)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
