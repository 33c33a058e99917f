"""RNAS-FD: DARTS with adversarially trained weights whose architecture is projected, every
epoch, onto the architectures whose network vulnerability stays under a bound H.

Robust Network Architecture Search via Feature Distortion Restraining (Qian et al., ECCV 2022),
eqs. 3-9 and Algorithm 1. Phase I warms w up by PGD adversarial training with α fixed; every
Phase II epoch runs Step 1 on the first half of its batches (w: adversarial training; α: Adam on
the clean plus adversarial validation loss, eq. 8) and Step 2 on the second half (α projected
onto {F(α) ≤ H}, eq. 9, one Lagrangian iteration per batch: ``projection``). F is eq. 6 on the
output of every cell. The search-time attack, which the paper does not give, is its training
attack, PGD-7 with step 2/255 in the 8/255 ball (docs/decisions.md).

Args (beyond the loop's, :data:`DEFAULTS`): variant (H: H = 1e-4; L: H = 1e-5), bound (None: the
variant's H), eps (8/255), pgd_step (2/255), pgd_steps (7), clean_val_loss (true: eq. 8; false:
Algorithm 1's line 5, the adversarial validation loss alone).
"""
from __future__ import annotations

import torch
import torchattacks

from evaluation.settings import as_int
from evaluation.zoo.feature_distortion import channel_kl
from nas_problem.supernet import Supernet

from .bilevel import Averages, BilevelSearch, accuracy
from .projection import project
from .settings import COMMON_DEFAULTS, SearchError, nonnegative

BOUNDS = {"H": 1e-4, "L": 1e-5}

# the paper's loop settings where they differ from DARTS' (COMMON_DEFAULTS)
DEFAULTS = {**COMMON_DEFAULTS, "algorithm": "rnas-fd", "variant": "H", "bound": None, "eps": "8/255",
            "pgd_step": "2/255", "pgd_steps": 7, "clean_val_loss": True, "epochs": 60, "batch_size": 128,
            "w_lr": 0.01, "alpha_lr": 6e-4}


def network_vulnerability(supernet: Supernet, x: torch.Tensor, x_adversarial: torch.Tensor) -> torch.Tensor:
    """Eq. 6: the mean over cells of the cell vulnerability (eq. 5: the mean over the cell output's
    channels of eq. 3, KL between the channel's spatial softmax on clean and adversarial inputs,
    averaged over images). Inputs are normalised images; differentiable in α and w."""
    _, clean = supernet.forward_with_cells(x)
    _, adversarial = supernet.forward_with_cells(x_adversarial)
    return torch.stack([channel_kl(z, z_adv).mean() for z, z_adv in zip(clean, adversarial)]).mean()


class RNASFeatureDistortion(BilevelSearch):
    algorithm = "rnas-fd"
    defaults = DEFAULTS
    variants = ("H", "L")
    # vulnerability: F at α as Step 1 left it; _projected: F at α_p, both on one Step 2 batch
    metrics = ("train_adv_loss", "train_adv_acc", "val_loss", "val_adv_acc", "vulnerability",
               "vulnerability_projected", "multiplier", "projection_distance")
    # Step 1 and Step 2 each need at least one batch an epoch
    min_steps = 2

    def _check(self, c: dict) -> dict:
        for key in ("eps", "pgd_step"):
            c[key] = nonnegative(c[key], key)
        c["pgd_steps"] = as_int(c["pgd_steps"], "pgd_steps", minimum=1)
        c["bound"] = BOUNDS[c["variant"]] if c["bound"] is None else nonnegative(c["bound"], "bound")
        if not isinstance(c["clean_val_loss"], bool):
            raise SearchError(f"clean_val_loss: expected true or false, got {c['clean_val_loss']!r}")
        return c

    def adversarial(self, x, y) -> torch.Tensor:
        c = self.config
        return torchattacks.PGD(self.model, eps=c["eps"], alpha=c["pgd_step"], steps=c["pgd_steps"],
                                random_start=True)(x, y)

    def _weight_update(self, batch, averages: Averages) -> None:
        # adversarial training, in Phase I (the warm-up) and Step 1 alike
        x, y = batch
        loss, logits = self.cross_entropy(self.adversarial(x, y), y)
        self.weight_step(loss)
        averages.add(len(y), train_adv_loss=loss, train_adv_acc=accuracy(logits, y))

    def _alpha_update(self, batch, averages: Averages) -> None:
        x, y = batch
        loss, logits = self.cross_entropy(self.adversarial(x, y), y)
        averages.add(len(y), val_adv_acc=accuracy(logits, y))
        if self.config["clean_val_loss"]:
            loss = loss + self.cross_entropy(x, y)[0]
        self.alpha_step(loss)
        averages.add(len(y), val_loss=loss)

    def _search_epoch(self, pairs: list) -> dict:
        averages = Averages()
        step_1 = len(pairs) - len(pairs) // 2
        for train, validation in pairs[:step_1]:
            self._weight_update(train, averages)
            self._alpha_update(validation, averages)
        return {**averages.means(), **self._project([validation for _, validation in pairs[step_1:]])}

    def _project(self, batches: list) -> dict:
        """Step 2: α ← the projection of α onto {F ≤ H}, F estimated on one batch per iteration;
        F(α_p) is measured once more on the last batch, to show how far the projection got."""
        parameters = self.supernet.arch_parameters()
        alpha = torch.cat([p.detach().flatten() for p in parameters])
        remaining = iter(batches)

        def value_and_gradient(point):
            self._set_alpha(point)
            value = self.vulnerability(*next(remaining))
            # a supernet of reduction cells only leaves alpha_normal unused
            gradients = torch.autograd.grad(value, parameters, allow_unused=True, materialize_grads=True)
            return value.item(), torch.cat([g.flatten() for g in gradients])

        result = project(alpha, value_and_gradient, self.config["bound"], len(batches))
        self._set_alpha(result.alpha)
        projected = self.vulnerability(*batches[-1]).item()
        return dict(vulnerability=result.values[0], vulnerability_projected=projected,
                    multiplier=result.multiplier, projection_distance=float((result.alpha - alpha).norm()))

    def vulnerability(self, x, y) -> torch.Tensor:
        """F (eq. 6) of the supernet as it stands, on ``x`` and its PGD adversarial images."""
        x_adversarial = self.adversarial(x, y)
        return network_vulnerability(self.supernet, self.model.normalize(x), self.model.normalize(x_adversarial))

    @torch.no_grad()
    def _set_alpha(self, flat: torch.Tensor) -> None:
        offset = 0
        for p in self.supernet.arch_parameters():
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
