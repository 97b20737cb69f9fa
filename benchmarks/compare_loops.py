"""Steps/s of tganbench's training loop against a plain PyTorch loop, and evaluation throughput.

    python benchmarks/compare_loops.py --device cpu
    python benchmarks/compare_loops.py --device cuda --variants all --results results/<quick-run>

Both loops train the same G and D (batch 64, quick-profile width) in the same
process on the same device; the figure is steps per second after warm-up.
Variants of tganbench's loop (``--variants``, comma-separated):

    fp32               the default: fp32, channels-last
    fp32-contiguous    fp32 with the plain loop's NCHW layout
    bf16               bf16 autocast (--precision bf16), channels-last
    bf16-contiguous    bf16 autocast, NCHW
    compile            torch.compile G and D (--compile), channels-last
    compile-contiguous torch.compile G and D, NCHW
    compile-reduce-overhead   torch.compile mode="reduce-overhead" (CUDA graphs per module; benchmark only)
    cuda-graph         the whole step captured once as one CUDA graph and replayed (--cuda-graph)

A variant that fails prints its error in the table instead of a figure.
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

# Variant name -> TrainConfig settings (None: timed by its own function below).
VARIANTS = {
    "fp32": {},
    "fp32-contiguous": {"memory_format": "contiguous"},
    "bf16": {"precision": "bf16"},
    "bf16-contiguous": {"precision": "bf16", "memory_format": "contiguous"},
    "compile": {"compile": True},
    "compile-contiguous": {"compile": True, "memory_format": "contiguous"},
    "compile-reduce-overhead": None,
    "cuda-graph": {"cuda_graph": True},
}
DEFAULT_VARIANTS = "fp32,fp32-contiguous"
CUDA_ONLY = ("compile-reduce-overhead", "cuda-graph")


def _seconds(device: torch.device, work) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def _reduce_overhead_seconds(g, d, images, args) -> float:
    """tganbench's loop with G and D compiled in mode="reduce-overhead" (not a tganbench option)."""
    g.compile(mode="reduce-overhead")
    d.compile(mode="reduce-overhead")
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size)
    train(g, d, Strategy(), images, TrainConfig(steps=args.warmup, batch_size=args.batch_size), seed=0)
    return min(train(g, d, Strategy(), images, config, seed=0).train_seconds for _ in range(args.repeats))


def time_loops(resolution: int, args: argparse.Namespace, device: torch.device) -> list[list]:
    """Steps/s of the plain loop and of each requested variant of tganbench's loop."""
    quick = resolve_config("quick")
    model = ModelConfig(resolution=resolution, width=args.width, z_dim=quick.z_dim)
    images = render_shapes("triangle", quick.shots[0], resolution, seed=3)
    on_device = images.to(device)
    rows = []
    for variant in ["plain"] + args.variants:
        g, d = build_models(model, seed=0, device=device)
        try:
            if variant in CUDA_ONLY and device.type != "cuda":
                raise RuntimeError("needs a CUDA device")
            if variant == "plain":
                plain_train(g, d, images, args.warmup, args.batch_size, device=device)
                seconds = min(_seconds(device, lambda: plain_train(g, d, images, args.steps, args.batch_size, device=device))
                              for _ in range(args.repeats))
            elif variant == "compile-reduce-overhead":
                seconds = _reduce_overhead_seconds(g, d, on_device, args)
            else:
                config = TrainConfig(steps=args.steps, batch_size=args.batch_size, **VARIANTS[variant])
                warm = TrainConfig(**{**config.__dict__, "steps": args.warmup})
                train(g, d, Strategy(), on_device, warm, seed=0)  # compiles here when asked
                seconds = min(train(g, d, Strategy(), on_device, config, seed=0).train_seconds
                              for _ in range(args.repeats))
            figure = args.steps / seconds
        except Exception as error:  # noqa: BLE001 - an exploratory variant may not work on this device
            figure = f"failed: {type(error).__name__}: {' '.join(str(error).split())[:100]}"
        rows.append([f"{resolution}x{resolution}", "plain PyTorch loop" if variant == "plain" else variant, figure])
        print(f"  timed {rows[-1][1]} at {resolution}x{resolution}", file=sys.stderr, flush=True)
    plain = rows[0][2]
    # Formatted here because a failed variant puts text in the column, and tabulate leaves mixed columns alone.
    return [row[:2] + ([f"{row[2]:.2f}", f"{row[2] / plain:.2f}"] if isinstance(row[2], float) else [row[2], ""])
            for row in rows]


def time_evaluation(device: torch.device, n: int) -> list[list]:
    """Seconds and images/s of one evaluation at the quick profile's settings, with and without KID.

    An evaluation generates ``n`` images, extracts their features and computes FD
    (and KID over the quick profile's subsets); a run computes KID only at the final step.
    """
    quick = resolve_config("quick")
    spec = load_plugins().extractors["shapes"].obj
    reference = render_shapes("triangle", quick.n_reference, 32, seed=2)
    evaluator = Evaluator(spec, reference, device, quick.kid_subsets, quick.kid_subset_size)
    g, _ = build_models(ModelConfig(width=quick.width, z_dim=quick.z_dim), 0, device)
    g.to(memory_format=torch.channels_last)  # as after training
    noise = torch.randn(n, quick.z_dim, device=device)
    rows = []
    for label, kid in (("FD only (intermediate steps)", False), ("FD and KID (final step)", True)):
        evaluator.score(sample_images(g, noise), kid=kid)  # warm-up
        seconds = min(_seconds(device, lambda: evaluator.score(sample_images(g, noise), kid=kid)) for _ in range(3))
        rows.append([label, n, seconds, n / seconds])
    return rows


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
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"tganbench loop variants to time, comma-separated, or 'all' ({', '.join(VARIANTS)})")
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--results", type=Path, nargs="+", default=[], metavar="DIR",
                        help="finished runs' folders, for their evaluation share")
    args = parser.parse_args()
    args.variants = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant '{unknown[0]}' (variants: {', '.join(VARIANTS)})")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch_size}, width {args.width}, "
          f"best of {args.repeats} x {args.steps} timed steps after {args.warmup} warm-up steps")

    rows = []
    for resolution in (int(r) for r in args.resolutions.split(",")):
        rows.extend(time_loops(resolution, args, device))
    print(tabulate(rows, headers=["resolution", "loop", "steps/s", "x plain"], disable_numparse=True))
    print()
    print(tabulate(time_evaluation(device, args.eval_images),
                   headers=["evaluation", "generated images", "seconds", "images/s"], floatfmt=".3f"))
    if args.results:
        print()
        print(tabulate([evaluation_share(folder) for folder in args.results],
                       headers=["run", "profile", "wall s", "evaluation s", "evaluation share"], floatfmt=".3f"))


if __name__ == "__main__":
    main()
