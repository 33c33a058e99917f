"""``trnas attack``: clean and adversarial accuracy of trained checkpoints, and their transfer matrix."""
from __future__ import annotations

from pathlib import Path

from .config import UsageError, load_config


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "attack", help="evaluate checkpoints under FGSM, PGD, CW and AutoAttack",
        description="Clean accuracy and accuracy under FGSM, PGD-20, PGD-100, CW and AutoAttack "
                    "(torchattacks) of one or more `trnas train` checkpoints, a table like the TRNAS "
                    "paper's Table 2 with the harmonic robustness score, and with several checkpoints "
                    "the transfer (black-box) matrix.")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="settings overriding the config")
    parser.add_argument("--config", "-c", help="YAML config file")
    parser.add_argument("--checkpoints", nargs="+", metavar="CHECKPOINT",
                        help="checkpoint files or training run folders")
    parser.add_argument("--attacks", help="comma-separated subset of fgsm,pgd20,pgd100,cw,autoattack")
    parser.add_argument("--n-examples", dest="n_examples", help="a seeded random subset of the test set")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from evaluation.attacks import ATTACK_DEFAULTS, attack_checkpoints
    from evaluation.settings import TrainingError
    overrides = list(args.overrides)
    checkpoints = []
    # `--checkpoints a b key=value` swallows the overrides that follow it: hand them back
    for item in args.checkpoints or []:
        if "=" in item and not Path(item).exists():
            overrides.append(item)
        else:
            checkpoints.append(item)
    if args.attacks is not None:
        overrides.append(f"attacks={args.attacks}")
    if args.n_examples is not None:
        overrides.append(f"n_examples={args.n_examples}")
    config = load_config(args.config, overrides, ATTACK_DEFAULTS)
    if checkpoints:
        config["checkpoints"] = checkpoints
    try:
        attack_checkpoints(config)
    except TrainingError as error:
        raise UsageError(str(error)) from None
    return 0
