"""The settings every differentiable search shares, their checks, and the error bad input raises."""
from __future__ import annotations

from evaluation.settings import as_int, as_number


class SearchError(ValueError):
    """Bad differentiable-search input: an unknown setting or variant, a conflicting resume."""


# The settings every differentiable search has; a method's defaults extend them (its paper's values).
COMMON_DEFAULTS = dict(
    algorithm=None, variant=None,
    # data: the training images, split into a w half and an α half
    dataset="cifar10", data_path=None, root=None, download=False, n_images=None, train_portion=0.5,
    augment=True,
    # the supernet
    channels=16, layers=8,
    # the loop
    epochs=50, warmup_epochs=15, batch_size=64,
    w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
    alpha_lr=3e-4, alpha_betas=[0.5, 0.999], alpha_weight_decay=1e-3,
    # where and on what
    seed=0, device="auto", threads=None, out_dir=None, overwrite=False,
)
NUMBER_KEYS = ("train_portion", "w_lr", "w_lr_min", "w_momentum", "w_weight_decay", "grad_clip", "alpha_lr",
               "alpha_weight_decay")
# settings that may differ between an interrupted run and its resumption without changing the result
RESUME_FREE_KEYS = {"device", "threads", "out_dir", "overwrite", "root", "download", "data_path"}


def check_common(c: dict, variants: tuple) -> dict:
    """``c`` with the shared settings checked and numbers as numbers (``8/255`` read as one)."""
    if c["variant"] not in variants:
        raise SearchError(f"{c['algorithm']}: variant must be one of {', '.join(variants)}, "
                          f"got {c['variant']!r}")
    for key in NUMBER_KEYS:
        c[key] = as_number(c[key], key)
    if not 0 < c["train_portion"] < 1:
        raise SearchError(f"train_portion must lie strictly between 0 and 1, got {c['train_portion']}")
    for key, minimum in (("channels", 2), ("layers", 1), ("epochs", 1), ("warmup_epochs", 0),
                         ("batch_size", 2), ("seed", 0)):
        c[key] = as_int(c[key], key, minimum=minimum)
    if c["channels"] % 2:
        raise SearchError(f"channels must be even (a factorized reduction splits them between two convolutions), "
                          f"got {c['channels']}")
    if c["warmup_epochs"] > c["epochs"]:
        raise SearchError(f"warmup_epochs ({c['warmup_epochs']}) exceeds epochs ({c['epochs']})")
    c["n_images"] = as_int(c["n_images"], "n_images", minimum=4, allow_none=True)
    c["threads"] = as_int(c["threads"], "threads", minimum=1, allow_none=True)
    betas = c["alpha_betas"]
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise SearchError(f"alpha_betas: expected two numbers such as [0.5, 0.999], got {betas!r}")
    c["alpha_betas"] = [as_number(b, "alpha_betas") for b in betas]
    for key in ("augment", "download", "overwrite"):
        if not isinstance(c[key], bool):
            raise SearchError(f"{key}: expected true or false, got {c[key]!r}")
    return c


def nonnegative(value, key: str) -> float:
    """A number (``8/255`` allowed) that is not negative."""
    number = as_number(value, key)
    if number < 0:
        raise SearchError(f"{key} must not be negative, got {value!r}")
    return number
