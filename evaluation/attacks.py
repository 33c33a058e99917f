"""White-box attack evaluation and the transfer (black-box) matrix of trained checkpoints.

Every attack is torchattacks' own (docs/design.md §10); models take images in [0, 1] and normalise
inside, so the attacks' ε is in pixel units. Results: a JSON report, a markdown table shaped
like the TRNAS paper's Table 2 (plus the harmonic robustness score) and, for several
checkpoints, a markdown transfer matrix like its Tables 4-5.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from nas_problem.files import check_folder, make_folder, write_atomic

from .checkpoints import CheckpointError, load_model, model_cost
from .datasets import load_dataset
from .runtime import resolve_device
from .settings import TrainingError, as_int, as_names, as_number

ATTACK_NAMES = ("fgsm", "pgd20", "pgd100", "cw", "autoattack")
LABELS = {"clean": "Clean", "fgsm": "FGSM", "pgd20": "PGD-20", "pgd100": "PGD-100", "cw": "CW",
          "autoattack": "AutoAttack"}
_ALIASES = {"aa": "autoattack", "auto": "autoattack", "cwl2": "cw"}

ATTACK_DEFAULTS = dict(
    checkpoints=[], names=None, attacks=list(ATTACK_NAMES), n_examples=None, autoattack_n=None,
    transfer=True, transfer_attack="pgd20",
    eps="8/255", alpha="2/255", cw_c=0.5, cw_steps=100, cw_lr=0.01, batch_size=128,
    dataset=None, data_path=None, root=None, download=False,
    seed=0, device="auto", threads=None, out_dir=None,
)


class AttackError(TrainingError):
    """Bad attack-evaluation input (unknown attack name, no checkpoints, mismatched data sets)."""


def parse_attacks(value) -> list[str]:
    """Attack names from a list or comma-separated text, spelt loosely (``PGD-20``, ``AA``)."""
    if value is None:
        return list(ATTACK_NAMES)
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = []
    for item in items:
        key = re.sub(r"[\s_\-]", "", str(item).lower())
        key = _ALIASES.get(key, key)
        if key not in ATTACK_NAMES:
            raise AttackError(f"unknown attack {item!r} (known: {', '.join(ATTACK_NAMES)})")
        if key not in names:
            names.append(key)
    return names


def make_attack(name: str, model, eps=8 / 255, alpha=2 / 255, cw_c=0.5, cw_steps=100, cw_lr=0.01,
                n_classes=10, seed=0):
    """The torchattacks object for one of :data:`ATTACK_NAMES`."""
    import torchattacks
    if name == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    if name in ("pgd20", "pgd100"):
        return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=int(name[3:]), random_start=True)
    if name == "cw":
        return torchattacks.CW(model, c=cw_c, kappa=0, steps=cw_steps, lr=cw_lr)
    if name == "autoattack":
        return torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=n_classes,
                                       seed=seed)
    raise AttackError(f"unknown attack {name!r} (known: {', '.join(ATTACK_NAMES)})")


def hrs(clean: float, robust: float) -> float:
    """Harmonic robustness score 2·C·R/(C+R) of clean and robust accuracy (same units as given)."""
    return 0.0 if clean + robust <= 0 else 2.0 * clean * robust / (clean + robust)


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _correct(model, images, labels) -> torch.Tensor:
    return model(images).argmax(1) == labels


def run_attack(model, attack, images, labels, batch_size=128) -> tuple[dict, torch.Tensor]:
    """Accuracy of ``model`` under ``attack`` (None: clean) in percent, with perturbation sizes.
    Returns (record, adversarial images on the CPU)."""
    device = _device_of(model)
    model.eval()
    started = time.perf_counter()
    correct = 0
    linf = l2 = 0.0
    adversarial = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device)
        x_adv = x if attack is None else attack(x, y).detach()
        correct += _correct(model, x_adv, y).sum().item()
        delta = (x_adv - x).flatten(1)
        linf = max(linf, delta.abs().max().item() if len(delta) else 0.0)
        l2 = max(l2, delta.norm(dim=1).max().item() if len(delta) else 0.0)
        adversarial.append(x_adv.cpu())
    record = dict(accuracy=100.0 * correct / max(len(images), 1), n=len(images), max_linf=linf, max_l2=l2,
                  seconds=time.perf_counter() - started)
    return record, torch.cat(adversarial) if adversarial else images[:0]


def evaluate_model(model, images, labels, attacks, eps=8 / 255, alpha=2 / 255, cw_c=0.5, cw_steps=100,
                   cw_lr=0.01, n_classes=10, seed=0, batch_size=128, autoattack_n=None, log=None) -> dict:
    """{"clean": record, attack name: record, ...}; each attack starts from ``seed`` so that
    results do not depend on which other attacks ran before it."""
    results = {"clean": run_attack(model, None, images, labels, batch_size)[0]}
    if log:
        log(f"  {'Clean':<10} {results['clean']['accuracy']:6.2f}%  ({len(images)} images)")
    for name in attacks:
        torch.manual_seed(seed)
        attack = make_attack(name, model, eps=eps, alpha=alpha, cw_c=cw_c, cw_steps=cw_steps, cw_lr=cw_lr,
                             n_classes=n_classes, seed=seed)
        n = len(images) if name != "autoattack" or autoattack_n is None else min(autoattack_n, len(images))
        results[name] = run_attack(model, attack, images[:n], labels[:n], batch_size)[0]
        if log:
            log(f"  {LABELS[name]:<10} {results[name]['accuracy']:6.2f}%  ({n} images, "
                f"{results[name]['seconds']:.1f}s)")
    return results


def transfer_matrix(models, images, labels, attack="pgd20", eps=8 / 255, alpha=2 / 255, cw_c=0.5, cw_steps=100,
                    cw_lr=0.01, n_classes=10, seed=0, batch_size=128, log=None) -> list[list[float]]:
    """``matrix[i][j]``: accuracy (%) of model j on adversarial examples made on model i
    (rows: source, columns: target; the diagonal is the white-box accuracy)."""
    matrix = []
    for i, source in enumerate(models):
        torch.manual_seed(seed)
        maker = make_attack(attack, source, eps=eps, alpha=alpha, cw_c=cw_c, cw_steps=cw_steps, cw_lr=cw_lr,
                            n_classes=n_classes, seed=seed)
        _, adversarial = run_attack(source, maker, images, labels, batch_size)
        row = [run_attack(target, None, adversarial, labels, batch_size)[0]["accuracy"] for target in models]
        matrix.append(row)
        if log:
            log(f"  transfer from model {i + 1}/{len(models)} done")
    return matrix


# --------------------------------------------------------------------------- tables
def _cell(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown_table(models: list[dict], attacks: list[str]) -> str:
    """Rows shaped like the TRNAS paper's Table 2, accuracies in %."""
    header = ["Model", "Params (M)", "FLOPs (M)", "Clean"] + [LABELS[a] for a in attacks] + ["HRS"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for m in models:
        cells = [m["name"], f"{m['params_m']:.3f}", f"{m['flops_m']:.1f}", _cell(m["accuracy"]["clean"])]
        cells += [_cell(m["accuracy"].get(a)) for a in attacks]
        cells.append(_cell(m.get("hrs")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_transfer(names: list[str], matrix: list[list[float]], attack: str) -> str:
    """Source rows, target columns; the diagonal (white-box) is shown as '-' as in the paper."""
    lines = ["| Source \\ Target | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for i, name in enumerate(names):
        cells = ["-" if i == j else f"{value:.2f}" for j, value in enumerate(matrix[i])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nAccuracy (%) of each target model on {LABELS[attack]} adversarial examples " \
                              f"made on the source model.\n"


# --------------------------------------------------------------------------- the command's work
def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def _check(config: dict) -> dict:
    unknown = set(config) - set(ATTACK_DEFAULTS)
    if unknown:
        raise AttackError(f"unknown attack setting(s): {', '.join(sorted(unknown))}")
    c = dict(config)
    if not c["checkpoints"]:
        raise AttackError("no checkpoints given (checkpoints=A,B or checkpoints=[A, B])")
    c["checkpoints"] = as_names(c["checkpoints"], "checkpoints")
    c["attacks"] = parse_attacks(c["attacks"])
    c["transfer_attack"] = parse_attacks([c["transfer_attack"]])[0]
    for key in ("eps", "alpha", "cw_c", "cw_lr"):
        c[key] = as_number(c[key], key)
    for key, low in (("cw_steps", 1), ("batch_size", 1), ("seed", 0)):
        c[key] = as_int(c[key], key, minimum=low)
    for key in ("n_examples", "autoattack_n", "threads"):
        c[key] = as_int(c[key], key, minimum=1, allow_none=True)
    if c["out_dir"] is not None:
        check_folder(str(c["out_dir"]))
    names = c["names"]
    if names is not None:
        names = [names] if isinstance(names, str) else list(names)
        if len(names) != len(c["checkpoints"]):
            raise AttackError(f"names: {len(names)} given for {len(c['checkpoints'])} checkpoints")
        c["names"] = [str(n) for n in names]
    return c


def _model_names(specs, checkpoints, given) -> list[str]:
    if given:
        return given
    names = [spec.name for spec in specs]
    if len(set(names)) < len(names):
        names = [f"{spec.name} ({ck['config'].get('method', '?')})" for spec, ck in zip(specs, checkpoints)]
    if len(set(names)) < len(names):
        names = [f"{name} #{i + 1}" for i, name in enumerate(names)]
    return names


def _test_set(c: dict, checkpoints: list):
    trained_on = {(ck["config"].get("dataset"), ck["config"].get("data_path")) for ck in checkpoints}
    if c["dataset"] is None:
        if len(trained_on) > 1:
            raise AttackError("the checkpoints were trained on different data sets; say which test set to use "
                              "with dataset= (and data_path=)")
        dataset_name, data_path = next(iter(trained_on))
        data_path = c["data_path"] or data_path
        root = c["root"] if c["root"] is not None else checkpoints[0]["config"].get("root")
    else:
        dataset_name, data_path, root = c["dataset"], c["data_path"], c["root"]
    dataset = load_dataset(dataset_name, root=root, download=bool(c["download"]), data_path=data_path)
    n_total = len(dataset.x_test)
    if c["n_examples"] is None or c["n_examples"] >= n_total:
        index = torch.arange(n_total)
    else:
        # a seeded random subset, sorted so that batches follow the test set's order
        index = torch.randperm(n_total, generator=torch.Generator().manual_seed(c["seed"]))[:c["n_examples"]]
        index = index.sort().values
    return dataset, dataset.x_test[index], dataset.y_test[index]


def load_checkpoints(c: dict, device) -> tuple:
    """(models, specs, checkpoints) of ``c["checkpoints"]``, refused unless they predict one number
    of classes."""
    loaded = [load_model(path, device) for path in c["checkpoints"]]
    models, specs, checkpoints = ([item[i] for item in loaded] for i in range(3))
    classes = {s.num_classes for s in specs}
    if len(classes) > 1:
        raise AttackError(f"the checkpoints predict different numbers of classes: {sorted(classes)}")
    return models, specs, checkpoints


def model_report(model, spec, checkpoint, name, images, labels, c: dict, knobs: dict, log) -> dict:
    """One model's row of the report: its size and its accuracy under every attack."""
    log(f"{name}  [{checkpoint['path']}]")
    params, flops = model_cost(spec)
    results = evaluate_model(model, images, labels, c["attacks"], autoattack_n=c["autoattack_n"], log=log, **knobs)
    accuracy = {k: v["accuracy"] for k, v in results.items()}
    score = hrs(accuracy["clean"], accuracy["pgd20"]) if "pgd20" in accuracy else None
    return dict(name=name, checkpoint=checkpoint["path"], arch=spec.arch, genotype=spec.genotype,
                channels=spec.channels, layers=spec.layers, method=checkpoint["config"].get("method"),
                epochs_trained=checkpoint["epoch"], params_m=params, flops_m=flops, accuracy=accuracy, hrs=score,
                details=results)


def table_text(reports, c: dict, n_images: int, dataset_name: str) -> str:
    notes = [f"Accuracy (%) on {n_images} {dataset_name} test images (seed {c['seed']}); "
             f"HRS = 2·Clean·PGD-20/(Clean + PGD-20)."]
    if "autoattack" in c["attacks"] and c["autoattack_n"] and c["autoattack_n"] < n_images:
        notes.append(f"AutoAttack on the first {c['autoattack_n']} of these images.")
    return markdown_table(reports, c["attacks"]) + "\n" + " ".join(notes) + "\n"


def attack_checkpoints(config: dict, log=print) -> dict:
    """Evaluate checkpoints under the chosen attacks (and each other's transferred examples);
    writes ``attack.json``, ``table.md`` and (several checkpoints) ``transfer.md`` to ``out_dir``."""
    c = _check({**ATTACK_DEFAULTS, **config})
    if c["threads"]:
        torch.set_num_threads(c["threads"])
    device = resolve_device(c["device"])
    models, specs, checkpoints = load_checkpoints(c, device)
    dataset, images, labels = _test_set(c, checkpoints)
    if dataset.num_classes != specs[0].num_classes:
        raise CheckpointError(f"the models predict {specs[0].num_classes} classes but {dataset.name} has "
                              f"{dataset.num_classes}")
    names = _model_names(specs, checkpoints, c["names"])
    out_dir = Path(c["out_dir"]) if c["out_dir"] else \
        Path("runs") / "attack" / _sanitize("+".join(names))[:120] / f"seed{c['seed']}"
    make_folder(out_dir)  # before the attacks, which may take hours
    knobs = dict(eps=c["eps"], alpha=c["alpha"], cw_c=c["cw_c"], cw_steps=c["cw_steps"], cw_lr=c["cw_lr"],
                 n_classes=specs[0].num_classes, seed=c["seed"], batch_size=c["batch_size"])
    log(f"attacking {len(models)} model(s) on {len(images)} {dataset.name} test images "
        f"({', '.join(LABELS[a] for a in c['attacks']) or 'clean only'}; eps {c['eps']:.5f}) on {device}")
    reports = [model_report(*entry, images, labels, c, knobs, log) for entry in zip(models, specs, checkpoints, names)]
    report = dict(dataset=dataset.name, n_examples=len(images), seed=c["seed"], device=str(device),
                  settings={k: c[k] for k in ("eps", "alpha", "cw_c", "cw_steps", "cw_lr", "autoattack_n")},
                  attacks=c["attacks"], models=reports)
    table = table_text(reports, c, len(images), dataset.name)
    log("")
    log(table)
    outputs = {"table": str(out_dir / "table.md"), "json": str(out_dir / "attack.json")}
    if c["transfer"] and len(models) > 1:
        log(f"transfer matrix ({LABELS[c['transfer_attack']]} examples from each source model)")
        matrix = transfer_matrix(models, images, labels, attack=c["transfer_attack"], log=log, **knobs)
        report["transfer"] = dict(attack=c["transfer_attack"], sources=names, targets=names, accuracy=matrix)
        transfer_text = markdown_transfer(names, matrix, c["transfer_attack"])
        log(transfer_text)
        write_atomic(out_dir / "transfer.md", transfer_text)
        outputs["transfer"] = str(out_dir / "transfer.md")
    write_atomic(out_dir / "table.md", table)
    report["outputs"] = outputs
    write_atomic(out_dir / "attack.json", json.dumps(report, indent=2) + "\n")
    log(f"wrote {', '.join(outputs.values())}")
    return report
