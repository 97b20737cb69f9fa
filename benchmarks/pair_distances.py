"""Print how far each embedded pair's target is from its source, in FD[shapes].

Run: ``python benchmarks/pair_distances.py``. For every embedded pair it scores
1,000 source images against the pair's first 1,000 held-out target images with
the shapes extractor, and 1,000 fresh source renders against 1,000 training
source images (the floor: two samples of the same family). These are the
distances the pairs table in docs/pairs.md quotes. ``--grid FILE.png`` also saves
one row of eight images per family (the source's disks, then each target), the
picture of the pairs in docs/pairs.md.
"""

from __future__ import annotations

import argparse

import torch
import torchvision

from tganbench.data.shapes import render_shapes
from tganbench.metrics.evaluator import Evaluator
from tganbench.plugins import load_plugins

N = 1000


def main() -> None:
    """Score every embedded pair and print one line each; optionally save the pairs' picture."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", default=None, help="save eight images of each family to this PNG")
    args = parser.parse_args()
    plugins = load_plugins()
    rows = []
    shapes = plugins.extractors["shapes"].obj
    for name, registered in plugins.pairs.items():
        pair = registered.obj
        if not getattr(pair, "families", None):
            continue
        data = pair.load(32)
        if not rows:
            rows.append(data.source[:8])
        rows.append(data.reference[:8])
        evaluator = Evaluator(shapes, data.reference[:N], torch.device("cpu"), kid_subsets=10, kid_subset_size=N // 2)
        fd = evaluator.score(data.source[:N], kid=False)["fd"]
        print(f"{name:12s} {pair.families[0]} -> {pair.families[1]}: FD[shapes] {fd:.1f}", flush=True)
    source = render_shapes("disk", N, 32, seed=1)
    fresh = render_shapes("disk", N, 32, seed=3)
    floor = Evaluator(shapes, source, torch.device("cpu"), kid_subsets=10, kid_subset_size=N // 2).score(fresh, kid=False)
    print(f"floor        disk renders vs other disk renders: FD[shapes] {floor['fd']:.1f}")
    if args.grid:
        grid = torch.nn.functional.interpolate(torch.cat(rows).float() / 255, scale_factor=2, mode="nearest")
        torchvision.utils.save_image(grid, args.grid, nrow=8, padding=2, pad_value=1.0)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
