"""Train the source checkpoint shipped for the embedded pairs, measure it, and record it in ``shipped/index.json``.

Run: ``python -m tganbench.train_shipped_source`` (the defaults are the
settings of the committed checkpoint; see ``shipped/index.json`` for how long
it took). Training goes through the same loop and the same source-pretraining
strategy as ``tganbench run --source-checkpoint pretrain``; only the budget is
larger. Every ``--eval-every`` steps it prints FD[shapes] against held-out
real source images and the share of samples the recognition network names as
the source shape, and the card keeps that curve. The embedded pairs all share
one source image set, so one checkpoint serves all of them.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from tganbench.augmentations.symmetries import parse_symmetries
from tganbench.config import RunConfig
from tganbench.data.embedded import ShapesPair
from tganbench.data.shapes import render_shapes
from tganbench.fingerprints import state_fingerprint, tensor_fingerprint
from tganbench.metrics.evaluator import Evaluator
from tganbench.metrics.recognition import recognition_scores
from tganbench.plan import resolve_model
from tganbench.plugins import load_plugins
from tganbench.shipped_sources import INDEX, SHIPPED_DIR, prefixed_state, shipped_sources
from tganbench.source import SourcePretraining
from tganbench.store import atomic_write, atomic_write_text
from tganbench.train import TrainConfig, sample_images, train

HELD_OUT_SEED = 3  # real source images the checkpoint never saw (the pairs render with seeds 1 and 2)
EVAL_NOISE_SEED = 1_000_003  # the runs' evaluation noise of seed 0


def main(argv: list[str] | None = None) -> None:
    """Train, measure and save the shipped source checkpoint; print its card."""
    defaults = RunConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", default="shapes", help="an embedded pair (all share the disk source)")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--architecture", default=defaults.architecture, help="NAME[k=v,...], as in tganbench run")
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--resolution", type=int, default=defaults.resolution)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--ema-beta", type=float, default=0.999)
    parser.add_argument("--r1-gamma", type=float, default=0.0)
    parser.add_argument("--real-symmetries", default="none", help="e.g. xflip,rot90 (the pair declares them)")
    parser.add_argument("--d-norm", default=defaults.d_norm)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="weights file (default: shipped/<pair source>-<res>px-w<width>.pt)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    pair = load_plugins().pairs[args.pair].obj
    if not isinstance(pair, ShapesPair):
        raise SystemExit(f"{args.pair} is not an embedded shapes pair")
    data = pair.load(args.resolution)
    source_family = pair.families[0]
    registry = load_plugins()
    model = resolve_model(RunConfig(architecture=args.architecture, resolution=args.resolution, width=args.width,
                                    d_norm=args.d_norm), registry)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_beta=args.ema_beta,
                         r1_gamma=args.r1_gamma, real_symmetries=parse_symmetries(args.real_symmetries))
    held_out = render_shapes(source_family, 1000, args.resolution, seed=HELD_OUT_SEED)
    evaluator = Evaluator(registry.extractors["shapes"].obj, held_out, torch.device("cpu"),
                          kid_subsets=50, kid_subset_size=500)
    noise = torch.randn((1000, model.z_dim), generator=torch.Generator().manual_seed(EVAL_NOISE_SEED))
    curve: list[dict[str, float]] = []
    started = time.perf_counter()
    prefix = "" if model.architecture.name == "dcgan" else f"{model.architecture.name}-"
    name = args.out or f"{source_family}-{prefix}{args.resolution}px-w{args.width}.pt"
    path = SHIPPED_DIR / Path(name).name
    g, d = model.build(args.seed, torch.device("cpu"))

    def save(generator: torch.nn.Module) -> tuple[dict, dict]:
        g_state = {k: v.contiguous() for k, v in generator.state_dict().items()}
        d_state = {k: v.contiguous() for k, v in d.state_dict().items()}
        atomic_write(path, lambda temporary: torch.save({"g": g_state, "d": d_state}, temporary))
        return g_state, d_state

    def measure(step: int, train_seconds: float, generator: torch.nn.Module) -> None:
        """Score the generator and save the weights so far (a long run can be stopped and used)."""
        samples = sample_images(generator, noise)
        shown = recognition_scores(samples, (source_family, pair.families[1]))
        row = {"step": step, "train_seconds": round(train_seconds, 1), "fd": round(evaluator.score(samples, kid=False)["fd"], 3),
               "recognised_as_source": shown["recognised_source"]}
        curve.append(row)
        print(json.dumps(row), flush=True)
        save(generator)

    result = train(g, d, SourcePretraining(), data.source, config, args.seed, evaluate=measure,
                   eval_every=args.eval_every, progress="source")
    if result.status != "ok":
        raise SystemExit(f"training diverged at step {result.steps}")
    g_state, d_state = save(result.eval_generator)
    final = curve[-1]
    card = {
        "steps": args.steps,
        "seed": args.seed,
        "train": {k: v for k, v in asdict(config).items() if k in ("batch_size", "lr", "beta1", "beta2", "ema_beta", "r1_gamma")}
                  | {"real_symmetries": list(config.real_symmetries)},
        "seconds": round(result.train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "fd_held_out_source": final["fd"],
        "recognised_as_source": final["recognised_as_source"],
        "measured_on": f"1000 samples from the runs' seed-0 evaluation noise vs 1000 held-out {source_family} "
                       f"renders (seed {HELD_OUT_SEED}), FD[shapes]",
        "curve": curve,
    }
    described = {"architecture": model.architecture.name, **model.architecture.params,
                 "resolution": model.resolution, "z_dim": model.z_dim}
    entry = {"file": path.name, "source_fingerprint": tensor_fingerprint(data.source), "model": described,
             "checksum": state_fingerprint(prefixed_state(g_state, d_state)), "card": card}
    entries = [asdict(e) for e in shipped_sources() if e.file != path.name] + [entry]
    atomic_write_text(INDEX, json.dumps(entries, indent=2) + "\n")
    print(f"wrote {path} and its card in {INDEX}: FD[shapes] {final['fd']:.2f} to held-out {source_family}s, "
          f"{final['recognised_as_source']:.0%} recognised as {source_family}, {result.train_seconds:.0f} s")


if __name__ == "__main__":
    main()
