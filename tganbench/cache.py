"""One on-disk cache for artefacts a run builds once: source checkpoints and reference features.

An entry is a ``torch.save``d dictionary holding its content key, its payload
and a checksum of the payload, written atomically. Loading checks all three
(``weights_only``); a file that is missing, unreadable or does not match is
rebuilt, never trusted and never fatal, except where building is not allowed
(a worker process of a parallel run only loads what the driver built).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from tganbench.store import atomic_write


class MissingArtefact(RuntimeError):
    """A shared artefact (source checkpoint, reference features) that a worker must load is not in the cache."""


def load_or_build(
    path: Path,
    key: str,
    build: Callable[[], dict[str, Any]],
    checksum: Callable[[dict[str, Any]], str],
    log: Callable[[str], None],
    what: str,
    check: Callable[[dict[str, Any]], None] = lambda entry: None,
    allow_build: bool = True,
) -> tuple[dict[str, Any], bool]:
    """The cached entry at ``path`` if it holds ``key`` and its checksum matches, else ``build()`` stored there.

    Returns ``(entry, reused)``. ``checksum(entry)`` hashes the payload;
    ``check(entry)`` may raise ``ValueError`` for content that does not fit.
    A bad file is reported in one line (``what`` names the artefact) and rebuilt.
    Without ``allow_build``, a missing or bad file raises :class:`MissingArtefact` instead.
    """
    if path.exists():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if entry.get("key") != key:
                raise ValueError("the file belongs to another key")
            check(entry)
            if checksum(entry) != entry.get("checksum"):
                raise ValueError("checksum mismatch")
            return entry, True
        except Exception as error:  # noqa: BLE001 - any unreadable cache file is rebuilt, never fatal
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:120]
            log(f"{what}: cache file {path} is unreadable or corrupt ({reason}); rebuilding it")
    if not allow_build:
        raise MissingArtefact(
            f"{what}: {path} is missing or unreadable; a worker only loads what the driver built before "
            "dispatching cells, so every worker must see the driver's cache folder (--cache-dir)")
    entry = {**build(), "key": key}
    entry["checksum"] = checksum(entry)
    atomic_write(path, lambda temporary: torch.save(entry, temporary))
    return entry, False
