"""Steps/s of tganbench's training loop against a plain PyTorch loop, and evaluation throughput.

    python benchmarks/compare_loops.py --device cpu
    python benchmarks/compare_loops.py --device cuda --compile --bf16 --results results/<quick-run>

Both loops train the same G and D (batch 64, quick-profile width) in the same
process on the same device; the figure is steps per second after warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch
from tabulate import tabulate

from tganbench.config import resolve_config
from tganbench.data.shapes import render_shapes
from tganbench.metrics.evaluator import Evaluator
from tganbench.models import ModelConfig, build_models
from tganbench.plugins import load_plugins
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, sample_images, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_loop import plain_train  # noqa: E402


def _seconds(device: torch.device, work) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def time_loops(resolution: int, args: argparse.Namespace, device: torch.device) -> list[list]:
    """Steps/s of the plain loop and of tganbench's loop (plus its bf16 / compiled variants if asked)."""
    quick = resolve_config("quick")
    model = ModelConfig(resolution=resolution, width=args.width, z_dim=quick.z_dim)
    images = render_shapes("triangle", quick.shots[0], resolution, seed=3)
    on_device = images.to(device)
    variants = [("plain PyTorch loop", None)]
    variants.append(("tganbench loop (fp32)", TrainConfig(steps=args.steps, batch_size=args.batch_size)))
    if args.bf16:
        variants.append(("tganbench loop (bf16)", TrainConfig(steps=args.steps, batch_size=args.batch_size, precision="bf16")))
    if args.compile:
        variants.append(("tganbench loop (compiled)", TrainConfig(steps=args.steps, batch_size=args.batch_size, compile=True)))
    rows = []
    for label, config in variants:
        g, d = build_models(model, seed=0, device=device)
        if config is None:
            plain_train(g, d, images, args.warmup, args.batch_size, device=device)
            seconds = min(_seconds(device, lambda: plain_train(g, d, images, args.steps, args.batch_size, device=device))
                          for _ in range(args.repeats))
        else:
            warm = TrainConfig(**{**config.__dict__, "steps": args.warmup})
            train(g, d, Strategy(), on_device, warm, seed=0)  # compiles here when asked
            seconds = min(train(g, d, Strategy(), on_device, config, seed=0).train_seconds for _ in range(args.repeats))
        rows.append([f"{resolution}x{resolution}", label, args.steps / seconds])
    plain = rows[0][2]
    return [row + [row[2] / plain] for row in rows]


def time_evaluation(device: torch.device, n: int) -> list:
    """Images/s of one full evaluation (generate, extract features, FD and KID) at the quick profile's settings."""
    quick = resolve_config("quick")
    spec = load_plugins().extractors["shapes"].obj
    reference = render_shapes("triangle", quick.n_reference, 32, seed=2)
    evaluator = Evaluator(spec, reference, device, quick.kid_subsets, quick.kid_subset_size)
    g, _ = build_models(ModelConfig(width=quick.width, z_dim=quick.z_dim), 0, device)
    noise = torch.randn(n, quick.z_dim, device=device)
    evaluator.score(sample_images(g, noise))  # warm-up
    seconds = _seconds(device, lambda: evaluator.score(sample_images(g, noise)))
    return [n, seconds, n / seconds]


def evaluation_share(results: Path) -> list:
    """Share of a finished run's wall time spent in evaluation, from its cells.csv and manifest.json."""
    cells = pd.read_csv(results / "cells.csv")
    manifest = json.loads((results / "manifest.json").read_text())
    wall = (datetime.fromisoformat(manifest["finished"]) - datetime.fromisoformat(manifest["started"])).total_seconds()
    return [str(results), manifest["config"]["profile"], wall, cells["eval_seconds"].sum(), cells["eval_seconds"].sum() / wall]


def main() -> None:
    """Print the loop comparison, the evaluation throughput and (optionally) a run's evaluation share."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--resolutions", default="32,64")
    parser.add_argument("--width", type=int, default=resolve_config("quick").width)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--results", type=Path, help="a finished run's folder, for its evaluation share")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch_size}, width {args.width}, {args.steps} timed steps")

    rows = []
    for resolution in (int(r) for r in args.resolutions.split(",")):
        rows.extend(time_loops(resolution, args, device))
    print(tabulate(rows, headers=["resolution", "loop", "steps/s", "x plain"], floatfmt=".2f"))
    print()
    print(tabulate([time_evaluation(device, args.eval_images)],
                   headers=["generated images", "evaluation s", "images/s"], floatfmt=".2f"))
    if args.results:
        print()
        print(tabulate([evaluation_share(args.results)],
                       headers=["run", "profile", "wall s", "evaluation s", "evaluation share"], floatfmt=".3f"))


if __name__ == "__main__":
    main()
