"""Standard, PGD and TRADES training of an evaluation network, resumable bit for bit.

A run folder holds ``checkpoint.pt`` (rewritten atomically after every epoch, see
:mod:`evaluation.checkpoints`), the resolved ``config.yaml``, ``history.csv``, ``curves.png``,
``train.log`` and, when the run ends, ``result.json``.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from nas_problem.files import format_seconds, write_atomic, write_csv, write_json, write_yaml

from .architectures import resolve_architecture
from .attacks import run_attack
from .checkpoints import (CheckpointError, ModelSpec, RunState, build_model, model_cost, read_checkpoint,
                          restore_checkpoint, save_checkpoint)
from .datasets import Dataset, load_dataset
from .runtime import resolve_device
from .settings import TrainingError, as_int, as_number
from .train_methods import METHODS, TrainingMethod

TRAIN_DEFAULTS = dict(
    # what to train
    genotype=None, genotypes_file=None, from_run=None, pick="best_rscore", arch=None, name=None,
    channels=36, layers=20, auxiliary=False, auxiliary_weight=0.4, drop_path_prob=0.0,
    # data
    dataset="digits", data_path=None, root=None, download=False, n_train=None, n_test=None, augment=True,
    # how
    method="pgd", epochs=120, batch_size=64, lr=0.1, momentum=0.9, weight_decay=1e-4,
    milestones=[100], gamma=0.1, grad_clip=5.0,
    eps="8/255", alpha="2/255", steps=7, trades_beta=6.0,
    # per-epoch monitoring on the test set
    eval_n=1000, eval_steps=10,
    # where and on what
    seed=0, device="auto", amp="auto", threads=None, out_dir=None, overwrite=False,
)

# keys that may change between an interrupted run and its resumption without changing the result
RESUME_FREE_KEYS = {"epochs", "device", "amp", "threads", "out_dir", "overwrite", "root", "download",
                    "data_path", "genotypes_file", "name"}


def use_amp(setting, device: torch.device) -> bool:
    """Mixed precision only where it pays and is supported: on CUDA."""
    if setting in ("auto", None):
        return device.type == "cuda"
    if not isinstance(setting, bool):
        raise TrainingError(f"amp: expected auto, true or false, got {setting!r}")
    return setting and device.type == "cuda"


class TrainingData(NamedTuple):
    dataset: Dataset
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_data(config: dict) -> TrainingData:
    dataset = load_dataset(config["dataset"], root=config.get("root"), download=bool(config.get("download")),
                           data_path=config.get("data_path"))
    for key, split in (("n_train", "x_train"), ("n_test", "x_test")):
        n = as_int(config.get(key), key, minimum=1, allow_none=True)
        if n is not None and n > len(getattr(dataset, split)):
            raise TrainingError(f"{key}={n}, but {dataset.name} has only {len(getattr(dataset, split))} "
                                f"{split.split('_')[1]} images")
    n_train, n_test = config.get("n_train"), config.get("n_test")
    return TrainingData(dataset, dataset.x_train[:n_train], dataset.y_train[:n_train],
                        dataset.x_test[:n_test], dataset.y_test[:n_test])


# --------------------------------------------------------------------------- the run
HISTORY_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "clean_acc", "robust_acc", "epoch_s", "elapsed_s")


def default_out_dir(name: str, method: str, seed: int) -> Path:
    return Path("runs") / "train" / name / method / f"seed{seed}"


def check_config(config: dict) -> dict:
    """Validate and normalise the knobs; returns a copy with numbers as numbers."""
    unknown = set(config) - set(TRAIN_DEFAULTS)
    if unknown:
        raise TrainingError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    c = dict(config)
    if c["method"] not in METHODS:
        raise TrainingError(f"method must be one of {', '.join(METHODS)}, got {c['method']!r}")
    for key in ("eps", "alpha", "trades_beta", "lr", "momentum", "weight_decay", "gamma", "auxiliary_weight",
                "drop_path_prob"):
        c[key] = as_number(c[key], key)
        if c[key] < 0:
            raise TrainingError(f"{key} must not be negative, got {c[key]}")
    if c["grad_clip"] is not None:
        c["grad_clip"] = as_number(c["grad_clip"], "grad_clip")
    for key, low in (("epochs", 1), ("batch_size", 1), ("steps", 1), ("channels", 1), ("layers", 1),
                     ("eval_steps", 1), ("seed", 0)):
        c[key] = as_int(c[key], key, minimum=low)
    c["eval_n"] = as_int(c["eval_n"], "eval_n", minimum=0, allow_none=True)
    c["threads"] = as_int(c["threads"], "threads", minimum=1, allow_none=True)
    milestones = c["milestones"] if isinstance(c["milestones"], (list, tuple)) else [c["milestones"]]
    c["milestones"] = [as_int(m, "milestones", minimum=1) for m in milestones if m is not None]
    for key in ("auxiliary", "augment", "download", "overwrite"):
        if not isinstance(c[key], bool):
            raise TrainingError(f"{key}: expected true or false, got {c[key]!r}")
    return c


class Trainer:
    """One training run: set up or resume, loop over epochs, write the run folder."""

    def __init__(self, config: dict, resume: bool = False, log=print, callback=None):
        self.config = check_config(config)
        self.resume = resume
        self.log_line = log
        self.callback = callback

    def run(self) -> dict:
        self._set_up()
        checkpoint = self._open_run_folder()
        state = self._start_state(checkpoint)
        self.write_config()
        self.cost = model_cost(self.spec)
        self._log_start(checkpoint, state.epoch)
        self._train_epochs(state)
        return self._finish(state.history)

    def log(self, text: str) -> None:
        self.log_line(text)
        with open(self.out_dir / "train.log", "a") as stream:
            stream.write(text + "\n")

    # -- set-up and resumption
    def _set_up(self) -> None:
        """The device, the architecture and its run folder's path, the data."""
        c = self.config
        if c["threads"]:
            torch.set_num_threads(c["threads"])
        self.device = resolve_device(c["device"])
        self.amp = use_amp(c["amp"], self.device)
        arch, genotype, default_name = resolve_architecture(c)
        name = c["name"] or default_name
        self.out_dir = Path(c["out_dir"]) if c["out_dir"] else default_out_dir(name, c["method"], c["seed"])
        self.data = load_data(c)
        self.method = TrainingMethod(c, self.device, self.amp)
        self.spec = self._spec(arch, genotype, name, self.data.dataset)
        self.checkpoint_path = self.out_dir / "checkpoint.pt"

    def _spec(self, arch, genotype, name, dataset) -> ModelSpec:
        c = self.config
        darts = arch == "darts"
        return ModelSpec(arch=arch, name=name, genotype=str(genotype) if darts else None,
                         channels=c["channels"] if darts else None, layers=c["layers"] if darts else None,
                         auxiliary=bool(c["auxiliary"]) if darts else False, num_classes=dataset.num_classes,
                         mean=tuple(float(v) for v in dataset.mean), std=tuple(float(v) for v in dataset.std))

    def _open_run_folder(self) -> dict | None:
        """The checkpoint to resume from (None: a fresh start); refuses to overwrite a run unasked."""
        checkpoint = None
        if self.checkpoint_path.exists():
            if self.resume:
                checkpoint = read_checkpoint(self.checkpoint_path)
                self._check_resumable(checkpoint)
            elif not self.config["overwrite"]:
                raise TrainingError(f"{self.out_dir} already holds a checkpoint: pass --resume to continue it, "
                                    "overwrite=true to start again, or another out_dir")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            (self.out_dir / "train.log").unlink(missing_ok=True)
            if self.resume:
                self.log(f"--resume: no checkpoint in {self.out_dir} yet, starting from epoch 0")
        return checkpoint

    def _check_resumable(self, checkpoint: dict) -> None:
        saved_spec = ModelSpec(**checkpoint["spec"])
        if not saved_spec.same_architecture(self.spec):
            raise CheckpointError(f"{checkpoint['path']} holds {saved_spec.describe()}"
                                  f"{' ' + saved_spec.genotype if saved_spec.genotype else ''}; "
                                  f"cannot resume it as {self.spec.describe()}")
        saved = checkpoint["config"]
        changed = sorted(k for k in saved if k not in RESUME_FREE_KEYS | {"genotype", "from_run", "pick", "arch"}
                         and saved.get(k) != self.config.get(k))
        if changed:
            k = changed[0]
            raise TrainingError(f"--resume: {k} was {saved[k]!r} in the interrupted run, now {self.config[k]!r} "
                                "(resume with the same settings, or start a new out_dir)")

    def _start_state(self, checkpoint: dict | None) -> RunState:
        """A freshly seeded model and optimiser, brought to the checkpoint's state when resuming."""
        c = self.config
        torch.manual_seed(c["seed"])
        np.random.seed(c["seed"])
        random.seed(c["seed"])
        generator = torch.Generator().manual_seed(c["seed"])
        model = build_model(self.spec).to(self.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"],
                                    weight_decay=c["weight_decay"])
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=c["milestones"], gamma=c["gamma"])
        state = RunState(model, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=self.amp), generator)
        if checkpoint is not None:
            restore_checkpoint(state, checkpoint, self.spec)
        if self.device.type == "cuda":
            # a resumed run must pick the same convolution algorithms as an uninterrupted one
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        return state

    def _log_start(self, checkpoint: dict | None, start_epoch: int) -> None:
        c, data = self.config, self.data
        if checkpoint is None:
            params, flops = self.cost
            self.log(f"training {self.spec.describe()} on {data.dataset.name} ({len(data.x_train)} train / "
                     f"{len(data.x_test)} test images) with {c['method']} training, {c['epochs']} epochs, "
                     f"{params:.3f} M params, {flops:.1f} M FLOPs, device {self.device}"
                     f"{' (mixed precision)' if self.amp else ''} -> {self.out_dir}")
        else:
            self.log(f"resuming {self.spec.describe()} after epoch {start_epoch}/{c['epochs']} "
                     f"from {self.checkpoint_path}")

    # -- the epochs
    def _train_epochs(self, state: RunState) -> None:
        c = self.config
        attack = self.method.attack(state.model)
        x_eval, y_eval = self._monitoring_images()
        if state.epoch >= c["epochs"]:
            self.log(f"nothing to do: the run already finished {state.epoch} epochs")
            self.write_curves(state.history)
        while state.epoch < c["epochs"]:
            self._epoch(state, attack, x_eval, y_eval)
            self._log_epoch(state.history)
            if self.callback is not None:
                self.callback(state.epoch)

    def _monitoring_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``eval_n`` test images (all of them when it is unset)."""
        x_test, y_test = self.data.x_test, self.data.y_test
        n = len(x_test) if self.config["eval_n"] is None else min(self.config["eval_n"], len(x_test))
        return x_test[:n], y_test[:n]

    def _epoch(self, state: RunState, attack, x_eval, y_eval) -> None:
        """Train one epoch, measure it, and put its checkpoint and history on disk."""
        c, epoch = self.config, state.epoch
        started = time.perf_counter()
        if self.spec.arch == "darts":
            state.model.body.drop_path_prob = c["drop_path_prob"] * epoch / c["epochs"]
        lr = state.optimizer.param_groups[0]["lr"]
        loss, train_acc = self.method.train_epoch(state, attack, self.data.x_train, self.data.y_train, self.spec)
        state.scheduler.step()
        clean, robust = self._evaluate(state.model, x_eval, y_eval, epoch)
        epoch_s = time.perf_counter() - started
        elapsed = (state.history[-1]["elapsed_s"] if state.history else 0.0) + epoch_s
        state.history.append(dict(epoch=epoch + 1, lr=lr, train_loss=loss, train_acc=train_acc, clean_acc=clean,
                                  robust_acc=robust, epoch_s=epoch_s, elapsed_s=elapsed))
        state.epoch = epoch + 1
        save_checkpoint(self.checkpoint_path, state, self.spec, self.config, self.amp)
        self.write_curves(state.history)

    def _log_epoch(self, history: list) -> None:
        c, row = self.config, history[-1]
        remaining = (c["epochs"] - row["epoch"]) * row["elapsed_s"] / len(history)
        robust = row["robust_acc"]
        robust_text = f"PGD-{c['eval_steps']} {robust:5.2f}%" if robust is not None else "PGD n/a"
        self.log(f"epoch {row['epoch']}/{c['epochs']}  loss {row['train_loss']:.4f}  "
                 f"train acc {row['train_acc']:5.2f}%  clean {row['clean_acc']:5.2f}%  {robust_text}  "
                 f"lr {row['lr']:g}  elapsed {format_seconds(row['elapsed_s'])}  ETA {format_seconds(remaining)}")

    def _evaluate(self, model, x_eval, y_eval, epoch):
        """Clean and PGD accuracy on the monitoring images, under its own seeded RNG so that
        monitoring neither draws from nor depends on the training stream."""
        c, device = self.config, self.device
        if len(x_eval) == 0:
            return float("nan"), None
        import torchattacks
        pgd = torchattacks.PGD(model, eps=c["eps"], alpha=c["alpha"], steps=c["eval_steps"], random_start=True)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(c["seed"] * 1000 + epoch)
            clean = run_attack(model, None, x_eval, y_eval)[0]["accuracy"]
            robust = run_attack(model, pgd, x_eval, y_eval)[0]["accuracy"]
        return clean, robust

    # -- the run folder's files and the result
    def write_config(self) -> None:
        config = dict(self.config, resolved_name=self.spec.name, resolved_genotype=self.spec.genotype)
        write_yaml(self.out_dir / "config.yaml", config)

    def write_curves(self, history: list) -> None:
        write_csv(self.out_dir / "history.csv", history, HISTORY_FIELDS)
        plot_curves(history, self.out_dir / "curves.png", f"{self.spec.name}: {self.config['method']} training",
                    f"PGD-{self.config['eval_steps']}")

    def _finish(self, history: list) -> dict:
        """``result.json``: the last epoch's accuracies, the model's cost and spec."""
        c, spec, last = self.config, self.spec, history[-1]
        params, flops = self.cost
        n_eval = len(self._monitoring_images()[0])
        result = dict(name=spec.name, arch=spec.arch, genotype=spec.genotype, method=c["method"],
                      dataset=self.data.dataset.name, epochs=len(history), params_m=params, flops_m=flops,
                      clean_acc=last["clean_acc"], robust_acc=last["robust_acc"],
                      robust_attack=f"PGD-{c['eval_steps']}", eval_examples=n_eval,
                      train_seconds=last["elapsed_s"], checkpoint=str(self.checkpoint_path), spec=asdict(spec))
        write_json(self.out_dir / "result.json", result)
        robust = last["robust_acc"] if last["robust_acc"] is not None else float("nan")
        self.log(f"done: clean {last['clean_acc']:.2f}%, PGD-{c['eval_steps']} {robust:.2f}% on {n_eval} test "
                 f"images; checkpoint {self.checkpoint_path}")
        return result


def plot_curves(history: list, path: Path, title: str, robust_label: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["train_loss"] for row in history], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    left.set_title(title)
    right.plot(epochs, [row["train_acc"] for row in history], marker="o", label="train (training inputs)")
    right.plot(epochs, [row["clean_acc"] for row in history], marker="o", label="test clean")
    right.plot(epochs, [math.nan if row["robust_acc"] is None else row["robust_acc"] for row in history],
               marker="o", label=f"test {robust_label}")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy (%)")
    right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    figure.tight_layout()
    write_atomic(path, lambda stream: figure.savefig(stream, format="png", dpi=100))
    plt.close(figure)


def train(config: dict, resume: bool = False, log=print, callback=None) -> dict:
    """Train with ``config`` (keys of :data:`TRAIN_DEFAULTS`; missing keys take the defaults).
    ``callback(epoch)`` runs after each epoch's checkpoint is on disk."""
    return Trainer({**TRAIN_DEFAULTS, **config}, resume=resume, log=log, callback=callback).run()
