"""The evaluation archive: every scored architecture, appended to a JSON-lines file as it is
scored, and looked up as a cache so a resumed or repeated search never scores one twice."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .files import write_atomic


class Archive:
    def __init__(self, path=None):
        self.path = Path(path) if path else None
        self.records: list[dict] = []
        self._index: dict[tuple, dict] = {}
        if self.path and self.path.exists():
            self._load()

    def _load(self):
        with open(self.path) as stream:
            lines = stream.read().split("\n")
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # only the last line can be torn by a kill mid-write; anything else is corruption
                if any(rest.strip() for rest in lines[number + 1:]):
                    raise ValueError(f"{self.path}: line {number + 1} is not valid JSON") from None
                break
            self._remember(record)
        # rewrite without a torn tail so later appends start on a fresh line
        self._rewrite()

    def _rewrite(self):
        write_atomic(self.path, "".join(json.dumps(record) + "\n" for record in self.records))

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
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as stream:
                for record in records:
                    stream.write(json.dumps(record) + "\n")
                stream.flush()
                os.fsync(stream.fileno())

    def __len__(self):
        return len(self.records)
