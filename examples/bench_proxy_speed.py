"""How long does the R-Score take per architecture on this machine?

Scores N random valid DARTS architectures with each preset on the embedded digits data
and prints seconds per architecture, split into Ψ and Φ time.

    python examples/bench_proxy_speed.py --n 10 --device auto --threads 2
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import get_proxy, load_dataset, proxy_batch  # noqa: E402
from nas_problem import DartsSpace  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: torch.device) -> str:
    text = (f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads")
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    elif torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)} (unused)"
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="architectures per preset (default 10)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--presets", default="reference,paper", help="comma-separated presets")
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)

    data = load_dataset("digits")
    space = DartsSpace()
    rng = np.random.default_rng(args.seed)
    genotypes = [space.decode(space.random_x(rng)) for _ in range(args.n)]
    print(describe_machine(device))
    if hasattr(os, "getloadavg"):
        print("load average before the run: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"{'preset':<10} {'device':<7} {'n':>3} {'mean s/arch':>12} {'median s/arch':>14} "
          f"{'psi s':>7} {'phi s':>7} {'cpu s/arch':>11} {'flagged':>8}")
    for preset in args.presets.split(","):
        scorer = get_proxy(f"rscore:{preset}", device=device, mean=data.mean, std=data.std)
        images, labels = proxy_batch(data, scorer.config["n_images"])
        scorer.measure(genotypes[0], images, labels, seed=0)  # warm-up: kernels, allocator
        totals, psi_times, phi_times, flagged = [], [], [], 0
        cpu_start = time.process_time()
        for i, genotype in enumerate(genotypes):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            components = scorer.measure(genotype, images, labels, seed=i)
            if device.type == "cuda":
                torch.cuda.synchronize()
            totals.append(time.perf_counter() - start)
            psi_times.append(scorer.last_timing["psi_s"])
            phi_times.append(scorer.last_timing["phi_s"])
            flagged += not scorer.is_valid(components)
        # process CPU time per architecture: what the work costs when other jobs share the cores
        cpu_per_arch = (time.process_time() - cpu_start) / args.n
        print(f"{preset:<10} {device.type:<7} {args.n:>3} {statistics.mean(totals):>12.3f} "
              f"{statistics.median(totals):>14.3f} {statistics.mean(psi_times):>7.3f} "
              f"{statistics.mean(phi_times):>7.3f} {cpu_per_arch:>11.3f} {flagged:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
