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
