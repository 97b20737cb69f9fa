"""Content hashes: of tensors, of state dicts, of the code that produced a cached file, and cache keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

import tganbench


def tensor_fingerprint(tensor: torch.Tensor) -> str:
    """Hash of a tensor's shape (so an image set's resolution) and its bytes."""
    digest = hashlib.sha256(str(tuple(tensor.shape)).encode())
    digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def state_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """Hash of named tensors (a state dict): names, dtypes and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(f"{name}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def code_version(*files: str) -> str:
    """Hash of the package version and the given package files (paths relative to ``tganbench/``)."""
    digest = hashlib.sha256(tganbench.__version__.encode())
    package = Path(tganbench.__file__).parent
    for name in files:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:12]


def content_key(material: dict) -> str:
    """Key of a cached artefact: a hash of the JSON of everything that decides its content."""
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]
