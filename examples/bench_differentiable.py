"""How long does an epoch of the differentiable searches take at their papers' settings? Runs one
search epoch (the expensive kind: α and w both learn) of RNAS-OS (max, uniform) and RNAS-FD (H)
with each paper preset (trnas/configs/rnas_*_paper.yaml: C = 16, 8 cells, batch 64 or 128) over
``--n-images`` embedded digits (their content does not change the time), and prints the epoch's
wall time, the time per step, the whole search extrapolated to CIFAR-10 (25,000 images per half),
and the memory estimate beside the peak actually used (on the CPU the process's peak so far).

    python examples/bench_differentiable.py --device cuda --n-images 1280
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from bench_proxy_speed import describe_machine  # noqa: E402
from differentiable import run_differentiable_search  # noqa: E402
from evaluation.runtime import resolve_device  # noqa: E402
from nas_problem.files import format_seconds  # noqa: E402

CIFAR10_HALF = 25_000
METHODS = ("rnas-os:max", "rnas-os:uniform", "rnas-fd:H")


def paper_preset(algorithm: str) -> dict:
    return yaml.safe_load((ROOT / "trnas" / "configs" / f"{algorithm.replace('-', '_')}_paper.yaml").read_text())


def time_one_epoch(algorithm: str, variant: str, n_images: int, device: str, folder: Path, overrides: dict) -> dict:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    preset = dict(paper_preset(algorithm), **overrides)
    config = dict(preset, variant=variant, dataset="digits", n_images=n_images, epochs=1, warmup_epochs=0,
                  augment=False, device=device, out_dir=str(folder))
    run_differentiable_search(config, report=lambda line: None)
    summary = json.loads((folder / "summary.json").read_text())
    steps = math.ceil(n_images * config["train_portion"] / config["batch_size"])
    per_step = summary["last_epoch"]["epoch_s"] / steps
    full_steps = math.ceil(CIFAR10_HALF / preset["batch_size"])
    # a warm-up epoch trains w alone: counted as half a search epoch
    search = per_step * full_steps * (preset["epochs"] - preset["warmup_epochs"] / 2)
    memory = summary["memory"]
    return dict(method=f"{algorithm} {variant}", batch=preset["batch_size"], epoch_s=summary["last_epoch"]["epoch_s"],
                step_s=per_step, cifar_epoch=format_seconds(per_step * full_steps), search=format_seconds(search),
                estimate_gib=memory["estimate"]["total_bytes"] / 2 ** 30,
                peak_gib=memory.get("peak_cuda_mib", memory["peak_rss_mib"]) / 1024)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--n-images", type=int, default=1280, help="digits images searched over (default 1280)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"algorithm:variant list (default {','.join(METHODS)})")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="change a paper setting, e.g. channels=4 batch_size=8 for a check on the CPU")
    args = parser.parse_args(argv)
    overrides = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.set)}
    device = resolve_device(args.device)
    print(describe_machine(device))
    print(f"{'method':<16} {'batch':>5} {'epoch':>8} {'per step':>9} {'CIFAR-10 epoch':>15} {'search':>10} "
          f"{'estimate':>9} {'peak':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        for item in args.methods.split(","):
            algorithm, variant = item.split(":")
            row = time_one_epoch(algorithm, variant, args.n_images, str(device), Path(scratch) / item.replace(":", "-"),
                                 overrides)
            print(f"{row['method']:<16} {row['batch']:>5} {row['epoch_s']:>7.1f}s {row['step_s']:>8.2f}s "
                  f"{row['cifar_epoch']:>15} {row['search']:>10} {row['estimate_gib']:>7.2f}G {row['peak_gib']:>7.2f}G",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
