"""RNAS-OS: DARTS whose two levels both add λ·f(m(x′), m(x)), how far the supernet's output on a
perturbed image x′ strays from its output on the clean image x.

Robust Neural Architecture Search (Zhu, Li, Liu and Wang), §3.2-3.3, Algorithms 1-2, §4.1.
Variant ``max`` (RNAS-max) takes x′ = argmax of f over the ε-ball by PGD; ``uniform``
(RNAS-uniform) draws x′ uniformly from the ε-ball. The paper leaves f open ("the correlation of
two outputs"); it must be a divergence for its argmax to be meaningful, so the default is TRADES'
KL divergence, with 1 − Pearson correlation and squared distance as settings (docs/decisions.md).

Args (beyond the loop's, :data:`DEFAULTS`): variant (max), lambda (1.0), similarity (kl),
eps (0.031), pgd_step (0.003), pgd_steps (10).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchattacks

from evaluation.settings import as_int
from evaluation.zoo.output_similarity import pearson_rows

from .bilevel import Averages, BilevelSearch, accuracy
from .settings import COMMON_DEFAULTS, SearchError, nonnegative


def kl_divergence(perturbed: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """KL(softmax(clean) ‖ softmax(perturbed)), averaged over the batch (TRADES' regulariser)."""
    return F.kl_div(F.log_softmax(perturbed, dim=1), F.log_softmax(clean, dim=1), reduction="batchmean",
                    log_target=True)


def correlation_distance(perturbed: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """1 − the Pearson correlation of each image's two logit vectors, averaged over the batch."""
    return (1.0 - pearson_rows(perturbed, clean)).mean().to(perturbed.dtype)


def squared_distance(perturbed: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """‖m(x′) − m(x)‖² of the logits, averaged over the batch."""
    return (perturbed - clean).pow(2).sum(1).mean()


DIVERGENCES = {"kl": kl_divergence, "correlation": correlation_distance, "mse": squared_distance}


class DivergencePGD(torchattacks.attack.Attack):
    """PGD that maximises f(m(x′), m(x)) over the L∞ ε-ball instead of a classification loss.

    Starts uniformly in the ball (at x′ = x the gradient of a divergence vanishes), then ``steps``
    signed-gradient steps of ``alpha``, each projected back onto the ball and [0, 1]. Labels are
    not used. Shape: images (N, C, H, W) in [0, 1]; returns x′ of the same shape.

    Args: model, divergence (f(perturbed logits, clean logits)), eps (0.031), alpha (0.003), steps (10).
    """

    def __init__(self, model, divergence, eps=0.031, alpha=0.003, steps=10):
        super().__init__("DivergencePGD", model)
        self.divergence, self.eps, self.alpha, self.steps = divergence, eps, alpha, steps

    def forward(self, images, labels=None):
        images = images.clone().detach().to(self.device)
        clean = self.get_logits(images).detach()
        adversarial = uniform_in_ball(images, self.eps)
        for _ in range(self.steps):
            adversarial.requires_grad_(True)
            cost = self.divergence(self.get_logits(adversarial), clean)
            grad, = torch.autograd.grad(cost, adversarial)
            adversarial = adversarial.detach() + self.alpha * grad.sign()
            adversarial = (images + (adversarial - images).clamp(-self.eps, self.eps)).clamp(0, 1).detach()
        return adversarial


def uniform_in_ball(images: torch.Tensor, eps: float) -> torch.Tensor:
    """x + U(−ε, ε) per pixel, kept in [0, 1]: RNAS-uniform's noise example."""
    return (images + torch.empty_like(images).uniform_(-eps, eps)).clamp(0, 1).detach()


# the loop's settings are DARTS' (COMMON_DEFAULTS), as the paper trains
DEFAULTS = {**COMMON_DEFAULTS, "algorithm": "rnas-os", "variant": "max", "similarity": "kl", "lambda": 1.0,
            "eps": 0.031, "pgd_step": 0.003, "pgd_steps": 10}


class RNASOutputSimilarity(BilevelSearch):
    algorithm = "rnas-os"
    defaults = DEFAULTS
    variants = ("max", "uniform")
    metrics = ("train_loss", "train_acc", "regulariser", "val_loss", "val_acc", "val_regulariser")

    def _check(self, c: dict) -> dict:
        if c["similarity"] not in DIVERGENCES:
            raise SearchError(f"similarity must be one of {', '.join(DIVERGENCES)}, got {c['similarity']!r}")
        for key in ("lambda", "eps", "pgd_step"):
            c[key] = nonnegative(c[key], key)
        c["pgd_steps"] = as_int(c["pgd_steps"], "pgd_steps", minimum=1)
        return c

    def perturb(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c["variant"] == "uniform":
            return uniform_in_ball(x, c["eps"])
        attack = DivergencePGD(self.model, DIVERGENCES[c["similarity"]], c["eps"], c["pgd_step"], c["pgd_steps"])
        return attack(x)

    def regularised_loss(self, x, y) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L(x) + λ·f(m(x′), m(x)), L(x), f, logits): eq. 4 (``max``) or eq. 5 (``uniform``)."""
        perturbed = self.perturb(x)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        regulariser = DIVERGENCES[self.config["similarity"]](self.model(perturbed), logits)
        return loss + self.config["lambda"] * regulariser, loss, regulariser, logits

    def _weight_update(self, batch, averages: Averages) -> None:
        x, y = batch
        total, loss, regulariser, logits = self.regularised_loss(x, y)
        self.weight_step(total)
        averages.add(len(y), train_loss=loss, train_acc=accuracy(logits, y), regulariser=regulariser)

    def _search_epoch(self, pairs: list) -> dict:
        # Algorithms 1-2: α on the validation half first, then w on the training half
        averages = Averages()
        for train, (x, y) in pairs:
            total, loss, regulariser, logits = self.regularised_loss(x, y)
            self.alpha_step(total)
            averages.add(len(y), val_loss=loss, val_acc=accuracy(logits, y), val_regulariser=regulariser)
            self._weight_update(train, averages)
        return averages.means()

