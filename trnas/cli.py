"""The ``trnas`` command: one sub-command per module, bad input reported as one line, exit 2."""
from __future__ import annotations

import argparse
import importlib
import sys

from .config import UsageError

# each module defines add_parser(subparsers), whose parser sets `run=callable(args) -> int`
COMMANDS = ("search", "train", "attack", "correlate", "plot")


def user_errors() -> tuple:
    """Exceptions that mean the input was wrong, not the program."""
    from evaluation.datasets import DatasetError
    from evaluation.registry import ProxyError
    from nas_problem.genotype import GenotypeError
    from nas_problem.budget import BudgetError
    return UsageError, GenotypeError, BudgetError, DatasetError, ProxyError, FileNotFoundError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trnas", description="Training-free robust neural architecture search.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"trnas.cmd_{name}")
        except ModuleNotFoundError as error:
            if error.name != f"trnas.cmd_{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except user_errors() as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"trnas {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
