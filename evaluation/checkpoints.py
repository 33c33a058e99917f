"""Trained models on disk: the spec that rebuilds a network, and the checkpoint that holds it.

A checkpoint is self-describing: it records the architecture (genotype text or ``resnet18``)
and the network settings, so :func:`load_model` rebuilds the model without the config that
trained it. It also holds the run's optimiser and random streams, so a resumed training run
continues exactly. Training writes checkpoints; attack evaluation and resumption read them.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas_problem import Genotype, space_of
from nas_problem.files import write_atomic

from .datasets import NormalizedNet
from .settings import TrainingError

CHECKPOINT_FORMAT = 1
MANUAL_ARCHS = ("resnet18",)


class CheckpointError(TrainingError):
    """A checkpoint that cannot be read or does not fit the architecture it is loaded into."""


@dataclass
class ModelSpec:
    """Everything needed to rebuild a trained model from its weights."""
    arch: str                 # "darts" or one of MANUAL_ARCHS
    name: str
    genotype: str | None      # DARTS text for arch == "darts"
    channels: int | None
    layers: int | None
    auxiliary: bool
    num_classes: int
    mean: tuple
    std: tuple

    def same_architecture(self, other: "ModelSpec") -> bool:
        mine, theirs = asdict(self), asdict(other)
        for key in ("name", "mean", "std"):
            mine.pop(key), theirs.pop(key)
        if self.arch == "darts" and other.arch == "darts":
            mine["genotype"] = Genotype.parse(self.genotype).key()
            theirs["genotype"] = Genotype.parse(other.genotype).key()
        return mine == theirs

    def describe(self) -> str:
        if self.arch == "darts":
            return f"DARTS network {self.name} (C={self.channels}, {self.layers} cells)"
        return self.arch


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 for 32x32 inputs: a 3x3 stride-1 stem and no max-pool, so the
    four stages see 32, 16, 8 and 4 pixels (the ResNet-18 robust-NAS papers compare with)."""
    from torchvision.models import resnet18
    net = resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
    return net


def build_model(spec: ModelSpec) -> NormalizedNet:
    if spec.arch == "darts":
        genotype = Genotype.parse(spec.genotype)
        net = space_of(genotype).build_network(genotype, num_classes=spec.num_classes, auxiliary=spec.auxiliary,
                                               channels=spec.channels, layers=spec.layers)
    elif spec.arch == "resnet18":
        net = resnet18_cifar(spec.num_classes)
    else:
        raise CheckpointError(f"unknown architecture {spec.arch!r} in checkpoint")
    return NormalizedNet(net, spec.mean, spec.std)


def model_cost(spec: ModelSpec) -> tuple[float, float]:
    """(parameters in millions, multiply-adds in millions of one 32x32 image), the Params and
    FLOPs columns of the papers' tables; auxiliary heads are not counted."""
    if spec.arch == "darts":
        genotype = Genotype.parse(spec.genotype)
        space = space_of(genotype)
        kw = dict(num_classes=spec.num_classes, channels=spec.channels, layers=spec.layers)
        return space.count_params(genotype, **kw), space.count_flops(genotype, **kw)
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        net = resnet18_cifar(spec.num_classes)
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(1, 3, 32, 32))
    return sum(p.numel() for p in net.parameters()) / 1e6, counter.get_total_flops() / 2 / 1e6


@dataclass
class RunState:
    """What an epoch of training changes and a checkpoint keeps."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator    # the data stream: shuffling and augmentation
    history: list = field(default_factory=list)
    epoch: int = 0                # epochs done


def _rng_state(generator: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "data": generator.get_state(),
    }


def _restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    generator.set_state(state["data"])


def save_checkpoint(path, state: RunState, spec: ModelSpec, config: dict, amp: bool) -> None:
    """The run after ``state.epoch`` epochs, with every random stream it draws from, so that a
    resumed run continues exactly as an uninterrupted one."""
    checkpoint = dict(format=CHECKPOINT_FORMAT, epoch=state.epoch, spec=asdict(spec), config=config,
                      model=state.model.state_dict(), optimizer=state.optimizer.state_dict(),
                      scheduler=state.scheduler.state_dict(), scaler=state.scaler.state_dict() if amp else None,
                      rng=_rng_state(state.generator), history=state.history, torch_version=torch.__version__)
    write_atomic(path, lambda stream: torch.save(checkpoint, stream))


def restore_checkpoint(state: RunState, checkpoint: dict, spec: ModelSpec) -> None:
    """Bring a freshly built ``state`` to where ``checkpoint``'s run stopped."""
    load_weights(state.model, checkpoint["model"], spec.describe(), checkpoint["path"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    state.scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoint.get("scaler"):
        state.scaler.load_state_dict(checkpoint["scaler"])
    _restore_rng(checkpoint["rng"], state.generator)
    state.history = checkpoint["history"]
    state.epoch = checkpoint["epoch"]


def read_checkpoint(path) -> dict:
    path = Path(str(path)).expanduser()
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT or "spec" not in checkpoint:
        raise CheckpointError(f"{path}: not a trnas training checkpoint")
    checkpoint["path"] = str(path)
    return checkpoint


def load_weights(model: nn.Module, state_dict: dict, spec_text: str, source: str) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        detail = str(error).splitlines()
        detail = detail[1].strip() if len(detail) > 1 else detail[0]
        raise CheckpointError(f"{source} does not fit {spec_text}: {detail}") from None


def load_model(path, device="cpu") -> tuple[nn.Module, ModelSpec, dict]:
    """(model in eval mode on ``device``, its spec, the checkpoint dict) from a checkpoint file or run folder."""
    checkpoint = read_checkpoint(path)
    spec = ModelSpec(**checkpoint["spec"])
    model = build_model(spec)
    load_weights(model, checkpoint["model"], spec.describe(), checkpoint["path"])
    return model.to(device).eval(), spec, checkpoint
