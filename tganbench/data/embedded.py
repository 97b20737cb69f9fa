"""The embedded procedural pairs, registered through the same hook a plugin uses."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from tganbench.data.pairs import Pair, PairData
from tganbench.data.shapes import render_shapes
from tganbench.hookspecs import hookimpl


class ShapesPair(Pair):
    """Source: one shape family; target: another; same colour and layout statistics."""

    def __init__(
        self,
        name: str,
        source_shape: str,
        target_shape: str,
        n_source: int = 5000,
        n_target_pool: int = 2000,
        n_reference: int = 2000,
    ) -> None:
        self.name = name
        self.source_shape = source_shape
        self.target_shape = target_shape
        self.n_source = n_source
        self.n_target_pool = n_target_pool
        self.n_reference = n_reference
        self.description = f"procedural shapes: {source_shape} -> {target_shape}"
        self.origin = "embedded (no download)"
        self.sizes = (n_source, n_target_pool, n_reference)
        self.families = (source_shape, target_shape)
        # Rotation, position and gradient direction are uniform and the image is square, so a mirrored or
        # quarter-turned render is as likely as the render itself.
        self.symmetries = ("xflip", "rot90")

    def load(self, resolution: int, data_root: Path | None = None) -> PairData:
        """Render the pair; fixed render seeds make it identical on every machine."""
        target = _rendered(self.target_shape, self.n_target_pool + self.n_reference, resolution, 2).clone()
        return PairData(
            name=self.name,
            source=_rendered(self.source_shape, self.n_source, resolution, 1).clone(),
            target_pool=target[: self.n_target_pool],
            reference=target[self.n_target_pool :],
        )


@functools.lru_cache(maxsize=2)
def _rendered(shape: str, count: int, resolution: int, seed: int) -> torch.Tensor:
    """``render_shapes``, kept for the life of the process: a process that plans several runs renders once.

    Rendering a pair takes seconds on a CPU; callers get a clone, so nothing
    they do to their images can change what the next run loads. Only the last
    pair's two renders are kept (at 256x256 one pair is about 1.8 GB).
    """
    return render_shapes(shape, count, resolution, seed=seed)


@hookimpl
def tganbench_register_pairs(register) -> None:
    """Register the embedded shapes pairs: the default and a nearer and a farther target."""
    register(ShapesPair("shapes", source_shape="disk", target_shape="triangle"))
    register(ShapesPair("shapes-near", source_shape="disk", target_shape="square"))
    register(ShapesPair("shapes-far", source_shape="disk", target_shape="cross"))
