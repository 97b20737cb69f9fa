"""The shared source checkpoint: G and D trained on the source once, cached under a content key."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

import tganbench
from tganbench.data.pairs import PairData
from tganbench.models import ModelConfig, build_models
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, train

# The files whose code decides what a source checkpoint contains.
_CODE_FILES = ("models/dcgan.py", "train.py", "source.py")


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


def code_version() -> str:
    """Hash of the package version and the code that produces checkpoints."""
    digest = hashlib.sha256(tganbench.__version__.encode())
    package = Path(tganbench.__file__).parent
    for name in _CODE_FILES:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:12]


def source_key(pair_fingerprint: str, model: ModelConfig, config: TrainConfig, seed: int) -> str:
    """Content key of a source checkpoint: pair content, architecture, optimisation, steps, seed, code."""
    material = {
        "pair": pair_fingerprint,
        "model": asdict(model),
        "train": asdict(config),
        "seed": seed,
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def source_checkpoint(
    data: PairData,
    model: ModelConfig,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    cache_dir: Path,
    log: Callable[[str], None] = print,
    quiet: bool = False,
) -> SourceCheckpoint:
    """Load the cached source checkpoint for these settings, or train and cache it."""
    key = source_key(data.fingerprint(), model, config, seed)
    path = cache_dir / "sources" / f"{data.name}-{key}.pt"
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        log(f"source: reusing cached checkpoint {path} (trained in {saved['seconds']:.1f} s)")
        return SourceCheckpoint(saved["g"], saved["d"], key, path, float(saved["seconds"]), cached=True)

    log(f"source: pretraining on {len(data.source)} {data.name} source images for {config.steps} steps")
    g, d = build_models(model, seed, device)
    result = train(g, d, SourcePretraining(), data.source.to(device), config, seed, progress="source", quiet=quiet)
    if result.status != "ok":
        raise RuntimeError(f"source pretraining diverged at step {result.steps}; try a lower --lr")
    saved = {
        "g": {k: v.cpu() for k, v in g.state_dict().items()},
        "d": {k: v.cpu() for k, v in d.state_dict().items()},
        "seconds": result.train_seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(saved, temporary)
    os.replace(temporary, path)
    log(f"source: trained in {result.train_seconds:.1f} s ({result.steps / result.train_seconds:.1f} steps/s), cached at {path}")
    return SourceCheckpoint(saved["g"], saved["d"], key, path, result.train_seconds, cached=False)
