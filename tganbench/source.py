"""The shared source checkpoint: G and D trained on the source once and cached, shipped, or read from a file."""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from tganbench.data.pairs import PairData
from tganbench.cache import load_or_build
from tganbench.checkpoints import SourceFile, shown
from tganbench.fingerprints import code_version, content_key, state_fingerprint
from tganbench.models import ModelSpec
from tganbench.shipped_sources import ShippedSource, load_shipped, prefixed_state
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, train

# The package files whose code decides what a source checkpoint contains (besides the architecture's module);
# not the CUDA-graph layer, which only replays the same step.
_CODE_FILES = ("step.py", "train.py", "source.py", "augmentations/symmetries.py")


class SourcePretraining(Strategy):
    """Plain adversarial training of everything: how the source checkpoint is made."""

    name = "source"
    description = "source pretraining"
    from_source = False


@dataclass
class SourceCheckpoint:
    """The source weights every transfer strategy starts from, and where they came from."""

    g: dict[str, torch.Tensor]
    d: dict[str, torch.Tensor]
    key: str
    path: Path
    seconds: float
    cached: bool
    shipped: ShippedSource | None = None  # set when the weights are a checkpoint shipped with tganbench
    file: SourceFile | None = None  # set when the weights come from a checkpoint file (--source-checkpoint PATH)


def source_key(pair_fingerprint: str, model: ModelSpec, config: TrainConfig, seed: int) -> str:
    """Content key of a source checkpoint: pair content, architecture, optimisation, steps, seed, code."""
    architecture_code = inspect.getsource(inspect.getmodule(type(model.architecture)))
    return content_key({
        "pair": pair_fingerprint,
        "model": model.describe(),
        "train": asdict(config),
        "seed": seed,
        "code": code_version(*_CODE_FILES),
        "architecture_code": hashlib.sha256(architecture_code.encode()).hexdigest()[:12],
    })


def _checksum(entry: dict) -> str:
    return state_fingerprint(prefixed_state(entry["g"], entry["d"]))


def source_checkpoint(
    data: PairData,
    model: ModelSpec,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    cache_dir: Path,
    log: Callable[[str], None] = print,
    quiet: bool = False,
    allow_build: bool = True,
) -> SourceCheckpoint:
    """Load the cached source checkpoint for these settings, or train and cache it (only load: ``allow_build`` False)."""
    key = source_key(data.fingerprint(), model, config, seed)
    path = cache_dir / "sources" / f"{data.name}-{key}.pt"

    def pretrain() -> dict:
        log(f"source: pretraining on {len(data.source)} {data.name} source images for {config.steps} steps")
        g, d = model.build(seed, device)
        result = train(g, d, SourcePretraining(), data.source.to(device), config, seed, progress="source",
                       quiet=quiet)
        if result.status != "ok":
            raise RuntimeError(f"source pretraining diverged at step {result.steps}; try a lower --lr")
        log(f"source: trained in {result.train_seconds:.1f} s ({result.steps / result.train_seconds:.1f} steps/s), "
            f"cached at {path}")
        # The generator every strategy starts from is the one the run evaluates (the moving average, if kept).
        return {"g": {k: v.cpu() for k, v in result.eval_generator.state_dict().items()},
                "d": {k: v.cpu() for k, v in d.state_dict().items()}, "seconds": result.train_seconds}

    entry, cached = load_or_build(path, key, pretrain, _checksum, log, "source", allow_build=allow_build)
    if cached:
        log(f"source: reusing cached checkpoint {path} (trained in {entry['seconds']:.1f} s)")
    return SourceCheckpoint(entry["g"], entry["d"], key, path, float(entry["seconds"]), cached=cached)


def shipped_checkpoint(entry: ShippedSource, log: Callable[[str], None] = print) -> SourceCheckpoint:
    """The shipped source checkpoint ``entry``, checked against its checksum."""
    g, d = load_shipped(entry)
    card = entry.card
    log(f"source: shipped checkpoint {entry.file} (checksum {entry.checksum}, {card.get('steps')} steps, "
        f"trained once in {card.get('seconds', 0):.0f} s)")
    return SourceCheckpoint(g, d, entry.checksum, entry.path, float(card.get("seconds", 0.0)), cached=True,
                            shipped=entry)


def file_checkpoint(source: SourceFile, log: Callable[[str], None] = print) -> SourceCheckpoint:
    """The source checkpoint read from a file (already checked against the run's models by ``load_source_file``)."""
    card = source.info.get("card")
    seconds = card.get("seconds") if isinstance(card, dict) else None  # known for tganbench's own files
    log(f"source: checkpoint file {shown(source.path)} ({source.format} format, checksum {source.checksum}); "
        "every transfer strategy starts from it")
    return SourceCheckpoint(source.g, source.d, source.checksum, source.path,
                            float(seconds) if isinstance(seconds, (int, float)) else 0.0, cached=True, file=source)
