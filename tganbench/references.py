"""Reference rows: what a strategy's numbers are read against, scored exactly like a cell's final samples.

For every (shots, seed) of a run, three image sets stand in for a generator's
N final samples and go through the same metrics (against the same held-out
test images, with the same training shots):

* ``copy-shots``: the K training shots tiled to N images. A generator that
  only reproduces its training images would score this; FD rewards it, the
  data-copying and diversity measures expose it (the memorisation trap).
* ``real``: N real target images that are neither shots nor held out, where
  the pair has them (the floor: what a perfect generator would score).
* ``source``: the untouched source generator's samples from the seed's
  evaluation noise, one row per source checkpoint (the starting point).

They are written to ``references.csv``, never among the cells: they are not
strategies, and no interval, difference or gate treats them as such.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from tganbench.cell import SharedArtefacts, evaluation_noise, score
from tganbench.data.pairs import PairData, Shots
from tganbench.metric import MetricContext
from tganbench.models import ModelSpec
from tganbench.plan import Plan
from tganbench.source import SourceCheckpoint
from tganbench.step import sample_images
from tganbench.store import NO_SOURCE

# Offset of the seed that picks the `real` images, apart from the seeds that draw the shots.
REAL_SEED_OFFSET = 2_000_003


def copy_shots(shots: torch.Tensor, n: int) -> torch.Tensor:
    """The K ``shots`` repeated in order until there are ``n`` images."""
    repeats = math.ceil(n / len(shots))
    return shots.repeat(repeats, 1, 1, 1)[:n]


def unused_target_images(data: PairData, shots: Shots, n: int, seed: int) -> torch.Tensor:
    """Up to ``n`` target-pool images that are not among ``shots`` (held-out images are never in the pool).

    Drawn by a permutation of ``seed``; fewer than ``n`` when the pool has no more.
    """
    unused = torch.ones(len(data.target_pool), dtype=torch.bool)
    unused[shots.indices] = False
    candidates = unused.nonzero().flatten()
    order = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed + REAL_SEED_OFFSET))
    return data.target_pool[candidates[order[:n]].sort().values]


def source_samples(model: ModelSpec, source: SourceCheckpoint, noise: torch.Tensor) -> torch.Tensor:
    """The untouched source generator's samples (uint8) from ``noise``."""
    g, _ = model.build(0, noise.device)
    g.load_state_dict(source.g)
    return sample_images(g, noise)


def reference_sets(plan: Plan, shared: SharedArtefacts, shots: int, seed: int) -> list[tuple[str, int, torch.Tensor]]:
    """``(kind, source seed, images)`` of every reference of one (shots, seed) of ``plan``.

    ``real`` only where the pool has at least two unused images; one ``source``
    set per source checkpoint in ``shared.sources``, from the seed's evaluation noise.
    """
    n, drawn = plan.config.n_generated, plan.shots[shots, seed]
    sets = [("copy-shots", NO_SOURCE, copy_shots(drawn.images, n))]
    real = unused_target_images(plan.data, drawn, n, seed)
    if len(real) >= 2:
        sets.append(("real", NO_SOURCE, real))
    noise = evaluation_noise(plan.config, seed, shared.device, plan.model.z_dim)
    for source_seed, source in sorted(shared.sources.items()):
        sets.append(("source", source_seed, source_samples(plan.model, source, noise)))
    return sets


def reference_row(
    kind: str, source_seed: int, images: torch.Tensor, shots: int, seed: int, plan: Plan, shared: SharedArtefacts,
) -> dict[str, Any]:
    """One references.csv row: which (shots, seed, source seed), the kind, and every metric's final columns."""
    context = MetricContext(shared.context.evaluator, shared.context.reference, shared.context.families,
                            plan.shots[shots, seed].images)
    scores = score(images, 0, True, context, shared.metrics)
    columns = {cells: scores[column] for metric in shared.metrics for column, cells in metric.columns.items()}
    return {"pair": plan.config.pair, "shots": shots, "seed": seed, "source_seed": source_seed, "reference": kind,
            "n_images": len(images), **columns}
