"""What do Ray workers buy on this machine? Scores the same N random DARTS architectures
in-process (one torch thread), on 1 Ray worker and on 2 (one thread each), through
``RobustNASProblem`` exactly as a search does, and prints seconds per architecture, the
speed-up over one worker, and whether every worker count gave identical components.

    python examples/bench_workers.py --n 40 --workers 1,2
    python examples/bench_workers.py --device cuda --n 200 --workers 1,4,8

With ``--device cuda`` the in-process row scores on the GPU, and W workers share the GPUs
evenly (1/W each on one GPU; ``--gpus-per-worker`` sets the share): several small networks
in flight on one device at once.

Ray's start-up (a local cluster, the actors, the data batch, one warm-up architecture per
process) is timed separately: it is paid once per search, not per architecture.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from bench_proxy_speed import describe_machine  # noqa: E402
from nas_problem import DartsSpace  # noqa: E402
from trnas import make_problem  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="architectures (default 40)")
    parser.add_argument("--workers", default="1,2", help="comma-separated Ray worker counts (default 1,2)")
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture sample and the proxy")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gpus-per-worker", type=float, default=None,
                        help="GPU share of each worker with --device cuda (default: the GPUs shared evenly)")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    if args.n < 1 or any(w < 1 for w in counts):
        parser.error("--n and every worker count must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    torch.set_num_threads(1)
    space = DartsSpace()
    rng = np.random.default_rng(args.seed)
    genotypes = [space.decode(space.random_x(rng)) for _ in range(args.n)]
    # scored before the clock starts, one per process: CUDA contexts, kernels, allocators
    warm_up = [space.decode(space.random_x(rng)) for _ in range(max(counts))]
    options = dict(dataset="digits", proxy="rscore", preset=args.preset, device=args.device, seed=args.seed,
                   n_calibration=0)
    print(describe_machine(torch.device(args.device)))
    print(f"{args.n} random DARTS architectures, rscore:{args.preset} on {args.device}, one torch thread per process")

    rows, results = [], {}
    for workers in [0] + counts:
        start = time.perf_counter()
        problem = make_problem(**options, workers=workers, gpus_per_worker=args.gpus_per_worker)
        problem.score_genotypes(warm_up[:max(1, workers)])
        startup = time.perf_counter() - start
        try:
            start = time.perf_counter()
            records = problem.score_genotypes(genotypes)
            seconds = (time.perf_counter() - start) / args.n
        finally:
            problem.close()
        results[workers] = [r["components"] for r in records]
        rows.append((workers, startup, seconds))
        print(f"  {'in-process' if workers == 0 else f'{workers} Ray worker(s)'}: {seconds:.3f} s/arch", flush=True)

    one_worker = dict((w, s) for w, _, s in rows).get(1)
    identical = all(results[w] == results[0] for w in results)
    print()
    print("| evaluator | start-up s | s/arch | architectures/s | speed-up over 1 worker |")
    print("|---|---:|---:|---:|---:|")
    for workers, startup, seconds in rows:
        name = "in-process" if workers == 0 else f"Ray, {workers} worker{'s' if workers > 1 else ''}"
        speedup = f"{one_worker / seconds:.2f}×" if one_worker else "–"
        print(f"| {name} | {startup:.1f} | {seconds:.3f} | {1 / seconds:.2f} | {speedup} |")
    print(f"\ncomponents identical across evaluators: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
