"""Run TRNAS, NSGA-II and MOEA/D on one problem with one budget of evaluations and overlay
their Pareto fronts in one plot.

    python examples/compare_algorithms.py --evaluations 300 --pop-size 20 --out runs/compare

All three share the problem, so they share its calibration and its archive: an architecture
two algorithms both visit is scored once. The table compares the fronts by hypervolume in the
normalised objective space of everything the three found (reference point 1.1, 1.1).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.optimize import minimize

from trnas.search import make_algorithm, make_problem


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=300, help="evaluation budget per algorithm")
    parser.add_argument("--pop-size", type=int, default=20)
    parser.add_argument("--n-clusters", type=int, default=8)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/compare")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = make_problem(dataset=args.dataset, preset=args.preset, seed=args.seed, archive=out / "archive.jsonl")
    problem.calibrate()
    fronts, rows = {}, []
    for name in ("trnas", "nsga2", "moead"):
        algorithm = make_algorithm(name, problem, args.pop_size, args.n_clusters)
        start = time.perf_counter()
        result = minimize(problem, algorithm, ("n_eval", args.evaluations), seed=args.seed, verbose=False)
        F = np.atleast_2d(result.opt.get("F"))
        fronts[name] = F
        rows.append((name, result.algorithm.evaluator.n_eval, len(F), 1.0 / F[:, 0].min(), time.perf_counter() - start))

    everything = np.vstack(list(fronts.values()))
    low, span = everything.min(axis=0), np.ptp(everything, axis=0)
    span[span == 0] = 1.0
    hypervolume = HV(ref_point=np.array([1.1, 1.1]))
    print(f"{'algorithm':<10}{'evaluations':>12}{'front':>7}{'hypervolume':>13}{'best R-Score':>14}{'seconds':>9}")
    for name, n_eval, size, best, seconds in rows:
        volume = hypervolume((fronts[name] - low) / span)
        print(f"{name:<10}{n_eval:>12}{size:>7}{volume:>13.4f}{best:>14.2f}{seconds:>9.1f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 5))
    for (name, F), marker in zip(fronts.items(), "os^"):
        order = np.argsort(F[:, 1])
        axes.plot(F[order, 1], 1.0 / F[order, 0], f"-{marker}", ms=5, label=name)
    axes.set_xlabel("Params of the evaluation network (M)")
    axes.set_ylabel("R-Score")
    axes.set_title(f"Pareto fronts, {args.evaluations} evaluations each ({args.dataset}, {args.preset})")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "fronts.png", dpi=120)
    print(f"plot: {out / 'fronts.png'}")


if __name__ == "__main__":
    main()
