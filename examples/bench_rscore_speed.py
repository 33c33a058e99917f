"""Production R-Score against the straightforward reference implementation, in one run.

Scores the same N random DARTS architectures (seeded) with the production ``rscore`` and
with ``tests/reference_rscore.py`` (sequential re-initialisations, float64 Φ, ``unique``
over 2-D pattern matrices), on the same device, and prints per preset: seconds per
architecture, the speed-up, and Spearman ρ between the two sets of R-Scores, each
normalised over the set.

    python examples/bench_rscore_speed.py --n 50 --presets reference
    python examples/bench_rscore_speed.py --n 5 --presets paperBoth implementations run on the same device (``--device``; auto = CUDA when present).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples"))

from bench_proxy_speed import describe_machine  # noqa: E402
from evaluation import get_proxy, load_dataset, proxy_batch  # noqa: E402
from evaluation.rscore import normalise_over_set  # noqa: E402
from nas_problem import DartsSpace  # noqa: E402
from reference_rscore import reference_measure  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="architectures (default 50)")
    parser.add_argument("--presets", default="reference,paper", help="comma-separated presets")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2 (ρ needs two architectures)")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    data = load_dataset("digits")
    space = DartsSpace()
    rng = np.random.default_rng(args.seed)
    genotypes = [space.decode(space.random_x(rng)) for _ in range(args.n)]
    print(describe_machine(device))
    print(f"{args.n} random DARTS architectures (seed {args.seed}), digits batch, seed i for architecture i")
    rows = []
    for preset in args.presets.split(","):
        scorer = get_proxy(f"rscore:{preset}", device=device, mean=data.mean, std=data.std)
        images, labels = proxy_batch(data, scorer.config["n_images"])
        scorer.measure(genotypes[0], images, labels, seed=0)  # warm-up

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()

        sync()
        start = time.perf_counter()
        production = [scorer.measure(g, images, labels, seed=i) for i, g in enumerate(genotypes)]
        sync()
        production_s = (time.perf_counter() - start) / args.n
        sync()
        start = time.perf_counter()
        reference = [reference_measure(g, images, labels, seed=i, preset=preset, mean=data.mean, std=data.std,
                                       device=device)
                     for i, g in enumerate(genotypes)]
        sync()
        reference_s = (time.perf_counter() - start) / args.n
        rho = spearmanr(normalise_over_set(production), normalise_over_set(reference)).statistic
        psi_equal = sum(p["psi"] == r["psi"] for p, r in zip(production, reference))
        phi_rel = max(abs(p["phi"] - r["phi"]) / abs(r["phi"]) for p, r in zip(production, reference))
        rows.append((preset, "reference", device.type, reference_s, 1.0, 1.0))
        rows.append((preset, "production", device.type, production_s, reference_s / production_s, rho))
        print(f"{preset}: Ψ identical for {psi_equal}/{args.n}, max relative Φ difference {phi_rel:.1e}",
              flush=True)
    print()
    print(f"| {'preset':<9} | {'implementation':<14} | {'device':<6} | {'s/arch':>8} | {'speed-up':>8} "
          f"| {'ρ vs reference':>14} |")
    print(f"|{'-' * 11}|{'-' * 16}|{'-' * 8}|{'-' * 9}:|{'-' * 9}:|{'-' * 15}:|")
    for preset, impl, dev, seconds, speedup, rho in rows:
        print(f"| {preset:<9} | {impl:<14} | {dev:<6} | {seconds:>8.3f} | {speedup:>7.1f}× | {rho:>14.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
