"""Standard, PGD and TRADES training of an evaluation network, resumable bit for bit.

A run folder holds ``checkpoint.pt`` (rewritten atomically after every epoch), the resolved
``config.yaml``, ``history.csv``, ``curves.png``, ``train.log`` and, when the run ends,
``result.json``. The checkpoint is self-describing: it records the architecture (genotype
text or ``resnet18``) and the network settings, so :func:`load_model` rebuilds the model
without the config that trained it.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas_problem.files import format_seconds, write_atomic, write_csv, write_yaml
from nas_problem import Genotype, GenotypeError, load_genotypes, space_of

from .datasets import NormalizedNet
from .runtime import resolve_device
from .settings import as_int, as_number

CHECKPOINT_FORMAT = 1
METHODS = ("standard", "pgd", "trades")
MANUAL_ARCHS = ("resnet18",)
PICKS = ("best_rscore", "knee")

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


class TrainingError(ValueError):
    """Bad training input (unknown method, missing architecture, conflicting resume)."""


class CheckpointError(TrainingError):
    """A checkpoint that cannot be read or does not fit the architecture it is loaded into."""


# --------------------------------------------------------------------------- small parsers
def use_amp(setting, device: torch.device) -> bool:
    """Mixed precision only where it pays and is supported: on CUDA."""
    if setting in ("auto", None):
        return device.type == "cuda"
    if not isinstance(setting, bool):
        raise TrainingError(f"amp: expected auto, true or false, got {setting!r}")
    return setting and device.type == "cuda"


# --------------------------------------------------------------------------- architectures
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


def _genotype_from_value(value, genotypes_file) -> tuple[Genotype, str]:
    """A genotype given as DARTS text, JSON text (or the mapping YAML made of it), or a name."""
    if isinstance(value, dict):
        genotype = Genotype.from_json(value)
        return genotype, "genotype-" + hashlib.sha1(genotype.key().encode()).hexdigest()[:8]
    text = str(value).strip()
    if text.startswith("Genotype") or text.startswith("{"):
        genotype = Genotype.parse(text)
        return genotype, "genotype-" + hashlib.sha1(genotype.key().encode()).hexdigest()[:8]
    if not genotypes_file:
        raise TrainingError(f"genotype {text!r} is neither DARTS/JSON genotype text nor a name "
                            "looked up in a file (give genotypes_file=PATH)")
    path = Path(str(genotypes_file)).expanduser()
    if not path.is_file():
        raise TrainingError(f"genotypes_file not found: {path}")
    try:
        known = load_genotypes(str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainingError(f"{path}: not a JSON genotype file ({error})") from None
    if text not in known:
        raise GenotypeError(f"unknown genotype name {text!r} in {path} (known: {', '.join(sorted(known))})")
    return known[text], text


def _genotype_from_run(run_dir, pick) -> tuple[Genotype, str]:
    if pick not in PICKS:
        raise TrainingError(f"pick must be one of {', '.join(PICKS)}, got {pick!r}")
    folder = Path(str(run_dir)).expanduser()
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise TrainingError(f"from_run: no summary.json in {folder} (is it a finished search run folder?)")
    try:
        summary = json.loads(summary_path.read_text())
        record = summary[pick]
        genotype = record["genotype"]
    except json.JSONDecodeError as error:
        raise TrainingError(f"{summary_path}: not valid JSON ({error})") from None
    except (KeyError, TypeError):
        raise TrainingError(f"{summary_path} has no {pick!r} genotype") from None
    genotype = Genotype.from_json(genotype) if isinstance(genotype, dict) else Genotype.parse(str(genotype))
    parts = [p for p in folder.resolve().parts[-3:] if p]
    return genotype, "-".join(parts + [pick])


def resolve_architecture(config: dict) -> tuple[str, Genotype | None, str]:
    """(arch, genotype or None, default name) from exactly one of genotype=, from_run=, arch=."""
    arch = config.get("arch")
    given = [key for key in ("genotype", "from_run") if config.get(key) not in (None, "")]
    if arch not in (None, "", "darts"):
        if arch not in MANUAL_ARCHS:
            raise TrainingError(f"unknown arch {arch!r} (known: darts, {', '.join(MANUAL_ARCHS)})")
        if given:
            raise TrainingError(f"give either arch={arch} or {given[0]}=, not both")
        return arch, None, arch
    if len(given) != 1:
        raise TrainingError("say what to train: exactly one of genotype=<text|name>, from_run=<search run folder> "
                            "or arch=resnet18" + (" (got both genotype= and from_run=)" if given else ""))
    if given[0] == "genotype":
        genotype, name = _genotype_from_value(config["genotype"], config.get("genotypes_file"))
    else:
        genotype, name = _genotype_from_run(config["from_run"], config.get("pick", "best_rscore"))
    return "darts", genotype, name


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


# --------------------------------------------------------------------------- checkpoints
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


# --------------------------------------------------------------------------- data
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


def load_data(config: dict):
    from evaluation.datasets import load_dataset
    dataset = load_dataset(config["dataset"], root=config.get("root"), download=bool(config.get("download")),
                           data_path=config.get("data_path"))
    for key, split in (("n_train", "x_train"), ("n_test", "x_test")):
        n = as_int(config.get(key), key, minimum=1, allow_none=True)
        if n is not None and n > len(getattr(dataset, split)):
            raise TrainingError(f"{key}={n}, but {dataset.name} has only {len(getattr(dataset, split))} "
                                f"{split.split('_')[1]} images")
    n_train, n_test = config.get("n_train"), config.get("n_test")
    return (dataset, dataset.x_train[:n_train], dataset.y_train[:n_train],
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
    """One training run: build, (re)load, loop over epochs, write the run folder."""

    def __init__(self, config: dict, resume: bool = False, log=print, callback=None):
        self.config = check_config(config)
        self.resume = resume
        self.log_line = log
        self.callback = callback

    # -- helpers
    def log(self, text: str) -> None:
        self.log_line(text)
        with open(self.out_dir / "train.log", "a") as stream:
            stream.write(text + "\n")

    def _spec(self, arch, genotype, name, dataset) -> ModelSpec:
        c = self.config
        darts = arch == "darts"
        return ModelSpec(arch=arch, name=name, genotype=str(genotype) if darts else None,
                         channels=c["channels"] if darts else None, layers=c["layers"] if darts else None,
                         auxiliary=bool(c["auxiliary"]) if darts else False, num_classes=dataset.num_classes,
                         mean=tuple(float(v) for v in dataset.mean), std=tuple(float(v) for v in dataset.std))

    def _check_resumable(self, checkpoint: dict, spec: ModelSpec) -> None:
        saved_spec = ModelSpec(**checkpoint["spec"])
        if not saved_spec.same_architecture(spec):
            raise CheckpointError(f"{checkpoint['path']} holds {saved_spec.describe()}"
                                  f"{' ' + saved_spec.genotype if saved_spec.genotype else ''}; "
                                  f"cannot resume it as {spec.describe()}")
        saved = checkpoint["config"]
        changed = sorted(k for k in saved if k not in RESUME_FREE_KEYS | {"genotype", "from_run", "pick", "arch"}
                         and saved.get(k) != self.config.get(k))
        if changed:
            k = changed[0]
            raise TrainingError(f"--resume: {k} was {saved[k]!r} in the interrupted run, now {self.config[k]!r} "
                                "(resume with the same settings, or start a new out_dir)")

    def run(self) -> dict:
        c = self.config
        if c["threads"]:
            torch.set_num_threads(c["threads"])
        device = resolve_device(c["device"])
        amp = use_amp(c["amp"], device)
        arch, genotype, default_name = resolve_architecture(c)
        name = c["name"] or default_name
        self.out_dir = Path(c["out_dir"]) if c["out_dir"] else default_out_dir(name, c["method"], c["seed"])
        dataset, x_train, y_train, x_test, y_test = load_data(c)
        spec = self._spec(arch, genotype, name, dataset)
        self.spec_name = spec.name
        checkpoint_path = self.out_dir / "checkpoint.pt"

        checkpoint = None
        if checkpoint_path.exists():
            if self.resume:
                checkpoint = read_checkpoint(checkpoint_path)
                self._check_resumable(checkpoint, spec)
            elif not c["overwrite"]:
                raise TrainingError(f"{self.out_dir} already holds a checkpoint: pass --resume to continue it, "
                                    "overwrite=true to start again, or another out_dir")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            (self.out_dir / "train.log").unlink(missing_ok=True)
            if self.resume:
                self.log(f"--resume: no checkpoint in {self.out_dir} yet, starting from epoch 0")

        torch.manual_seed(c["seed"])
        np.random.seed(c["seed"])
        random.seed(c["seed"])
        generator = torch.Generator().manual_seed(c["seed"])
        model = build_model(spec).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=c["lr"], momentum=c["momentum"],
                                    weight_decay=c["weight_decay"])
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=c["milestones"], gamma=c["gamma"])
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        history: list[dict] = []
        start_epoch = 0
        if checkpoint is not None:
            load_weights(model, checkpoint["model"], spec.describe(), checkpoint["path"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            if checkpoint.get("scaler"):
                scaler.load_state_dict(checkpoint["scaler"])
            _restore_rng(checkpoint["rng"], generator)
            history = checkpoint["history"]
            start_epoch = checkpoint["epoch"]


        self.write_config(spec)
        params, flops = model_cost(spec)
        if checkpoint is None:
            self.log(f"training {spec.describe()} on {dataset.name} ({len(x_train)} train / {len(x_test)} test "
                     f"images) with {c['method']} training, {c['epochs']} epochs, {params:.3f} M params, "
                     f"{flops:.1f} M FLOPs, device {device}{' (mixed precision)' if amp else ''} -> {self.out_dir}")
        else:
            self.log(f"resuming {spec.describe()} after epoch {start_epoch}/{c['epochs']} from {checkpoint_path}")
        if device.type == "cuda":
            # a resumed run must pick the same convolution algorithms as an uninterrupted one
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

        attack = self._training_attack(model)
        n_eval = len(x_test) if c["eval_n"] is None else min(c["eval_n"], len(x_test))
        x_eval, y_eval = x_test[:n_eval], y_test[:n_eval]
        for epoch in range(start_epoch, c["epochs"]):
            started = time.perf_counter()
            if spec.arch == "darts":
                model.body.drop_path_prob = c["drop_path_prob"] * epoch / c["epochs"]
            lr = optimizer.param_groups[0]["lr"]
            loss, train_acc = self._train_epoch(model, attack, optimizer, scaler, generator, x_train, y_train,
                                                device, amp, spec)
            scheduler.step()
            clean, robust = self._evaluate(model, x_eval, y_eval, epoch, device)
            epoch_s = time.perf_counter() - started
            elapsed = (history[-1]["elapsed_s"] if history else 0.0) + epoch_s
            history.append(dict(epoch=epoch + 1, lr=lr, train_loss=loss, train_acc=train_acc, clean_acc=clean,
                                robust_acc=robust, epoch_s=epoch_s, elapsed_s=elapsed))
            self.save_checkpoint(checkpoint_path, epoch + 1, spec, model, optimizer, scheduler, scaler, amp,
                                 generator, history)
            self.write_curves(history)
            remaining = (c["epochs"] - epoch - 1) * elapsed / len(history)
            robust_text = f"PGD-{c['eval_steps']} {robust:5.2f}%" if robust is not None else "PGD n/a"
            self.log(f"epoch {epoch + 1}/{c['epochs']}  loss {loss:.4f}  train acc {train_acc:5.2f}%  "
                     f"clean {clean:5.2f}%  {robust_text}  lr {lr:g}  "
                     f"elapsed {format_seconds(elapsed)}  ETA {format_seconds(remaining)}")
            if self.callback is not None:
                self.callback(epoch + 1)
        if start_epoch >= c["epochs"]:
            self.log(f"nothing to do: the run already finished {start_epoch} epochs")
            self.write_curves(history)
        last = history[-1]
        result = dict(name=spec.name, arch=spec.arch, genotype=spec.genotype, method=c["method"],
                      dataset=dataset.name, epochs=len(history), params_m=params, flops_m=flops,
                      clean_acc=last["clean_acc"], robust_acc=last["robust_acc"],
                      robust_attack=f"PGD-{c['eval_steps']}", eval_examples=n_eval,
                      train_seconds=last["elapsed_s"], checkpoint=str(checkpoint_path), spec=asdict(spec))
        write_atomic(self.out_dir / "result.json", json.dumps(result, indent=2) + "\n")
        self.log(f"done: clean {last['clean_acc']:.2f}%, PGD-{c['eval_steps']} "
                 f"{last['robust_acc'] if last['robust_acc'] is not None else float('nan'):.2f}% on {n_eval} test "
                 f"images; checkpoint {checkpoint_path}")
        return result

    # -- pieces of an epoch
    def _training_attack(self, model):
        import torchattacks
        c = self.config
        if c["method"] == "pgd":
            return torchattacks.PGD(model, eps=c["eps"], alpha=c["alpha"], steps=c["steps"], random_start=True)
        if c["method"] == "trades":
            # TPGD maximises KL(f(x') || f(x)), the TRADES inner problem
            return torchattacks.TPGD(model, eps=c["eps"], alpha=c["alpha"], steps=c["steps"])
        return None

    def _loss(self, model, adversarial, x, y, spec):
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

    def _train_epoch(self, model, attack, optimizer, scaler, generator, x_train, y_train, device, amp, spec):
        c = self.config
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for start in range(0, len(order), c["batch_size"]):
            index = order[start:start + c["batch_size"]]
            x, y = x_train[index], y_train[index]
            if c["augment"]:
                x = augment_batch(x, generator)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            # the attack stays in float32: under fp16 autocast its input gradient underflows
            # and sign(0) leaves those pixels unattacked, silently weakening the training attack
            adversarial = attack(x, y) if attack is not None else None
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss, logits = self._loss(model, adversarial, x, y, spec)
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

    def _evaluate(self, model, x_eval, y_eval, epoch, device):
        """Clean and PGD accuracy on the monitoring images, under its own seeded RNG so that
        monitoring neither draws from nor depends on the training stream."""
        c = self.config
        if len(x_eval) == 0:
            return float("nan"), None
        import torchattacks

        from .attacks import run_attack
        pgd = torchattacks.PGD(model, eps=c["eps"], alpha=c["alpha"], steps=c["eval_steps"], random_start=True)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(c["seed"] * 1000 + epoch)
            clean = run_attack(model, None, x_eval, y_eval)[0]["accuracy"]
            robust = run_attack(model, pgd, x_eval, y_eval)[0]["accuracy"]
        return clean, robust

    # -- files of the run folder
    def write_config(self, spec: ModelSpec) -> None:
        config = {k: v for k, v in self.config.items()}
        config["resolved_name"] = spec.name
        config["resolved_genotype"] = spec.genotype
        write_yaml(self.out_dir / "config.yaml", config)

    def save_checkpoint(self, path, epoch, spec, model, optimizer, scheduler, scaler, amp, generator, history):
        checkpoint = dict(format=CHECKPOINT_FORMAT, epoch=epoch, spec=asdict(spec), config=self.config,
                          model=model.state_dict(), optimizer=optimizer.state_dict(),
                          scheduler=scheduler.state_dict(), scaler=scaler.state_dict() if amp else None,
                          rng=_rng_state(generator), history=history, torch_version=torch.__version__)
        write_atomic(path, lambda stream: torch.save(checkpoint, stream))

    def write_curves(self, history: list) -> None:
        write_csv(self.out_dir / "history.csv", history, HISTORY_FIELDS)
        plot_curves(history, self.out_dir / "curves.png", f"{self.spec_name}: {self.config['method']} training",
                    f"PGD-{self.config['eval_steps']}")


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
