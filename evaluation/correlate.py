"""How well do training-free proxies rank a benchmark's architectures by robustness? Every
architecture is scored with each proxy, and Spearman ρ / Kendall τ against clean and robust
accuracy, ρ with the trained network's size held fixed (partial ρ, ρ within size bins), a
bootstrap interval for ρ, the effective rate and the cost per architecture go to a table
(``trnas correlate``), beside the trained network's parameter count as a baseline."""
from __future__ import annotations

import glob
import json
import math
import re
import time
from pathlib import Path

from nas_problem.files import check_folder, make_folder, write_atomic, write_csv

from .crossval import TRAINED_PARAMS, cross_validate, min_architectures, write_heldout
from .settings import SettingError, as_bool, as_int, as_names, as_number, as_text, check_known

CORRELATE_DEFAULTS = dict(
    benchmark=None, proxies="rscore", dataset="npz", data_path=None, root=None, download=False, n_images=16,
    seed=0, limit=None, bench_dataset="cifar10", robust_metric=None, clean_metric=None, epsilon="8/255",
    device="auto", threads=None, out_dir="runs/correlate", size_bins=5, bootstrap=1000, folds=5, repeats=5,
)
CORRELATION_COLUMNS = ["proxy", "spearman_robust", "kendall_robust", "partial_robust_given_size",
                       "binned_robust", "spearman_robust_low", "spearman_robust_high", "spearman_clean",
                       "kendall_clean", "effective_rate", "seconds_per_arch"]

SCORE_COLUMNS = ["id", "proxy", "score", "valid", "seconds", "clean_acc", "robust_acc", "genotype", "components"]


class ProxyFailure(str):
    """Why a proxy could not score one architecture (the first line of its error)."""


class ForgivingProxy:
    """``proxy`` scoring a benchmark: an architecture it cannot handle comes back as a
    :class:`ProxyFailure` instead of an exception, so it counts as ineffective and does not
    lose the whole run (nor stop the architectures scored beside it)."""

    def __init__(self, proxy):
        self.proxy = proxy

    def __getattr__(self, name):
        # everything but measure is the proxy's own (the evaluator reads its device and thread_safe);
        # "proxy" itself is missing only on a half-built copy, which must not recurse
        if name == "proxy":
            raise AttributeError(name)
        return getattr(self.proxy, name)

    def measure(self, genotype, images, labels, seed):
        try:
            return self.proxy.measure(genotype, images, labels, seed)
        except (RuntimeError, ValueError, TypeError, AttributeError) as error:
            first_line = (str(error).splitlines() or [""])[0]
            return ProxyFailure(f"{type(error).__name__}: {first_line[:120]}")


# ----- the settings -----
def benchmark_paths(value) -> list[str]:
    """Benchmark files or folders from a list or comma-separated text; a glob pattern (quoted
    from the shell, ``bench/*.json``) stands for the files it matches."""
    if value in (None, "", []):
        raise SettingError("benchmark: none given (a tiny-RobustBench JSON file, a glob of them, or an "
                           "NB201 benchmark folder with meta.json)")
    paths = []
    for item in as_names(value, "benchmark"):
        if glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise SettingError(f"benchmark: no file matches {item!r}")
            paths += matches
        else:
            paths.append(item)
    return paths


def proxy_entries(value) -> list[tuple]:
    """``(label, name, knobs)`` of each proxy to score: a name (``rscore:paper``), or a mapping
    ``{name: rscore:paper, n_images: 64, ...}`` whose other keys are the proxy's knobs (its
    label: ``label:`` if given, else the name and the knobs), from a list or comma-separated text."""
    items = value if isinstance(value, (list, tuple)) else [value] if isinstance(value, dict) else \
        as_names(value, "proxies")
    entries = []
    for item in items:
        if isinstance(item, dict):
            knobs = dict(item)
            name, label = knobs.pop("name", None), knobs.pop("label", None)
            if not isinstance(name, str) or not name.strip():
                raise SettingError(f"proxies: a proxy given as a mapping needs name: (got {item!r})")
            if knobs.get("n_images") is not None:
                knobs["n_images"] = as_int(knobs["n_images"], f"proxies: {name}'s n_images", minimum=1)
            label = label or " ".join([name.strip()] + [f"{k}={v}" for k, v in knobs.items()])
            entries.append((str(label), name.strip(), knobs))
        else:
            entries += [(name, name, {}) for name in as_names(item, "proxies")]
    if not entries:
        raise SettingError(f"proxies: expected one or more names, got {value!r}")
    labels = [label for label, _, _ in entries]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise SettingError(f"proxies: {', '.join(twice)} given twice")
    return entries


def check_config(config: dict) -> dict:
    """The settings of :func:`correlate_benchmark`, over :data:`CORRELATE_DEFAULTS`, checked."""
    check_known(config, CORRELATE_DEFAULTS, "the correlate settings")
    c = {**CORRELATE_DEFAULTS, **config}
    c["benchmark"] = benchmark_paths(c["benchmark"])
    c["proxies"] = proxy_entries(c["proxies"])
    for key in ("dataset", "bench_dataset", "device", "out_dir"):
        c[key] = as_text(c[key], key)
    for key in ("data_path", "root", "robust_metric", "clean_metric"):
        c[key] = as_text(c[key], key, allow_none=True)
    c["download"] = as_bool(c["download"], "download")
    c["n_images"] = as_int(c["n_images"], "n_images", minimum=1)
    c["seed"] = as_int(c["seed"], "seed", minimum=0)
    c["limit"] = as_int(c["limit"], "limit", minimum=1, allow_none=True)
    c["threads"] = as_int(c["threads"], "threads", minimum=1, allow_none=True)
    c["epsilon"] = as_number(c["epsilon"], "epsilon", minimum=0)
    c["size_bins"] = as_int(c["size_bins"], "size_bins", minimum=1)
    c["bootstrap"] = as_int(c["bootstrap"], "bootstrap", minimum=0)
    c["folds"] = as_int(c["folds"], "folds", minimum=2)
    c["repeats"] = as_int(c["repeats"], "repeats", minimum=1)
    check_folder(c["out_dir"])
    return c


# ----- the numbers -----
def correlations(scores, clean, robust) -> dict:
    """ρ and τ over the architectures whose score is finite; NaN where :func:`why_undefined`
    says why (fewer than 3 of them, or a constant score or accuracy: a ranking with no information)."""
    from scipy import stats
    keep = [i for i, s in enumerate(scores) if isinstance(s, float) and math.isfinite(s)]
    out = {}
    for label, target in (("robust", robust), ("clean", clean)):
        if why_undefined(scores, target, label):
            out[f"spearman_{label}"] = out[f"kendall_{label}"] = math.nan
            continue
        xs = [scores[i] for i in keep]
        ys = [target[i] for i in keep]
        out[f"spearman_{label}"] = float(stats.spearmanr(xs, ys).statistic)
        out[f"kendall_{label}"] = float(stats.kendalltau(xs, ys).statistic)
    return out


def robustness_given_size(scores, robust, size, config: dict) -> dict:
    """Partial ρ given ``size``, the mean ρ within size bins and the bootstrap interval of ρ,
    all against robust accuracy (:mod:`evaluation.rank_stats`)."""
    from .rank_stats import binned_spearman, bootstrap_interval, partial_spearman
    low, high = (bootstrap_interval(scores, robust, config["seed"], config["bootstrap"])
                 if config["bootstrap"] else (math.nan, math.nan))
    return {"partial_robust_given_size": partial_spearman(scores, robust, size),
            "binned_robust": binned_spearman(scores, robust, size, config["size_bins"]),
            "spearman_robust_low": low, "spearman_robust_high": high}


def trained_sizes(records) -> list[float]:
    """Parameters (millions) of the network each record's benchmark trained."""
    from nas_problem import space_of
    return [space_of(r["genotype"]).count_params(r["genotype"], **r.get("trained_network", {})) for r in records]


def why_undefined(scores, target, label: str) -> str | None:
    """Why ρ and τ against ``target`` come out NaN (None when they do not)."""
    keep = [i for i, s in enumerate(scores) if isinstance(s, float) and math.isfinite(s)]
    if len(keep) < 3:
        return f"only {len(keep)} architecture(s) got a finite score, and a rank correlation needs 3"
    if len({scores[i] for i in keep}) < 2:
        return "every architecture got the same score"
    if len({target[i] for i in keep}) < 2:
        return f"every architecture scored has the same {label} accuracy ({target[keep[0]]:g} %)"
    return None


def final_scores(proxy, components: list) -> list[float]:
    """Each architecture's score, normalised over the whole benchmark; NaN where it is invalid."""
    calibration = proxy.calibrate(components)
    scores = []
    for c in components:
        try:
            value = float(proxy.score(c, calibration)) if proxy.is_valid(c) else math.nan
        except (KeyError, TypeError, ValueError):
            value = math.nan
        scores.append(value)
    return scores


def score_benchmark(name: str, proxy, records: list[dict], images, labels, seed: int, log, progress=None):
    """(components, seconds, wall seconds, evaluator description) of every record under ``proxy``;
    an architecture it cannot score is logged and counts as ineffective."""
    from .evaluators import InProcessEvaluator
    evaluator = InProcessEvaluator(ForgivingProxy(proxy), images, labels)
    components, seconds = [None] * len(records), [None] * len(records)
    start = time.perf_counter()
    jobs = [(record["genotype"], seed) for record in records]
    for done, (position, (c, elapsed, _, _)) in enumerate(evaluator(jobs), start=1):
        if isinstance(c, ProxyFailure):
            log(f"  {name}: {records[position]['id']}: {c}")
            c = {"error": 1.0}
        components[position], seconds[position] = c, elapsed
        if progress:
            progress(done, len(records))
    return components, seconds, time.perf_counter() - start, evaluator.describe()


# ----- the outputs -----
def _fmt(value, digits=3) -> str:
    return "nan" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def markdown_table(rows) -> str:
    lines = ["| proxy | Spearman ρ (robust) [95 % CI] | Kendall τ (robust) | partial ρ given size "
             "| ρ within size bins | Spearman ρ (clean) | Kendall τ (clean) | effective rate | s / arch |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        interval = (f" [{_fmt(r['spearman_robust_low'], 2)}, {_fmt(r['spearman_robust_high'], 2)}]"
                    if math.isfinite(r["spearman_robust_low"]) else "")
        lines.append(f"| {r['proxy']} | {_fmt(r['spearman_robust'])}{interval} | {_fmt(r['kendall_robust'])} | "
                     f"{_fmt(r['partial_robust_given_size'])} | {_fmt(r['binned_robust'])} | "
                     f"{_fmt(r['spearman_clean'])} | {_fmt(r['kendall_clean'])} | "
                     f"{100 * r['effective_rate']:.1f} % | {_fmt(r['seconds_per_arch'], 2)} |")
    return "\n".join(lines) + "\n"


def scatter(path: Path, name, scores, robust, rho):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pairs = [(s, r) for s, r in zip(scores, robust) if math.isfinite(s)]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    if pairs:
        ax.scatter([p[0] for p in pairs], [p[1] for p in pairs], s=12)
    ax.set_xlabel(f"{name} score")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(f"{name}: Spearman ρ = {_fmt(rho)} (n = {len(pairs)})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temporary, dpi=110)
    plt.close(fig)
    temporary.replace(path)


def file_name(proxy_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", proxy_name)


# ----- the whole run -----
def table_row(name: str, scores, clean, robust, size, seconds_per_arch: float, config: dict) -> dict:
    effective = sum(math.isfinite(s) for s in scores) / len(scores) if scores else 0.0
    return {"proxy": name, **correlations(scores, clean, robust), **robustness_given_size(scores, robust, size, config),
            "effective_rate": effective, "seconds_per_arch": seconds_per_arch}


def build_proxies(c: dict):
    """(images, labels, [(name, proxy)]) of the settings; every proxy is built before any work,
    so an unknown name fails first."""
    from . import zoo  # noqa: F401  (registers the zoo's proxies)
    from .datasets import load_dataset, proxy_batch
    from .registry import get_proxy
    dataset = load_dataset(c["dataset"], root=c["root"], download=c["download"], data_path=c["data_path"])
    shared = dict(device=c["device"], num_classes=dataset.num_classes, mean=dataset.mean, std=dataset.std,
                  n_images=c["n_images"])
    proxies = [(label, get_proxy(name, **{**shared, **knobs})) for label, name, knobs in c["proxies"]]
    # one batch for all: each proxy takes the first n_images of it
    n_images = max([c["n_images"]] + [int(knobs["n_images"]) for _, _, knobs in c["proxies"] if knobs.get("n_images")])
    images, labels = proxy_batch(dataset, n_images)
    log_line = f"{len(proxies)} proxies, {c['n_images']} images of {dataset.name}"
    return images, labels, proxies, log_line


def warn_constant(clean, robust, log) -> None:
    for label, target in (("robust", robust), ("clean", clean)):
        if len(set(target)) < 2:
            log(f"warning: all {len(target)} architectures have the same {label} accuracy ({target[0]:g} %), so "
                f"Spearman rho and Kendall tau against it are undefined (nan): nothing to rank")


def read_records(c: dict, cv: bool) -> list[dict]:
    """The benchmark's records (the first ``limit``), refused before any work when too few for ``cv``."""
    from . import benchmarks
    records = benchmarks.read_benchmark(c["benchmark"], dataset=c["bench_dataset"], robust_metric=c["robust_metric"],
                                        clean_metric=c["clean_metric"], epsilon=c["epsilon"])[:c["limit"]]
    if cv and len(records) < min_architectures(c["folds"]):
        raise SettingError(f"--cv: {c['folds']}-fold cross-validation needs at least {min_architectures(c['folds'])} "
                           f"architectures, the benchmark gives {len(records)} (lower folds=)")
    return records


def score_lines(name: str, records, components, scores, seconds) -> list[dict]:
    """The rows of ``scores.csv`` for one proxy."""
    return [{"id": record["id"], "proxy": name, "score": s, "valid": math.isfinite(s), "seconds": t,
             "clean_acc": record["clean_acc"], "robust_acc": record["robust_acc"],
             "genotype": str(record["genotype"]), "components": json.dumps(comps, default=str)}
            for record, comps, s, t in zip(records, components, scores, seconds)]


def undefined_notes(name: str, scores, clean, robust) -> list[str]:
    notes = []
    for label, target in (("robust", robust), ("clean", clean)):
        reason = why_undefined(scores, target, label)
        if reason:
            notes.append(f"{name}: rho and tau against {label} accuracy are undefined (nan): {reason}.")
    return notes


def correlate_benchmark(config: dict, log=print, progress=None, cv: bool = False) -> list[dict]:
    """Score a benchmark with each proxy of ``config`` (keys of :data:`CORRELATE_DEFAULTS`) and
    write ``scores.csv``, ``correlation.csv``, ``correlation.md`` and one scatter plot per proxy
    to ``out_dir``, rewritten after every proxy so an interrupted run keeps what it finished;
    with ``cv`` also the held-out table of :mod:`evaluation.crossval` (``heldout.csv``/``.md``).
    ``progress(k, n_proxies, name, done, total)`` follows the scoring. Returns the table's rows."""
    import torch
    c = check_config(config)
    if c["threads"]:
        torch.set_num_threads(c["threads"])
    records = read_records(c, cv)
    images, labels, proxies, described = build_proxies(c)
    proxy_names = {label: name for label, name, _ in c["proxies"]}
    out = Path(c["out_dir"])
    make_folder(out)
    clean, robust = [r["clean_acc"] for r in records], [r["robust_acc"] for r in records]
    start = time.perf_counter()
    size = trained_sizes(records)
    table = [table_row(TRAINED_PARAMS, size, clean, robust, size, (time.perf_counter() - start) / len(records), c)]
    log(f"correlate: {len(records)} architectures, {described}")
    warn_constant(clean, robust, log)
    rows, notes, scored = [], [], {}
    for k, (name, proxy) in enumerate(proxies, start=1):
        step = (lambda done, total: progress(k, len(proxies), name, done, total)) if progress else None
        components, seconds, wall, evaluator = score_benchmark(name, proxy, records, images, labels, c["seed"],
                                                               log, step)
        scores = final_scores(proxy, components)
        table.append(table_row(name, scores, clean, robust, size, wall / len(records) if records else math.nan, c))
        scored[name] = {"scores": scores, "components": components, "proxy": proxy_names[name],
                        "seconds_per_arch": table[-1]["seconds_per_arch"]}
        rows += score_lines(name, records, components, scores, seconds)
        row = table[-1]
        log(f"[{k}/{len(proxies)}] {name}: rho_robust={_fmt(row['spearman_robust'])} "
            f"partial_given_size={_fmt(row['partial_robust_given_size'])} rho_clean={_fmt(row['spearman_clean'])} "
            f"effective={100 * row['effective_rate']:.1f}% {row['seconds_per_arch']:.2f} s/arch "
            f"({wall:.0f} s, {evaluator})")
        for note in undefined_notes(name, scores, clean, robust):
            notes.append(note)
            log(f"  {note}")
        scatter(out / f"scatter_{file_name(name)}.png", name, scores, robust, row["spearman_robust"])
        write_csv(out / "scores.csv", rows, SCORE_COLUMNS)
        write_csv(out / "correlation.csv", table, CORRELATION_COLUMNS)
        write_atomic(out / "correlation.md", markdown_table(table) + "".join(f"\n{note}\n" for note in notes))
    if cv:
        write_heldout(out, cross_validate(records, size, scored, c, log))
    return table
