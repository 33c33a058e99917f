"""The evaluation archive: every scored architecture, appended to a JSON-lines file as it is
scored, and looked up as a cache so a resumed or repeated search never scores one twice."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .files import write_atomic


class ArchiveError(ValueError):
    """An archive file with lines that are not records (other than a tail torn by a kill)."""

    def __init__(self, path: Path, unreadable: list[int], n_readable: int):
        self.path, self.unreadable, self.n_readable = path, unreadable, n_readable
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        super().__init__(f"{path}: line {unreadable[0]}{more} is not a readable archive record")


def json_lines(records) -> str:
    """The archive's text of ``records``: one JSON object per line."""
    return "".join(json.dumps(record) + "\n" for record in records)


def _record(line: str) -> dict | None:
    """The record a line holds, or None when it holds none."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("key"), str) or "proxy_id" not in record:
        return None
    return record


def read_lines(text: str) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """(line number, record) of every readable line and (line number, text) of every other
    non-empty one."""
    readable, unreadable = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            record = _record(line)
            (readable.append((number, record)) if record is not None else unreadable.append((number, line)))
    return readable, unreadable


def unreadable_path(path: Path) -> Path:
    """A file beside the archive that no earlier repair has used."""
    n = 1
    while (candidate := path.with_name(f"{path.stem}.unreadable-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def repair(path) -> tuple[int, list[int], Path | None]:
    """Keep every readable record of the archive at ``path`` and move the other lines, verbatim,
    to a new file beside it (:func:`unreadable_path`). Returns (records kept, the moved lines'
    numbers, the file they went to, or None when every line was readable)."""
    path = Path(path)
    readable, unreadable = read_lines(path.read_text())
    if not unreadable:
        return len(readable), [], None
    aside = unreadable_path(path)
    # the lines first: a kill between the two writes leaves them in both files, never in neither
    write_atomic(aside, "".join(text + "\n" for _, text in unreadable))
    write_atomic(path, json_lines(record for _, record in readable))
    return len(readable), [number for number, _ in unreadable], aside


class Archive:
    def __init__(self, path=None):
        self.path = None
        self.records: list[dict] = []
        self._index: dict[tuple, dict] = {}
        if path:
            self.attach(path)

    def attach(self, path):
        """Keep this archive in ``path`` from now on: the records there are loaded (and reused),
        any scored before are appended to them, and so is every later one."""
        earlier = self.records
        self.path, self.records, self._index = Path(path), [], {}
        if self.path.exists():
            self._load()
        self.add([record for record in earlier if self.get(record["proxy_id"], record["key"]) is None])

    def _load(self):
        text = self.path.read_text()
        readable, unreadable = read_lines(text)
        unfinished = text.count("\n") + 1
        # each record goes out with its newline in one write, so a kill mid-write can tear only
        # the unfinished last line; a bad line before a newline is corruption
        if any(number != unfinished for number, _ in unreadable):
            raise ArchiveError(self.path, [number for number, _ in unreadable], len(readable))
        for _, record in readable:
            self._remember(record)
        if text and not text.endswith("\n"):
            self._rewrite()  # without a torn tail, and so that appends start on a fresh line

    def _rewrite(self):
        write_atomic(self.path, json_lines(self.records))

    def _remember(self, record: dict):
        self.records.append(record)
        self._index[(record["proxy_id"], record["key"])] = record

    def get(self, proxy_id: str, key: str):
        return self._index.get((proxy_id, key))

    def records_of(self, proxy_id: str) -> list[dict]:
        """The records scored the way ``proxy_id`` scores (the others are kept, not reused)."""
        return [r for r in self.records if r["proxy_id"] == proxy_id]

    def add(self, records: list[dict]):
        for record in records:
            self._remember(record)
        if self.path and records:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as stream:
                for record in records:
                    stream.write(json.dumps(record) + "\n")
                stream.flush()
                os.fsync(stream.fileno())

    def __len__(self):
        return len(self.records)
