"""Standard, PGD and TRADES training: the attack a method trains against, its loss, one epoch.

A new method is a name in :data:`METHODS`, its attack in :meth:`TrainingMethod.attack` and its
loss in :meth:`TrainingMethod.loss`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import ModelSpec, RunState

METHODS = ("standard", "pgd", "trades")


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip (the CIFAR recipe), drawn from
    the data generator so that the augmentation is part of the resumable state."""
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (offsets[:, 0:1] + torch.arange(h)).view(n, 1, h, 1)
    cols = (offsets[:, 1:2] + torch.arange(w)).view(n, 1, 1, w)
    crops = padded[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1), rows, cols]
    return torch.where(flips.view(n, 1, 1, 1), crops.flip(3), crops)


class TrainingMethod:
    """The training of ``config["method"]`` with the config's attack, loss and optimiser settings,
    on ``device`` (with fp16 autocast for the forward pass when ``amp``)."""

    def __init__(self, config: dict, device: torch.device, amp: bool):
        self.config = config
        self.device = device
        self.amp = amp

    def attack(self, model):
        """The torchattacks object that makes the training inputs (None: clean training)."""
        import torchattacks
        c = self.config
        if c["method"] == "pgd":
            return torchattacks.PGD(model, eps=c["eps"], alpha=c["alpha"], steps=c["steps"], random_start=True)
        if c["method"] == "trades":
            # TPGD maximises KL(f(x') || f(x)), the TRADES inner problem
            return torchattacks.TPGD(model, eps=c["eps"], alpha=c["alpha"], steps=c["steps"])
        return None

    def loss(self, model, adversarial, x, y, spec: ModelSpec):
        c = self.config
        method = c["method"]
        logits = model(adversarial if method == "pgd" else x)
        loss = F.cross_entropy(logits, y)
        if spec.auxiliary and model.body.aux_logits is not None:
            loss = loss + c["auxiliary_weight"] * F.cross_entropy(model.body.aux_logits, y)
        if method == "trades":
            logits_adv = model(adversarial)
            loss = loss + c["trades_beta"] * F.kl_div(F.log_softmax(logits_adv.float(), dim=1),
                                                      F.softmax(logits.float(), dim=1), reduction="batchmean")
        return loss, logits

    def train_epoch(self, state: RunState, attack, x_train, y_train, spec: ModelSpec) -> tuple[float, float]:
        """(mean training loss, training accuracy in %) over one pass of the training images."""
        c, device, amp = self.config, self.device, self.amp
        model, optimizer, scaler = state.model, state.optimizer, state.scaler
        model.train()
        order = torch.randperm(len(x_train), generator=state.generator)
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for start in range(0, len(order), c["batch_size"]):
            index = order[start:start + c["batch_size"]]
            x, y = x_train[index], y_train[index]
            if c["augment"]:
                x = augment_batch(x, state.generator)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            # the attack stays in float32: under fp16 autocast its input gradient underflows
            # and sign(0) leaves those pixels unattacked, silently weakening the training attack
            adversarial = attack(x, y) if attack is not None else None
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss, logits = self.loss(model, adversarial, x, y, spec)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if c["grad_clip"]:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.detach().float() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
        n = max(len(order), 1)
        return total_loss.item() / n, 100.0 * correct.item() / n
