"""The ``trnas`` command: one sub-command per module, bad input reported as one line, exit 2."""
from __future__ import annotations

import argparse
import importlib
import sys

from .config import UsageError, is_override

# each module trnas/cmd_<command with - as _>.py defines add_parser(subparsers), whose parser sets
# `run=callable(args) -> int`
COMMANDS = ("search", "compare", "train", "attack", "correlate", "fit-predictor", "plot")


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line on stderr (no usage block), exit status 2, like every other bad input."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def user_errors() -> tuple:
    """Exceptions that mean the input was wrong, not the program."""
    from differentiable import SearchError
    from evaluation.benchmarks import BenchmarkError
    from evaluation.datasets import DatasetError
    from evaluation.registry import ProxyError
    from evaluation.settings import SettingError
    from nas_problem.archive import ArchiveError
    from nas_problem.files import OutputError
    from nas_problem.genotype import GenotypeError
    from nas_problem.budget import BudgetError
    return (UsageError, SettingError, GenotypeError, BudgetError, DatasetError, ProxyError, BenchmarkError,
            ArchiveError, OutputError, SearchError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = OneLineParser(prog="trnas", description="Training-free robust neural architecture search.")
    parser.add_argument("--version", action="version", version=f"trnas {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"trnas.cmd_{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def parse(argv) -> argparse.Namespace:
    """The arguments, with ``key=value`` overrides collected from anywhere on the command line
    (argparse takes them only before the first flag)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    overrides = [item for item in extras if is_override(item)]
    stray = [item for item in extras if not is_override(item)]
    if overrides and not hasattr(args, "overrides"):
        stray = overrides + stray
    if stray:
        parser.exit(2, f"trnas {args.command}: error: unrecognized arguments: {' '.join(stray)} "
                       f"(see trnas {args.command} --help)\n")
    if overrides:
        args.overrides = list(args.overrides) + overrides
    return args


def main(argv=None) -> int:
    from evaluation.evaluators import WorkerError
    try:
        args = parse(argv)
    except SystemExit as exit:  # --help, or an argument error already reported in one line
        return exit.code or 0
    try:
        return args.run(args) or 0
    except WorkerError as error:
        # not bad input (exit 2), and no traceback: what was scored is archived and reusable
        print(f"trnas {args.command}: error: {error}", file=sys.stderr)
        return 1
    except user_errors() as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"trnas {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trnas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
