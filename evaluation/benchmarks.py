"""Readers of robustness benchmarks: ground truth that ranks proxies (``trnas correlate``).

Every reader returns a list of records ``{"id", "genotype", "clean_acc", "robust_acc",
"trained_network"}`` (accuracies in %, genotype a DARTS ``Genotype`` or an ``NB201Genotype``,
``trained_network`` the size settings of the network the benchmark trained, for the space's
``count_params``: ``{}`` is the space's evaluation network). Three layouts:

- tiny-RobustBench: a JSON list of training records (``net.genotype``, ``net.width``,
  ``net.depth``, ``max_test_top1_original``, ``max_test_top1_adv``) — DARTS space, PGD-7
  ε = 8/255, networks of C = 16 channels and 8 cells.
- Jung et al. (ICLR 2023) NAS-Bench-201 robustness dataset: a folder with ``meta.json``
  (``ids`` mapping an id to its architecture string, or to ``{"nb201-string": ...}``; optional
  ``epsilons`` per attack key) and, per data set (``<root>/<dataset>/`` or ``<root>/``),
  ``{key}_accuracy.json`` files for keys such as ``clean``, ``fgsm@Linf``, ``pgd@Linf``,
  ``aa_apgd-ce@Linf``, holding one value or a list of values (one per ε) per id, possibly
  nested under ``{dataset: {key: {"accuracy": ...}}}``. Default robust metric:
  ``pgd@Linf`` at the ε closest to 8/255 (the adversarial-training radius of the other two
  benchmarks) when ``meta.json`` lists the ε values, else the largest ε (last entry).
- NAS-RobBench-201: a folder with ``meta.json`` (ids -> architecture strings) and one
  results JSON per data set (``<dataset>.json``) mapping an id to ``{metric: value}`` (or a
  metric to ``{id: value}``). Default metrics: ``val_clean_acc`` and ``val_pgd_3.0_acc``.
"""
from __future__ import annotations

import json
from pathlib import Path

from nas_problem.genotype import Genotype, GenotypeError
from nas_problem.nb201 import NB201Genotype


# the robust accuracy each layout reports unless robust_metric= names another
ROBUST_METRICS = {"tiny_robustbench": "max_test_top1_adv", "jung": "pgd@Linf", "robbench": "val_pgd_3.0_acc"}


class BenchmarkError(ValueError):
    """A benchmark file or folder that cannot be read as any supported layout."""


def _load_json(path: Path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"benchmark file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise BenchmarkError(f"{path}: not valid JSON ({error})") from None


def _percent(value) -> float:
    """Accuracies as %, whichever unit the file uses (fractions are all <= 1)."""
    value = float(value)
    return value * 100.0 if 0.0 <= value <= 1.0 else value


# ---------------------------------------------------------------- tiny-RobustBench
def read_tiny_robustbench(path) -> list[dict]:
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise BenchmarkError(f"{path}: a tiny-RobustBench file is a JSON list of records")
    records = []
    for i, record in enumerate(data):
        try:
            genotype = Genotype.from_json(record)
            clean, robust = record["max_test_top1_original"], record["max_test_top1_adv"]
            net = record.get("net", {})
            trained = {"channels": int(net.get("width", 16)), "layers": int(net.get("depth", 8))}
        except (KeyError, TypeError, ValueError, GenotypeError) as error:
            raise BenchmarkError(f"{path}: record {i} is not a tiny-RobustBench record ({error})") from None
        records.append({"id": f"seed{record.get('seed', i)}", "genotype": genotype,
                        "clean_acc": float(clean), "robust_acc": float(robust), "trained_network": trained})
    return records


# ---------------------------------------------------------------- NB201 helpers
def _arch_ids(meta: dict, path: Path) -> dict:
    """id -> NB201Genotype from a meta.json in either benchmark's layout."""
    table = meta.get("ids", meta.get("archs", meta.get("arch", meta))) if isinstance(meta, dict) else meta
    if isinstance(table, list):
        table = {str(i): entry for i, entry in enumerate(table)}
    if not isinstance(table, dict):
        raise BenchmarkError(f"{path}: expected 'ids' mapping architecture ids to NB201 strings")
    out = {}
    for arch_id, entry in table.items():
        text = entry
        if isinstance(entry, dict):
            text = next((entry[k] for k in ("nb201-string", "arch", "arch_str", "string") if k in entry), None)
        if not isinstance(text, str) or "~" not in text:
            continue
        try:
            out[str(arch_id)] = NB201Genotype.parse(text)
        except GenotypeError as error:
            raise BenchmarkError(f"{path}: id {arch_id}: {error}") from None
    if not out:
        raise BenchmarkError(f"{path}: no NAS-Bench-201 architecture strings found")
    return out


def _find_id_table(data, ids: set):
    """Descend nested dicts until reaching the mapping keyed by architecture ids."""
    if isinstance(data, dict):
        if ids & set(map(str, data)):
            return {str(k): v for k, v in data.items()}
        if len(data) == 1 or "accuracy" in data:
            inner = data.get("accuracy", next(iter(data.values())))
            return _find_id_table(inner, ids)
    return None


# ---------------------------------------------------------------- Jung et al.
def _jung_values(root: Path, dataset: str, key: str, ids: set) -> dict:
    for folder in (root / dataset, root):
        candidate = folder / f"{key}_accuracy.json"
        if candidate.is_file():
            table = _find_id_table(_load_json(candidate), ids)
            if table is None:
                raise BenchmarkError(f"{candidate}: no values keyed by the ids of meta.json")
            return table
    raise FileNotFoundError(f"{key}_accuracy.json not found in {root / dataset} or {root}")


def _pick_epsilon(value, epsilons, epsilon):
    if not isinstance(value, (list, tuple)):
        return value
    if epsilons and len(epsilons) == len(value) and epsilon is not None:
        index = min(range(len(epsilons)), key=lambda i: abs(float(epsilons[i]) - epsilon))
        return value[index]
    return value[-1]


def read_jung(root, dataset="cifar10", robust_key="pgd@Linf", clean_key="clean", epsilon=8 / 255) -> list[dict]:
    root = Path(root)
    if root.is_file():
        root = root.parent
    meta = _load_json(root / "meta.json")
    genotypes = _arch_ids(meta, root / "meta.json")
    ids = set(genotypes)
    clean = _jung_values(root, dataset, clean_key, ids)
    robust = _jung_values(root, dataset, robust_key, ids)
    epsilons = (meta.get("epsilons", {}) or {}).get(robust_key) if isinstance(meta, dict) else None
    records = []
    for arch_id, genotype in genotypes.items():
        if arch_id not in clean or arch_id not in robust:
            continue
        clean_value = _pick_epsilon(clean[arch_id], None, None)
        robust_value = _pick_epsilon(robust[arch_id], epsilons, epsilon)
        records.append({"id": arch_id, "genotype": genotype, "clean_acc": _percent(clean_value),
                        "robust_acc": _percent(robust_value), "trained_network": {}})
    if not records:
        raise BenchmarkError(f"{root}: no architecture has both {clean_key} and {robust_key} values")
    return records


# ---------------------------------------------------------------- NAS-RobBench-201
def read_robbench(root, dataset="cifar10", robust_metric="val_pgd_3.0_acc", clean_metric="val_clean_acc"):
    root = Path(root)
    if root.is_file() and root.name != "meta.json":
        results_path, root = root, root.parent
    else:
        root = root.parent if root.is_file() else root
        results_path = root / f"{dataset}.json"
    genotypes = _arch_ids(_load_json(root / "meta.json"), root / "meta.json")
    data = _load_json(results_path)
    ids = set(genotypes)
    table = _find_id_table(data, ids)
    if table is None and isinstance(data, dict) and robust_metric in data:
        by_metric = {m: _find_id_table(data[m], ids) or {} for m in (robust_metric, clean_metric)}
        table = {i: {m: by_metric[m].get(i) for m in by_metric} for i in ids}
    if table is None:
        raise BenchmarkError(f"{results_path}: no results keyed by the ids of meta.json")
    records = []
    for arch_id, genotype in genotypes.items():
        entry = table.get(arch_id)
        if not isinstance(entry, dict):
            continue
        if robust_metric not in entry or clean_metric not in entry:
            known = ", ".join(sorted(entry))
            raise BenchmarkError(f"{results_path}: id {arch_id} lacks {robust_metric!r} or {clean_metric!r} "
                                 f"(has {known})")
        if entry[robust_metric] is None or entry[clean_metric] is None:
            continue
        records.append({"id": arch_id, "genotype": genotype, "clean_acc": _percent(entry[clean_metric]),
                        "robust_acc": _percent(entry[robust_metric]), "trained_network": {}})
    if not records:
        raise BenchmarkError(f"{results_path}: no architecture with results")
    return records


# ---------------------------------------------------------------- dispatch
def detect_layout(path) -> str:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"benchmark not found: {path}")
    folder = path.parent if path.is_file() and path.name == "meta.json" else path
    if folder.is_dir():
        if not (folder / "meta.json").is_file():
            raise BenchmarkError(f"{folder}: a benchmark folder needs a meta.json")
        if any(folder.glob("*_accuracy.json")) or any(folder.glob("*/*_accuracy.json")):
            return "jung"
        return "robbench"
    data = _load_json(path)
    if isinstance(data, list):
        return "tiny_robustbench"
    if (path.parent / "meta.json").is_file():
        return "robbench"
    raise BenchmarkError(f"{path}: not a tiny-RobustBench list, nor a folder with meta.json")


def read_benchmark(paths, dataset="cifar10", robust_metric=None, clean_metric=None, epsilon=8 / 255) -> list[dict]:
    """Read and concatenate benchmarks; ``robust_metric``/``clean_metric`` override the
    layout's default (a Jung key such as ``fgsm@Linf``, or a NAS-RobBench-201 metric name)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records = []
    for path in paths:
        layout = detect_layout(path)
        if layout == "tiny_robustbench":
            records += read_tiny_robustbench(path)
        elif layout == "jung":
            records += read_jung(path, dataset, robust_metric or ROBUST_METRICS[layout], clean_metric or "clean",
                                 epsilon)
        else:
            records += read_robbench(path, dataset, robust_metric or ROBUST_METRICS[layout],
                                     clean_metric or "val_clean_acc")
    return records
