"""``trnas correlate [--config NAME_OR_PATH] benchmark=PATH [key=value ...]``: rank a robustness
benchmark's architectures with training-free proxies and correlate (:mod:`evaluation.correlate`)."""
from __future__ import annotations

import sys

from .config import add_config_arguments, load_config


def add_parser(subparsers):
    from evaluation.correlate import CORRELATE_DEFAULTS
    parser = subparsers.add_parser(
        "correlate", help="rank a robustness benchmark's architectures with proxies and correlate",
        description="Score every architecture of a robustness benchmark (benchmark= tiny-RobustBench JSON "
                    "files, a quoted glob of them, or a Jung et al. / NAS-RobBench-201 folder with meta.json) "
                    "with training-free proxies (proxies= names, a preset as name:preset, e.g. "
                    "rscore,rscore:paper,croze, or mappings with knobs, e.g. '[rscore, {name: rscore:paper, "
                    "n_images: 64}]') and report Spearman rho / Kendall tau against clean and robust "
                    "accuracy.")
    add_config_arguments(parser, CORRELATE_DEFAULTS)
    parser.add_argument("--cv", action="store_true",
                        help="also run the held-out protocol: repeats x folds splits (keys repeats=, folds=), every "
                             "choice (best proxy, ensemble members, the predictor's fit) made on training folds, "
                             "rho and partial rho given size on held-out folds (heldout.csv, heldout.md)")
    parser.set_defaults(run=run)
    return parser


def say(line: str) -> None:
    # over the progress counter, which a terminal shows on the line being written
    print(("\r" if sys.stderr.isatty() else "") + line, file=sys.stderr)


def progress(k: int, n_proxies: int, name: str, done: int, total: int) -> None:
    print(f"\r[{k}/{n_proxies}] {name}: {done}/{total}", end="", file=sys.stderr)


def run(args) -> int:
    from evaluation.correlate import CORRELATE_DEFAULTS, correlate_benchmark, markdown_table
    config = load_config(args.config, args.overrides, CORRELATE_DEFAULTS)
    table = correlate_benchmark(config, log=say, progress=progress if sys.stderr.isatty() else None, cv=args.cv)
    print(markdown_table(table), end="")
    if args.cv:
        from pathlib import Path
        print("\nHeld out:\n" + (Path(config.get("out_dir", CORRELATE_DEFAULTS["out_dir"])) / "heldout.md").read_text(),
              end="")
    return 0
