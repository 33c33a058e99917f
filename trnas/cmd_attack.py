"""``trnas attack [--config NAME_OR_PATH] checkpoints=A,B [key=value ...]``: clean and adversarial
accuracy of trained checkpoints, and their transfer matrix."""
from __future__ import annotations

from .config import UsageError, add_config_arguments, load_config


def add_parser(subparsers):
    from evaluation.attacks import ATTACK_DEFAULTS
    parser = subparsers.add_parser(
        "attack", help="evaluate checkpoints under FGSM, PGD, CW and AutoAttack",
        description="Clean accuracy and accuracy under FGSM, PGD-20, PGD-100, CW and AutoAttack "
                    "(torchattacks) of one or more `trnas train` checkpoints (checkpoints= files or training "
                    "run folders, comma-separated or a YAML list), a table like the TRNAS paper's Table 2 "
                    "with the harmonic robustness score, and with several checkpoints the transfer "
                    "(black-box) matrix.")
    add_config_arguments(parser, ATTACK_DEFAULTS)
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from evaluation.attacks import ATTACK_DEFAULTS, attack_checkpoints
    from evaluation.settings import TrainingError
    config = load_config(args.config, args.overrides, ATTACK_DEFAULTS)
    try:
        attack_checkpoints(config)
    except TrainingError as error:
        raise UsageError(str(error)) from None
    return 0
