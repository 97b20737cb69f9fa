"""The embedded procedural pairs, registered through the same hook a plugin uses."""

from __future__ import annotations

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
        self.description = (
            f"embedded: {n_source} procedural {source_shape}s -> {target_shape}s "
            f"({n_target_pool} for shots, {n_reference} held out)"
        )

    def load(self, resolution: int) -> PairData:
        """Render the pair; fixed render seeds make it identical on every machine."""
        target = render_shapes(self.target_shape, self.n_target_pool + self.n_reference, resolution, seed=2)
        return PairData(
            name=self.name,
            source=render_shapes(self.source_shape, self.n_source, resolution, seed=1),
            target_pool=target[: self.n_target_pool],
            reference=target[self.n_target_pool :],
        )


@hookimpl
def tganbench_register_pairs(register) -> None:
    """Register the embedded shapes pair (the default)."""
    register(ShapesPair("shapes", source_shape="disk", target_shape="triangle"))
