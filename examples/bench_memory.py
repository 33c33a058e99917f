"""Does memory grow over a long search? Scores N random DARTS architectures in-process
(the ``InProcessEvaluator`` a search uses, reference preset by default) and every
``--every`` evaluations prints the process's peak and current resident memory
(/proc/self/status VmHWM, VmRSS) and, on CUDA, ``torch.cuda.max_memory_allocated``.

    python examples/bench_memory.py --n 1000

Flat columns after the first rows mean no per-evaluation leak: peak RSS is reached by the
largest architecture seen so far, not by the number evaluated.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from bench_proxy_speed import describe_machine  # noqa: E402
from evaluation import get_proxy, load_dataset, proxy_batch  # noqa: E402
from evaluation.evaluators import InProcessEvaluator  # noqa: E402
from evaluation.runtime import resolve_device  # noqa: E402
from nas_problem import DartsSpace  # noqa: E402


def proc_status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="architectures to score (default 1000)")
    parser.add_argument("--every", type=int, default=100, help="report every this many evaluations")
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); on the CPU as many architectures are "
                             "scored at once, one torch thread each, as in a search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset("digits")
    scorer = get_proxy(f"rscore:{args.preset}", device=device, mean=data.mean, std=data.std)
    images, labels = proxy_batch(data, scorer.config["n_images"])
    evaluator = InProcessEvaluator(scorer, images, labels)
    space = DartsSpace()
    rng = np.random.default_rng(args.seed)
    print(describe_machine(device))
    print(f"{args.n} random DARTS architectures, rscore:{args.preset}, {evaluator.describe()}")
    cuda = device.type == "cuda"
    header = f"| {'evaluations':>11} | {'peak RSS MiB':>12} | {'RSS MiB':>8} | {'ru_maxrss MiB':>13} | {'s/arch':>7} |"
    if cuda:
        header += f" {'CUDA max alloc MiB':>18} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    start, done = time.perf_counter(), 0
    rows = []
    while done < args.n:
        batch = min(args.every, args.n - done)
        jobs = [(space.decode(space.random_x(rng)), done + i) for i in range(batch)]
        list(evaluator(jobs))  # a generator: scoring happens as it is read
        done += batch
        row = (done, proc_status_mib("VmHWM"), proc_status_mib("VmRSS"),
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, (time.perf_counter() - start) / done)
        line = f"| {row[0]:>11} | {row[1]:>12.1f} | {row[2]:>8.1f} | {row[3]:>13.1f} | {row[4]:>7.3f} |"
        if cuda:
            line += f" {torch.cuda.max_memory_allocated(device) / 2**20:>18.1f} |"
        print(line, flush=True)
        rows.append(row)
    if len(rows) >= 3:
        first, last = rows[1], rows[-1]  # after the first block: allocator and kernels warmed up
        print(f"peak RSS from {first[0]} to {last[0]} evaluations: {first[1]:.1f} → {last[1]:.1f} MiB "
              f"({last[1] - first[1]:+.1f} MiB); current RSS {first[2]:.1f} → {last[2]:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
