"""Where a run executes: the device, package versions, git revision and peak memory."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

import tganbench
from tganbench.errors import UsageError

try:
    import resource  # Unix only
except ImportError:  # pragma: no cover
    resource = None


def resolve_device(name: str, cuda_graph: bool = False) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA (or CUDA graphs) without one is a usage error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if cuda_graph and name != "cuda":
        raise UsageError("--cuda-graph needs a CUDA device, and none is available")
    if name == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    return torch.device(name)


def versions() -> dict[str, str]:
    """Versions of Python, tganbench and the packages that decide the numbers."""
    out = {"python": platform.python_version(), "tganbench": tganbench.__version__}
    for package in ("torch", "torchvision", "torch-fidelity", "pluggy", "pandas"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "missing"
    return out


def git_revision() -> str | None:
    """The commit tganbench runs from, when it runs from a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(tganbench.__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def device_name(device: torch.device) -> str:
    """Human-readable device for tables and the manifest."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak memory of the cell just run: CUDA max allocated, or on CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "peak_memory_kind": "cuda max allocated"}
    if resource is None:
        return {"peak_memory_mb": float("nan"), "peak_memory_kind": "unavailable"}
    # ru_maxrss is in KiB on Linux (bytes on macOS); it is a high-water mark of the whole process.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 2**20 if platform.system() == "Darwin" else 2**10
    return {"peak_memory_mb": rss / scale, "peak_memory_kind": "process peak RSS"}
