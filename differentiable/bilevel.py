"""The first-order bi-level loop both RNAS searches run (DARTS, Liu et al., ICLR 2019, §2.3 with
ξ = 0): the supernet's weights w learn by momentum SGD on one half of the training images, its
architecture α by Adam on the other half, in alternation, after warm-up epochs that train w alone.

:class:`BilevelSearch` does the bookkeeping (settings, data halves, optimisers, epochs, a
checkpoint per epoch, resumption bit for bit on the CPU, the run folder); a method subclasses it
and writes its mathematics in ``_weight_update`` (one step of w, also all the warm-up does) and
``_search_epoch``.
"""
from __future__ import annotations

import math
import resource
from abc import ABC, abstractmethod
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from evaluation.datasets import NormalizedNet, load_dataset
from evaluation.runtime import resolve_device
from evaluation.train_methods import augment_batch
from nas_problem.files import format_seconds, write_atomic, write_yaml
from nas_problem.supernet import Supernet

from .memory import check_memory
from .run_folder import write_alpha, write_progress, write_summary
from .settings import COMMON_DEFAULTS, RESUME_FREE_KEYS, SearchError, check_common

CHECKPOINT_FORMAT = 1


class Averages:
    """Running means of an epoch's per-batch values, weighted by the batch size."""

    def __init__(self):
        self.sums, self.counts = {}, {}

    def add(self, n: int, **values):
        for name, value in values.items():
            value = value.item() if isinstance(value, torch.Tensor) else float(value)
            self.sums[name] = self.sums.get(name, 0.0) + value * n
            self.counts[name] = self.counts.get(name, 0) + n

    def means(self) -> dict:
        return {name: self.sums[name] / self.counts[name] for name in self.sums}


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * float((logits.detach().argmax(1) == y).float().mean())


class BilevelSearch(ABC):
    """One differentiable search: build, (re)load, loop over epochs, write the run folder."""

    algorithm = ""
    defaults: dict = COMMON_DEFAULTS
    variants: tuple = ()
    # the per-epoch values this method reports, after the loop's own columns
    metrics: tuple = ()
    # forward graphs held at once by the method's largest step (for the memory estimate)
    graphs_per_step = 2
    # batches an epoch must have
    min_steps = 1

    def __init__(self, config: dict, resume: bool = False, report=print):
        unknown = set(config) - set(self.defaults)
        if unknown:
            raise SearchError(f"unknown {self.algorithm} setting(s): {', '.join(sorted(unknown))}")
        self.config = self.check({**self.defaults, **config})
        self.resume = resume
        self.report = report

    # ----- settings
    def check(self, c: dict) -> dict:
        """Validated settings with numbers as numbers; a method adds its own in ``_check``."""
        return self._check(check_common(dict(c, algorithm=self.algorithm), self.variants))

    def _check(self, c: dict) -> dict:
        return c

    def run_folder(self) -> Path:
        c = self.config
        if c["out_dir"]:
            return Path(c["out_dir"])
        return Path("runs") / "darts" / str(c["dataset"]) / f"{self.algorithm}-{c['variant']}" / f"seed{c['seed']}"

    # ----- the run
    def run(self) -> Path:
        c = self.config
        if c["threads"]:
            torch.set_num_threads(c["threads"])
        self.device = resolve_device(c["device"])
        self.folder = self.run_folder()
        checkpoint = self._existing_checkpoint()
        dataset = self._load_data()
        self.memory = check_memory(c["channels"], c["layers"], dataset.num_classes, c["batch_size"],
                                   self.graphs_per_step, self.device)
        self._build(dataset)
        start_epoch = self._restore(checkpoint) if checkpoint else 0
        self.folder.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            (self.folder / "log.txt").unlink(missing_ok=True)
        write_yaml(self.folder / "config.yaml", c)
        if self.device.type == "cuda":
            # a resumed run must pick the same convolution algorithms as an uninterrupted one
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        self._announce(dataset, start_epoch)
        for epoch in range(start_epoch, c["epochs"]):
            self._run_epoch(epoch)
        if start_epoch >= c["epochs"]:
            self.log(f"nothing to do: the run already finished {start_epoch} epochs")
        wall = self.history[-1]["elapsed_s"]
        summary = write_summary(self.folder, self.supernet, c, self.history, dataset.num_classes,
                                self._resources())
        self.log(f"done in {format_seconds(wall)}: {summary['genotype']}\n  evaluation network "
                 f"{summary['params_m']:.3f} M params, {summary['flops_m']:.1f} M FLOPs; results in {self.folder}/ "
                 f"(summary.json, genotype.txt, alpha.json, alpha.png, progress.csv, checkpoint.pt, log.txt)")
        return self.folder

    def log(self, text: str) -> None:
        self.report(text)
        with open(self.folder / "log.txt", "a") as stream:
            stream.write(text + "\n")

    def _announce(self, dataset, start_epoch: int) -> None:
        c = self.config
        if start_epoch:
            self.log(f"resuming after epoch {start_epoch}/{c['epochs']} from {self.folder / 'checkpoint.pt'}")
            return
        self.log(f"{self.algorithm} ({c['variant']}) on {dataset.name}: {len(self.x_w)} images for w, "
                 f"{len(self.x_a)} for alpha, supernet C={c['channels']} with {c['layers']} cells, "
                 f"{c['epochs']} epochs ({c['warmup_epochs']} warm-up), batch {c['batch_size']}, device "
                 f"{self.device} -> {self.folder}")
        self.log(f"memory: needs {self.memory.describe()}")

    def _existing_checkpoint(self) -> dict | None:
        path = self.folder / "checkpoint.pt"
        if not path.exists():
            if self.resume:
                raise SearchError(f"nothing to resume: {path} does not exist")
            return None
        if not self.resume:
            if not self.config["overwrite"]:
                raise SearchError(f"{self.folder} already holds a checkpoint: pass resume to continue it, "
                                  "overwrite=true to start again, or another out_dir")
            return None
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        if checkpoint.get("format") != CHECKPOINT_FORMAT or checkpoint.get("algorithm") != self.algorithm:
            raise SearchError(f"{path} is not a {self.algorithm} checkpoint")
        saved = checkpoint["config"]
        changed = sorted(k for k in saved if k not in RESUME_FREE_KEYS and saved[k] != self.config.get(k))
        if changed:
            k = changed[0]
            raise SearchError(f"resume: {k} was {saved[k]!r} in the interrupted run, now {self.config[k]!r} "
                              "(resume with the same settings, or start a new out_dir)")
        return checkpoint

    def _load_data(self):
        c = self.config
        dataset = load_dataset(c["dataset"], root=c["root"], download=c["download"], data_path=c["data_path"])
        n = len(dataset.x_train) if c["n_images"] is None else c["n_images"]
        if n > len(dataset.x_train):
            raise SearchError(f"n_images={n}, but {dataset.name} has only {len(dataset.x_train)} training images")
        split = int(c["train_portion"] * n)
        # DARTS: the first part of the training images trains w, the rest α
        self.x_w, self.y_w = dataset.x_train[:split], dataset.y_train[:split]
        self.x_a, self.y_a = dataset.x_train[split:n], dataset.y_train[split:n]
        # one step per batch of the smaller half
        self.steps = min(math.ceil(len(self.x_w) / c["batch_size"]), math.ceil(len(self.x_a) / c["batch_size"]))
        if self.steps < self.min_steps:
            raise SearchError(f"{self.algorithm} needs at least {self.min_steps} batches an epoch, but {n} search "
                              f"images give {len(self.x_w)} for w and {len(self.x_a)} for alpha: "
                              f"{self.steps} of batch_size={c['batch_size']}")
        return dataset

    def _build(self, dataset) -> None:
        c = self.config
        torch.manual_seed(c["seed"])
        self.generator = torch.Generator().manual_seed(c["seed"])
        self.supernet = Supernet(c["channels"], c["layers"], dataset.num_classes)
        self.model = NormalizedNet(self.supernet, dataset.mean, dataset.std).to(self.device)
        self.w_optimizer = torch.optim.SGD(self.supernet.weights(), lr=c["w_lr"], momentum=c["w_momentum"],
                                           weight_decay=c["w_weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optimizer, c["epochs"],
                                                                    eta_min=c["w_lr_min"])
        self.alpha_optimizer = torch.optim.Adam(self.supernet.arch_parameters(), lr=c["alpha_lr"],
                                                betas=tuple(c["alpha_betas"]),
                                                weight_decay=c["alpha_weight_decay"])
        self.history: list[dict] = []

    # ----- checkpoints
    def _state(self) -> dict:
        return {}

    def _load_state(self, state: dict) -> None:
        pass

    def _save(self, epoch: int) -> None:
        checkpoint = dict(format=CHECKPOINT_FORMAT, algorithm=self.algorithm, epoch=epoch, config=self.config,
                          model=self.model.state_dict(), w_optimizer=self.w_optimizer.state_dict(),
                          alpha_optimizer=self.alpha_optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                          rng=dict(torch=torch.get_rng_state(), data=self.generator.get_state(),
                                   cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []),
                          method=self._state(), history=self.history, torch_version=torch.__version__)
        write_atomic(self.folder / "checkpoint.pt", lambda stream: torch.save(checkpoint, stream))

    def _restore(self, checkpoint: dict) -> int:
        self.model.load_state_dict(checkpoint["model"])
        self.w_optimizer.load_state_dict(checkpoint["w_optimizer"])
        self.alpha_optimizer.load_state_dict(checkpoint["alpha_optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        self.generator.set_state(checkpoint["rng"]["data"])
        if checkpoint["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        self._load_state(checkpoint["method"])
        self.history = checkpoint["history"]
        return checkpoint["epoch"]

    # ----- an epoch
    def _run_epoch(self, epoch: int) -> None:
        c = self.config
        started = time.perf_counter()
        warmup = epoch < c["warmup_epochs"]
        lr = self.w_optimizer.param_groups[0]["lr"]
        self.model.train()
        pairs = self._batches()
        values = self._warmup_epoch(pairs) if warmup else self._search_epoch(pairs)
        self.scheduler.step()
        epoch_s = time.perf_counter() - started
        elapsed = (self.history[-1]["elapsed_s"] if self.history else 0.0) + epoch_s
        genotype = str(self.supernet.genotype())
        self.history.append(dict(epoch=epoch + 1, phase="warm-up" if warmup else "search", lr=lr, **values,
                                 genotype=genotype, epoch_s=epoch_s, elapsed_s=elapsed))
        self._save(epoch + 1)
        write_progress(self.folder, self.history, self.metrics)
        write_alpha(self.folder, self.supernet, f"{self.algorithm} ({c['variant']}), epoch {epoch + 1}")
        remaining = (c["epochs"] - epoch - 1) * elapsed / len(self.history)
        shown = "  ".join(f"{k} {values[k]:.4g}" for k in self.metrics if k in values)
        self.log(f"epoch {epoch + 1}/{c['epochs']} [{self.history[-1]['phase']}]  {shown}  lr {lr:.4g}  "
                 f"elapsed {format_seconds(elapsed)}  ETA {format_seconds(remaining)}\n  {genotype}")

    def _batches(self) -> list[tuple]:
        """This epoch's ((x_w, y_w), (x_a, y_a)) pairs: both halves reshuffled (and augmented) from
        the data generator, so that the order is part of the resumable state."""
        c = self.config
        order_w = torch.randperm(len(self.x_w), generator=self.generator)
        order_a = torch.randperm(len(self.x_a), generator=self.generator)
        pairs = []
        for step in range(self.steps):
            batch = slice(step * c["batch_size"], (step + 1) * c["batch_size"])
            pairs.append((self._batch(self.x_w, self.y_w, order_w[batch]),
                          self._batch(self.x_a, self.y_a, order_a[batch])))
        return pairs

    def _batch(self, images, labels, index) -> tuple:
        x, y = images[index], labels[index]
        if self.config["augment"]:
            x = augment_batch(x, self.generator)
        return x.to(self.device), y.to(self.device)

    def _warmup_epoch(self, pairs: list) -> dict:
        """w alone, by the method's own update of w, on every batch of the training half."""
        averages = Averages()
        for train, _ in pairs:
            self._weight_update(train, averages)
        return averages.means()

    # ----- the method's mathematics: what each method defines
    @abstractmethod
    def _weight_update(self, batch: tuple, averages: Averages) -> None:
        """One update of w on a batch of the training half, its values added to ``averages``."""

    @abstractmethod
    def _search_epoch(self, pairs: list) -> dict:
        """An epoch after the warm-up: the method's alternation of α and w; returns its values."""

    # ----- the two kinds of update
    def weight_step(self, loss: torch.Tensor) -> None:
        """One momentum-SGD step of w on ``loss`` (gradients clipped as DARTS does); α untouched."""
        self.supernet.zero_grad(set_to_none=True)
        loss.backward()
        if self.config["grad_clip"]:
            nn.utils.clip_grad_norm_(self.supernet.weights(), self.config["grad_clip"])
        self.w_optimizer.step()

    def alpha_step(self, loss: torch.Tensor) -> None:
        """One Adam step of α on ``loss``; w untouched."""
        self.supernet.zero_grad(set_to_none=True)
        loss.backward()
        self.alpha_optimizer.step()

    def cross_entropy(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return F.cross_entropy(logits, y), logits

    def _resources(self) -> dict:
        peak = dict(peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
        if self.device.type == "cuda":
            peak["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 20, 1)
        return dict(peak, estimate=self.memory.as_dict())
