"""The DARTS genotype as an immutable value: parse, print, JSON, canonical form.

A cell is a tuple of 8 ``(op, input)`` pairs, two per intermediate node; node ``k``
(0..3) reads states ``0..k+1`` (states 0 and 1 are the cell inputs).
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import ClassVar, Iterable, Sequence

DARTS_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NONE_OP = "none"
N_NODES = 4
DEFAULT_CONCAT = (2, 3, 4, 5)


class GenotypeError(ValueError):
    """A genotype text, JSON record or pair list that does not describe a DARTS cell pair."""


Pair = tuple  # (op_name: str, input_index: int)


def _clean_cell(pairs: Iterable, cell: str) -> tuple:
    try:
        cleaned = tuple((str(op), int(index)) for op, index in pairs)
    except (TypeError, ValueError) as error:
        raise GenotypeError(f"{cell} cell: expected (op, input) pairs, got {pairs!r}") from error
    if len(cleaned) != 2 * N_NODES:
        raise GenotypeError(f"{cell} cell: expected {2 * N_NODES} (op, input) pairs, got {len(cleaned)}")
    known = set(DARTS_OPS) | {NONE_OP}
    for position, (op, index) in enumerate(cleaned):
        node = position // 2
        if op not in known:
            raise GenotypeError(f"{cell} cell: unknown operation {op!r} (known: {', '.join(sorted(known))})")
        if not 0 <= index <= node + 1:
            raise GenotypeError(
                f"{cell} cell: node {node} reads state {index}, but may only read states 0..{node + 1}")
    return cleaned


@dataclass(frozen=True)
class Genotype:
    normal: tuple
    reduce: tuple
    normal_concat: tuple = DEFAULT_CONCAT
    reduce_concat: tuple = DEFAULT_CONCAT
    space_name: ClassVar[str] = "darts"  # the search space that builds, counts and encodes it

    def __post_init__(self):
        object.__setattr__(self, "normal", _clean_cell(self.normal, "normal"))
        object.__setattr__(self, "reduce", _clean_cell(self.reduce, "reduce"))
        for name in ("normal_concat", "reduce_concat"):
            concat = tuple(int(i) for i in getattr(self, name))
            if concat != DEFAULT_CONCAT:
                raise GenotypeError(f"{name} must be {list(DEFAULT_CONCAT)}, got {list(concat)}")
            object.__setattr__(self, name, concat)

    # ----- text form: the DARTS notation -----
    def __str__(self) -> str:
        return (f"Genotype(normal={list(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={list(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    format = __str__

    @classmethod
    def parse(cls, text: str) -> "Genotype":
        """Read the DARTS ``Genotype(normal=[...], normal_concat=..., reduce=..., reduce_concat=...)``
        notation (``range(2, 6)`` accepted for the concats) or a JSON object."""
        text = text.strip()
        if text.startswith("{"):
            try:
                return cls.from_json(json.loads(text))
            except json.JSONDecodeError as error:
                raise GenotypeError(f"malformed genotype JSON: {error}") from error
        match = re.fullmatch(r"Genotype\s*\((.*)\)", text, flags=re.S)
        if not match:
            raise GenotypeError(f"malformed genotype: expected 'Genotype(normal=[...], reduce=[...], ...)', "
                                f"got {text[:60]!r}")
        body = re.sub(r"range\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)",
                      lambda m: repr(list(range(int(m.group(1)), int(m.group(2))))), match.group(1))
        try:
            call = ast.parse(f"f({body})", mode="eval").body
            fields = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError) as error:
            raise GenotypeError(f"malformed genotype: {error}") from error
        return cls.from_json(fields)

    # ----- JSON form: the tiny-RobustBench / published_genotypes layout -----
    @classmethod
    def from_json(cls, record: dict) -> "Genotype":
        """Accept a genotype dict, a benchmark record (``net.genotype``), and the benchmark's
        ``reduce_concate`` spelling."""
        if "net" in record and isinstance(record["net"], dict):
            record = record["net"].get("genotype", record)
        missing = {"normal", "reduce"} - set(record)
        if missing:
            raise GenotypeError(f"genotype record lacks {', '.join(sorted(missing))}")
        return cls(
            normal=record["normal"],
            reduce=record["reduce"],
            normal_concat=record.get("normal_concat", DEFAULT_CONCAT),
            reduce_concat=record.get("reduce_concat", record.get("reduce_concate", DEFAULT_CONCAT)),
        )

    def to_json(self) -> dict:
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    # ----- validity and identity -----
    def is_valid(self) -> bool:
        """The two inputs of every node differ."""
        return all(cell[2 * k][1] != cell[2 * k + 1][1]
                   for cell in (self.normal, self.reduce) for k in range(N_NODES))

    def canonical(self) -> "Genotype":
        """The same architecture with each node's two (input, op) pairs sorted, so that swapping
        the two edges of a node gives an equal genotype."""
        def sort_cell(cell: Sequence) -> tuple:
            out = []
            for k in range(N_NODES):
                a, b = sorted([cell[2 * k], cell[2 * k + 1]], key=lambda p: (p[1], p[0]))
                out += [a, b]
            return tuple(out)
        return Genotype(sort_cell(self.normal), sort_cell(self.reduce))

    def key(self) -> str:
        """A short stable text key of the canonical genotype (used by caches and archives)."""
        canon = self.canonical()
        return "|".join(",".join(f"{op}~{i}" for op, i in cell) for cell in (canon.normal, canon.reduce))

    def uses(self, op: str) -> bool:
        return any(o == op for o, _ in self.normal + self.reduce)


def load_genotypes(path: str) -> dict:
    """Read a JSON file of genotypes: a name -> genotype mapping (published_genotypes.json)
    or a list of benchmark records (tiny-RobustBench), returned as name -> Genotype."""
    with open(path) as handle:
        data = json.load(handle)
    if isinstance(data, dict):
        return {name: Genotype.from_json(rec) for name, rec in data.items()}
    return {f"seed{rec.get('seed', i)}": Genotype.from_json(rec) for i, rec in enumerate(data)}
