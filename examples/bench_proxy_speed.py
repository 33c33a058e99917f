"""How long does the R-Score take per architecture, and how much faster is the production
path than the straightforward reference implementation?

Scores the same N random DARTS architectures (seeded; architecture i gets proxy seed i) on
the embedded digits data with the production ``rscore`` of each preset and, unless
``--no-reference``, with ``tests/reference_rscore.py`` (K sequential re-initialisations,
float64 Φ, ``unique`` over 2-D pattern matrices) on the same device, in one run, the two
alternating architecture by architecture (paired, so drift of the machine's speed falls on
both alike). Prints one
table: preset, implementation, device, torch threads, seconds per architecture (split into Ψ
and Φ), speed-up over the reference, and Spearman ρ between the two implementations'
R-Scores (each normalised over the set). It also prints the ceiling that production's Φ sets
on the speed-up (reference seconds / production Φ seconds): Φ is one network's three
forward/backward passes, which no batching across initialisations can shorten.

On the CPU it adds a row for what a search does in process there: ``--in-flight K``
architectures at a time (default: torch's thread count; 1 leaves the row out), each on its own
thread with one torch thread (``InProcessEvaluator``). That row is timed in blocks of 10
architectures, each block right after the paired rows have scored it, so it is paired by block:
seconds per architecture are its wall time over the block's architectures.

``--workers W`` adds a row for the production path with W architectures in flight: the same
architectures and seeds scored on W Ray actors (one torch thread each on the CPU; on a GPU
they share it, 1/W each), seconds per architecture being wall time over N, start-up excluded;
it runs after the paired rows, so its speed-up is not paired.

    python examples/bench_proxy_speed.py --n 50 --presets reference
    python examples/bench_proxy_speed.py --n 50 --presets reference --workers 2
    python examples/bench_proxy_speed.py --n 10 --presets paper --no-reference --in-flight 1
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
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from evaluation import get_proxy, load_dataset, proxy_batch  # noqa: E402
from evaluation.evaluators import InProcessEvaluator  # noqa: E402
from evaluation.runtime import resolve_device  # noqa: E402
from evaluation.rscore import normalise_over_set  # noqa: E402
from nas_problem import DartsSpace  # noqa: E402


# the in-flight row is timed block by block, each block right after the paired rows scored it
IN_FLIGHT_BLOCK = 10


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


def timed(device: torch.device, work):
    """(result, seconds) of ``work()``, waiting for the GPU on both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


def score_on_workers(scorer, preset, device, data, genotypes, images, labels, workers) -> dict:
    """The production row with ``workers`` architectures in flight: the same jobs (architecture
    i, seed i) on Ray actors through the evaluator a search uses, after one warm-up
    architecture per actor; seconds per architecture = wall time / N."""
    import ray

    from evaluation.evaluators import RayEvaluator
    evaluator = RayEvaluator("rscore", dict(preset=preset, device=device.type, mean=data.mean, std=data.std),
                             images, labels, workers=workers, threads_per_worker=1)
    try:
        ray.get([actor.measure.remote(0, (genotype, 0)) for actor, genotype in zip(evaluator.actors, genotypes)])
        start = time.perf_counter()
        results = dict(evaluator([(genotype, i) for i, genotype in enumerate(genotypes)]))
        seconds = (time.perf_counter() - start) / len(genotypes)
        describe = evaluator.describe()
    finally:
        evaluator.close()
    print(f"{preset}: production on {describe}: {seconds:.3f} s/arch", flush=True)
    return several_at_once_row(preset, f"production, {workers} Ray workers", seconds, results, scorer)


def several_at_once_row(preset, implementation, seconds, results, scorer) -> dict:
    """A table row for architectures scored several at once, one torch thread each: ``seconds``
    per architecture of wall time (no Ψ/Φ split), ``results`` {architecture: evaluator result}."""
    components = [results[i][0] for i in range(len(results))]
    return dict(preset=preset, implementation=implementation, s=seconds, psi=None, phi=None, speedup=None, rho=None,
                flagged=sum(not scorer.is_valid(c) for c in components), threads="1 each", components=components)


def summary_row(preset, implementation, measured, scorer) -> dict:
    """One table row from an implementation's per-architecture records (components, s, psi_s,
    phi_s): the mean seconds, and how many architectures ``scorer`` flags."""
    components = [record["components"] for record in measured]
    return dict(preset=preset, implementation=implementation, threads=str(torch.get_num_threads()),
                s=statistics.mean(record["s"] for record in measured),
                psi=statistics.mean(record["psi_s"] for record in measured),
                phi=statistics.mean(record["phi_s"] for record in measured),
                speedup=None, rho=None, flagged=sum(not scorer.is_valid(c) for c in components),
                components=components)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="architectures per preset (default 50)")
    parser.add_argument("--presets", default="reference,paper", help="comma-separated presets")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    parser.add_argument("--no-reference", action="store_true",
                        help="time the production path only (no speed-up, no ρ)")
    parser.add_argument("--in-flight", type=int, default=None,
                        help="on the CPU, also time production with this many architectures at once, one torch "
                             "thread each, as a search does (default: torch's thread count; 1: no such row)")
    parser.add_argument("--workers", type=int, default=0,
                        help="also time production on this many Ray actors (default 0: no such row)")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2 (ρ needs two architectures)")
    if args.workers < 0:
        parser.error("--workers must be at least 0")
    if args.in_flight is not None and args.in_flight < 1:
        parser.error("--in-flight must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    return args


def implementations(scorer, preset, device, data, images, labels, with_reference: bool) -> dict:
    """``{name: step(i, genotype) -> timed record}`` of the production path and, unless left out,
    the straightforward reference implementation."""
    def production_step(i, genotype):
        components, elapsed = timed(device, lambda: scorer.measure(genotype, images, labels, seed=i))
        return dict(components=components, s=elapsed, psi_s=scorer.last_timing["psi_s"],
                    phi_s=scorer.last_timing["phi_s"])

    def reference_step(i, genotype):
        from reference_rscore import reference_measure
        timing = {}
        components = reference_measure(genotype, images, labels, seed=i, preset=preset, mean=data.mean,
                                       std=data.std, device=device, timing=timing)
        # its network builds are not timed: a conservative baseline
        return dict(components=components, s=timing["psi_s"] + timing["phi_s"], psi_s=timing["psi_s"],
                    phi_s=timing["phi_s"])

    return {"production": production_step, **({"reference": reference_step} if with_reference else {})}


def time_paired(steps: dict, genotypes, in_flight, device) -> tuple:
    """(records per implementation, results and seconds of the in-flight evaluator) over the same
    architectures."""
    concurrency = in_flight.concurrency()
    if concurrency > 1:
        dict(in_flight([(genotypes[0], 0)] * concurrency))  # warm-up of its threads
    records = {name: [] for name in steps}
    in_flight_results, in_flight_seconds = {}, 0.0
    for i, genotype in enumerate(genotypes):
        # paired: the implementations alternate architecture by architecture, each going first
        # every other time, so the machine's drift over the run (±25 % within an hour on shared
        # cloud cores) and any effect of the one on the other fall on both alike
        for name in (list(steps) if i % 2 == 0 else list(reversed(steps))):
            records[name].append(steps[name](i, genotype))
        if concurrency > 1 and (i % IN_FLIGHT_BLOCK == IN_FLIGHT_BLOCK - 1 or i == len(genotypes) - 1):
            block = range(i - i % IN_FLIGHT_BLOCK, i + 1)
            results, seconds = timed(device, lambda: dict(in_flight([(genotypes[j], j) for j in block])))
            in_flight_results.update({block[position]: result for position, result in results.items()})
            in_flight_seconds += seconds
    return records, in_flight_results, in_flight_seconds


def compare_with_reference(preset, reference_row, production_rows, n) -> list:
    """The reference row, with each production row's speed-up and ρ against it filled in."""
    reference, reference_s = reference_row["components"], reference_row["s"]
    production = production_rows[0]["components"]
    psi_equal = sum(p["psi"] == r["psi"] for p, r in zip(production, reference))
    phi_rel = max(abs(p["phi"] - r["phi"]) / abs(r["phi"]) for p, r in zip(production, reference))
    print(f"{preset}: Ψ identical for {psi_equal}/{n} architectures, largest relative Φ "
          f"difference {phi_rel:.1e}", flush=True)
    # Φ is one network's three forward/backward passes, which nothing batches: even a Ψ
    # that took no time could not beat this ratio
    print(f"{preset}: ceiling with this Φ (production Ψ taking no time): "
          f"{reference_s / production_rows[0]['phi']:.1f}×", flush=True)
    for row in production_rows:
        row.update(speedup=reference_s / row["s"], rho=spearmanr(normalise_over_set(row["components"]),
                                                                 normalise_over_set(reference)).statistic)
    return [{**reference_row, "speedup": 1.0, "rho": 1.0}]


def bench_preset(preset, args, device, data, genotypes) -> list:
    """The table's rows of one preset: reference, production, several at once, Ray workers."""
    scorer = get_proxy(f"rscore:{preset}", device=device, mean=data.mean, std=data.std)
    images, labels = proxy_batch(data, scorer.config["n_images"])
    scorer.measure(genotypes[0], images, labels, seed=0)  # warm-up: kernels, allocator
    steps = implementations(scorer, preset, device, data, images, labels, not args.no_reference)
    in_flight = InProcessEvaluator(scorer, images, labels, in_flight=args.in_flight)
    records, in_flight_results, in_flight_seconds = time_paired(steps, genotypes, in_flight, device)
    timed_rows = {name: summary_row(preset, name, measured, scorer) for name, measured in records.items()}
    production_rows = [timed_rows["production"]]
    if in_flight.concurrency() > 1:
        production_rows.append(several_at_once_row(preset, f"production, {in_flight.concurrency()} at once",
                                                   in_flight_seconds / len(genotypes), in_flight_results, scorer))
        print(f"{preset}: production on {in_flight.describe()}: {production_rows[-1]['s']:.3f} s/arch", flush=True)
    if args.workers:
        production_rows.append(score_on_workers(scorer, preset, device, data, genotypes, images, labels, args.workers))
        for compared in production_rows[:-1]:
            same = sum(a == b for a, b in zip(production_rows[-1]["components"], compared["components"]))
            print(f"{preset}: {args.workers} Ray workers gave the components of '{compared['implementation']}' "
                  f"(torch threads: {compared['threads']}) for {same}/{args.n} architectures (equal only at "
                  f"equal thread counts)", flush=True)
    if args.no_reference:
        return production_rows
    return compare_with_reference(preset, timed_rows["reference"], production_rows, args.n) + production_rows


def print_table(rows, device) -> None:
    def cell(value, spec, suffix=""):
        return "–" if value is None else f"{value:{spec}}{suffix}"

    print()
    print("| preset | implementation | device | threads | s/arch | Ψ s | Φ s | speed-up | ρ vs reference | flagged |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['preset']} | {r['implementation']} | {device.type} | {r['threads']} | {r['s']:.3f} "
              f"| {cell(r['psi'], '.3f')} | {cell(r['phi'], '.3f')} | {cell(r['speedup'], '.1f', '×')} "
              f"| {cell(r['rho'], '.4f')} | {r['flagged']} |")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_dataset("digits")
    space = DartsSpace()
    rng = np.random.default_rng(args.seed)
    genotypes = [space.decode(space.random_x(rng)) for _ in range(args.n)]
    print(describe_machine(device))
    if hasattr(os, "getloadavg"):
        print("load average before the run: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"{args.n} random DARTS architectures (seed {args.seed}), digits batch, proxy seed i for architecture i")
    rows = [row for preset in args.presets.split(",") for row in bench_preset(preset, args, device, data, genotypes)]
    print_table(rows, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
