"""The shared source checkpoint: G and D trained on the source once, cached under a content key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from tganbench.data.pairs import PairData
from tganbench.fingerprints import code_version, state_fingerprint
from tganbench.models import ModelConfig, build_models
from tganbench.shipped_sources import ShippedSource, load_shipped, prefixed_state
from tganbench.store import atomic_write
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
    shipped: ShippedSource | None = None  # set when the weights are a checkpoint shipped with tganbench


def source_key(pair_fingerprint: str, model: ModelConfig, config: TrainConfig, seed: int) -> str:
    """Content key of a source checkpoint: pair content, architecture, optimisation, steps, seed, code."""
    material = {
        "pair": pair_fingerprint,
        "model": asdict(model),
        "train": asdict(config),
        "seed": seed,
        "code": code_version(*_CODE_FILES),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _load_verified(path: Path, key: str) -> dict:
    """Load a cached checkpoint (``weights_only``) and check its key and content hash; raises if either fails."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("key") != key:
        raise ValueError("the file belongs to another key")
    checksum = state_fingerprint(prefixed_state(saved["g"], saved["d"]))
    if checksum != saved.get("checksum"):
        raise ValueError("checksum mismatch")
    return saved


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
        try:
            saved = _load_verified(path, key)
            log(f"source: reusing cached checkpoint {path} (trained in {saved['seconds']:.1f} s)")
            return SourceCheckpoint(saved["g"], saved["d"], key, path, float(saved["seconds"]), cached=True)
        except Exception as error:  # noqa: BLE001 - any unreadable cache file is retrained, never fatal
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:120]
            log(f"source: cached checkpoint {path} is unreadable or corrupt ({reason}); retraining it")

    log(f"source: pretraining on {len(data.source)} {data.name} source images for {config.steps} steps")
    g, d = build_models(model, seed, device)
    result = train(g, d, SourcePretraining(), data.source.to(device), config, seed, progress="source", quiet=quiet)
    if result.status != "ok":
        raise RuntimeError(f"source pretraining diverged at step {result.steps}; try a lower --lr")
    # The generator every strategy starts from is the one the run evaluates (the moving average, if kept).
    g_state = {k: v.cpu() for k, v in result.eval_generator.state_dict().items()}
    d_state = {k: v.cpu() for k, v in d.state_dict().items()}
    saved = {
        "key": key,
        "g": g_state,
        "d": d_state,
        "seconds": result.train_seconds,
        "checksum": state_fingerprint(prefixed_state(g_state, d_state)),
    }
    atomic_write(path, lambda temporary: torch.save(saved, temporary))
    log(f"source: trained in {result.train_seconds:.1f} s ({result.steps / result.train_seconds:.1f} steps/s), cached at {path}")
    return SourceCheckpoint(saved["g"], saved["d"], key, path, result.train_seconds, cached=False)


def shipped_checkpoint(entry: ShippedSource, log: Callable[[str], None] = print) -> SourceCheckpoint:
    """The shipped source checkpoint ``entry``, checked against its checksum."""
    g, d = load_shipped(entry)
    card = entry.card
    log(f"source: shipped checkpoint {entry.file} (checksum {entry.checksum}, {card.get('steps')} steps, "
        f"trained once in {card.get('seconds', 0):.0f} s)")
    return SourceCheckpoint(g, d, entry.checksum, entry.path, float(card.get("seconds", 0.0)), cached=True,
                            shipped=entry)
