"""Writing results: whole files or nothing, CSV text, and durations as people read them.

It lives at the bottom of the data flow (the archive is the first thing that writes) so that
every later step, from training to the command line, writes files the same way.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import yaml


class OutputError(ValueError):
    """An output folder that cannot be written: a file stands where it or a folder above it
    should be, or there is no permission to write."""


def check_folder(path, key: str = "out_dir") -> None:
    """Refuse an output folder that cannot be made or written, before any work and without
    leaving anything behind (a probe file is removed at once)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{key}={path}: {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputError(f"{key}={path}: {existing} is a file, so no folder can be made under it")
    try:
        # the only sure test of permission (root, read-only mounts, network file systems)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise OutputError(f"{key}={path}: cannot write in {existing} ({error.strerror or error})") from None


def make_folder(path, key: str = "out_dir") -> bool:
    """Make an output folder (checked as :func:`check_folder` does); True if it was made now."""
    path = Path(path)
    check_folder(path, key)
    if path.is_dir():
        return False
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        check_folder(path, key)  # made meanwhile by someone else: still a usable folder?
        return False
    except OSError as error:
        raise OutputError(f"{key}={path}: cannot make the folder ({error.strerror or error})") from None
    return True


def _umask() -> int:
    # os.umask can only be read by setting it; put it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, content: str | bytes | Callable) -> None:
    """Write ``path`` whole or not at all: a killed run never leaves a half-written result.

    ``content`` is text, bytes, or ``write(stream)`` that writes into a binary stream. The file
    gets the permissions of any file the user creates (the umask), not the temporary's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            if callable(content):
                content(stream)
            else:
                stream.write(content.encode() if isinstance(content, str) else content)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json(path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_yaml(path, data: dict) -> None:
    # through JSON first, so tuples, paths and numpy scalars land as plain YAML values
    write_atomic(path, yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))


def csv_text(rows: Iterable[dict], columns: list[str]) -> str:
    """CSV with a header of ``columns``; a row's missing keys are empty cells, extra keys ignored."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def write_csv(path, rows: Iterable[dict], columns: list[str]) -> None:
    write_atomic(path, csv_text(rows, columns))


def format_seconds(seconds: float) -> str:
    """``1h02m03s``, ``2m05s`` or ``7s``."""
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
