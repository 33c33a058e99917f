"""``trnas correlate``: how well do training-free proxies rank a benchmark's architectures by
robustness? Scores every architecture with each proxy and reports Spearman ρ / Kendall τ
against clean and robust accuracy, the effective rate and the cost per architecture."""
from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path

from nas_problem.files import write_atomic, write_csv

from .config import UsageError

CORRELATION_COLUMNS = ["proxy", "spearman_robust", "kendall_robust", "spearman_clean", "kendall_clean",
                       "effective_rate", "seconds_per_arch"]
SCORE_COLUMNS = ["id", "proxy", "score", "valid", "seconds", "clean_acc", "robust_acc", "genotype", "components"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "correlate", help="rank a robustness benchmark's architectures with proxies and correlate",
        description="Score every architecture of a robustness benchmark with training-free proxies and report "
                    "Spearman rho / Kendall tau against clean and robust accuracy.")
    parser.add_argument("--benchmark", nargs="+", required=True, metavar="PATH",
                        help="tiny-RobustBench JSON file(s), or a Jung et al. / NAS-RobBench-201 folder with meta.json")
    parser.add_argument("--proxies", default="rscore",
                        help="comma-separated proxy names, a preset as name:preset (e.g. rscore,rscore:paper,croze)")
    parser.add_argument("--dataset", default="npz", help="data set of the proxy batch (npz, cifar10, digits, ...)")
    parser.add_argument("--data-path", default=None, help="the .npz file for --dataset npz")
    parser.add_argument("--root", default=None, help="torchvision data root")
    parser.add_argument("--download", action="store_true", help="let torchvision download the data set")
    parser.add_argument("--n-images", type=int, default=16, help="proxy batch: the first N training images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0, help="weight-initialisation seed of every proxy")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N architectures")
    parser.add_argument("--bench-dataset", default="cifar10", help="data set inside an NB201 benchmark")
    parser.add_argument("--robust-metric", default=None,
                        help="NB201 benchmarks: robust key (Jung: pgd@Linf) or metric (RobBench: val_pgd_3.0_acc)")
    parser.add_argument("--clean-metric", default=None, help="NB201 benchmarks: clean key / metric")
    parser.add_argument("--epsilon", type=float, default=8 / 255, help="Jung et al.: the ε whose robust accuracy to use")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads; a thread-safe proxy (rscore) scores that many architectures at once, "
                             "one thread each")
    parser.set_defaults(run=run)
    return parser


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


def correlations(scores, clean, robust) -> dict:
    """ρ and τ over the architectures whose score is finite; NaN with fewer than 3 of them or a
    constant score (a ranking with no information)."""
    from scipy import stats
    keep = [i for i, s in enumerate(scores) if isinstance(s, float) and math.isfinite(s)]
    out = {}
    for label, target in (("robust", robust), ("clean", clean)):
        xs = [scores[i] for i in keep]
        ys = [target[i] for i in keep]
        if len(keep) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
            out[f"spearman_{label}"] = out[f"kendall_{label}"] = math.nan
            continue
        out[f"spearman_{label}"] = float(stats.spearmanr(xs, ys).statistic)
        out[f"kendall_{label}"] = float(stats.kendalltau(xs, ys).statistic)
    return out


def _fmt(value, digits=3) -> str:
    return "nan" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def markdown_table(rows) -> str:
    lines = ["| proxy | Spearman ρ (robust) | Kendall τ (robust) | Spearman ρ (clean) | Kendall τ (clean) "
             "| effective rate | s / arch |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['proxy']} | {_fmt(r['spearman_robust'])} | {_fmt(r['kendall_robust'])} | "
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


def run(args) -> int:
    import torch

    from evaluation import benchmarks
    from evaluation.datasets import load_dataset, proxy_batch
    from evaluation.evaluators import InProcessEvaluator
    from evaluation.registry import get_proxy
    import evaluation.zoo  # noqa: F401  (registers the zoo's proxies)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.n_images < 1:
        raise UsageError(f"--n-images must be >= 1, got {args.n_images}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    if not names:
        raise UsageError("--proxies names no proxy")
    try:
        records = benchmarks.read_benchmark(args.benchmark, dataset=args.bench_dataset,
                                            robust_metric=args.robust_metric, clean_metric=args.clean_metric,
                                            epsilon=args.epsilon)
    except benchmarks.BenchmarkError as error:
        raise UsageError(str(error)) from None
    if args.limit:
        records = records[:args.limit]
    dataset = load_dataset(args.dataset, root=args.root, download=args.download, data_path=args.data_path)
    images, labels = proxy_batch(dataset, args.n_images)
    # build every proxy first: an unknown name fails before any work
    proxies = [(name, get_proxy(name, device=args.device, num_classes=dataset.num_classes, mean=dataset.mean,
                                std=dataset.std, n_images=args.n_images)) for name in names]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clean = [r["clean_acc"] for r in records]
    robust = [r["robust_acc"] for r in records]
    score_rows, table = [], []
    print(f"correlate: {len(records)} architectures, {len(proxies)} proxies, {args.n_images} images of "
          f"{dataset.name}", file=sys.stderr)
    for k, (name, proxy) in enumerate(proxies, start=1):
        evaluator = InProcessEvaluator(ForgivingProxy(proxy), images, labels)
        components, seconds = [None] * len(records), [None] * len(records)
        start = time.perf_counter()
        jobs = [(record["genotype"], args.seed) for record in records]
        for done, (position, (c, elapsed, _, _)) in enumerate(evaluator(jobs), start=1):
            if isinstance(c, ProxyFailure):
                print(f"  {name}: {records[position]['id']}: {c}", file=sys.stderr)
                c = {"error": 1.0}
            components[position], seconds[position] = c, elapsed
            if sys.stderr.isatty():
                print(f"\r[{k}/{len(proxies)}] {name}: {done}/{len(records)}", end="", file=sys.stderr)
        wall = time.perf_counter() - start
        calibration = proxy.calibrate(components)
        scores = []
        for c in components:
            try:
                value = float(proxy.score(c, calibration)) if proxy.is_valid(c) else math.nan
            except (KeyError, TypeError, ValueError):
                value = math.nan
            scores.append(value)
        effective = sum(math.isfinite(s) for s in scores) / len(scores) if scores else 0.0
        row = {"proxy": name, **correlations(scores, clean, robust), "effective_rate": effective,
               "seconds_per_arch": wall / len(records) if records else math.nan}
        table.append(row)
        for record, c, s, t in zip(records, components, scores, seconds):
            score_rows.append({"id": record["id"], "proxy": name, "score": s, "valid": math.isfinite(s),
                               "seconds": round(t, 4), "clean_acc": record["clean_acc"],
                               "robust_acc": record["robust_acc"], "genotype": str(record["genotype"]),
                               "components": json.dumps(c, default=str)})
        if sys.stderr.isatty():
            print("\r", end="", file=sys.stderr)
        print(f"[{k}/{len(proxies)}] {name}: rho_robust={_fmt(row['spearman_robust'])} "
              f"tau_robust={_fmt(row['kendall_robust'])} rho_clean={_fmt(row['spearman_clean'])} "
              f"effective={100 * effective:.1f}% {row['seconds_per_arch']:.2f} s/arch "
              f"({wall:.0f} s, {evaluator.describe()})", file=sys.stderr)
        scatter(out / f"scatter_{file_name(name)}.png", name, scores, robust, row["spearman_robust"])
        # rewrite after every proxy so an interrupted run keeps what it finished
        write_csv(out / "scores.csv", score_rows, SCORE_COLUMNS)
        write_csv(out / "correlation.csv", table, CORRELATION_COLUMNS)
        write_atomic(out / "correlation.md", markdown_table(table))
    print(markdown_table(table), end="")
    return 0
