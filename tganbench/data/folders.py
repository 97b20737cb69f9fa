"""A pair made of two user image folders (``tganbench run --source DIR --target DIR``).

Reading rules:

* Files are found by walking each folder recursively (symlinked folders are not
  followed) and kept when their suffix, in any case, is in ``IMAGE_EXTENSIONS``;
  they are read in the order of their path relative to the folder (POSIX form),
  so the same tree gives the same tensor on every machine. Other files (hidden
  ones such as ``.DS_Store`` included) are ignored, with one warning that counts
  them.
* Decode failures: a file with an image extension that cannot be opened or
  decoded (unknown format, truncated, unreadable, too many pixels) is skipped
  with a warning naming the file and the reason; after 10 such warnings a single
  "... and N more undecodable files skipped" line follows. Only when no image at
  all can be decoded is it an error.
* Colour: every image becomes RGB. Images with transparency (RGBA, LA, palette
  with a transparent colour, ...) are composited over a white background;
  16-bit grayscale is scaled to 8 bits; other modes (L, CMYK, ...) are converted
  by Pillow. The EXIF orientation tag, when present, is applied first.
* Size: the shorter side is resized to the resolution (bicubic, antialiased),
  then the centre square is cropped.

Split of the target folder into shots and held-out images: the target images,
in path order, are shuffled by one fixed permutation (seed ``SPLIT_SEED``); the
first ``held_out`` images of the permutation are the held-out reference set,
the rest the pool that shots are drawn from. Both keep path order. Adding or
removing a target image changes the split.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import InterpolationMode

from tganbench.data.pairs import Pair, PairData
from tganbench.errors import UsageError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})

# Seed of the fixed permutation that splits the target folder into pool and held-out images.
SPLIT_SEED = 20240611

MIN_HELD_OUT = 20
MAX_DEFAULT_HELD_OUT = 2000
MAX_DECODE_WARNINGS = 10

_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError)
_TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def warn_to_stderr(message: str) -> None:
    """Print one warning line on stderr, the way the CLI prints its warnings."""
    print(f"tganbench: warning: {message}", file=sys.stderr)


def _list_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, relative to it; a folder that cannot be listed is an error."""

    def fail(error: OSError) -> None:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"cannot list image folder {error.filename or folder}: {reason}")

    files = []
    for directory, _, names in os.walk(folder, onerror=fail):
        for name in names:
            files.append((Path(directory) / name).relative_to(folder))
    return files


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, putting transparent pixels on white."""
    if image.mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow clips 16-bit values to 255 when converting to 8 bits; scale them instead.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")


def _decode(path: Path, resolution: int) -> torch.Tensor:
    """One image file as a uint8 (3, resolution, resolution) tensor; Pillow errors propagate."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    rgb = TF.resize(rgb, resolution, interpolation=InterpolationMode.BICUBIC, antialias=True)
    rgb = TF.center_crop(rgb, [resolution, resolution])
    return TF.pil_to_tensor(rgb)


def _reason(error: BaseException) -> str:
    """A few words on why a file could not be decoded."""
    if isinstance(error, UnidentifiedImageError):
        return "not a recognised image format"
    if isinstance(error, Image.DecompressionBombError):
        return "too many pixels (decompression bomb guard)"
    if isinstance(error, PermissionError):
        return "permission denied"
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def load_image_folder(folder: Path, resolution: int, warn: Callable[[str], None]) -> torch.Tensor:
    """Decode every image under ``folder`` into a uint8 tensor (N, 3, resolution, resolution).

    See the module docstring for which files are read, in which order, and how
    undecodable files, colour modes and sizes are handled. Warnings go to ``warn``,
    one line per call. Raises ``UsageError`` when the folder is missing, is not a
    folder, cannot be listed, holds no file with an image extension, or holds no
    decodable image.
    """
    folder = Path(folder)
    if not folder.exists():
        raise UsageError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise UsageError(f"image folder {folder} is not a folder")

    files = _list_files(folder)
    images = sorted((path for path in files if path.suffix.lower() in IMAGE_EXTENSIONS), key=Path.as_posix)
    ignored = len(files) - len(images)
    if ignored:
        warn(f"ignored {ignored} file(s) without an image extension in {folder}")
    if not images:
        extensions = " ".join(sorted(IMAGE_EXTENSIONS))
        raise UsageError(f"no image files in {folder} (looked for {extensions}, in subfolders too)")

    tensors = []
    failures = 0
    for relative in images:
        path = folder / relative
        try:
            tensors.append(_decode(path, resolution))
        except _DECODE_ERRORS as error:
            failures += 1
            if failures <= MAX_DECODE_WARNINGS:
                warn(f"skipped undecodable image {path}: {_reason(error)}")
    if failures > MAX_DECODE_WARNINGS:
        warn(f"... and {failures - MAX_DECODE_WARNINGS} more undecodable files skipped")
    if not tensors:
        raise UsageError(f"none of the {len(images)} image files in {folder} could be decoded")
    return torch.stack(tensors)


class ImageFolderPair(Pair):
    """Source images from one folder, target images from another (see the module docstring for the rules).

    ``held_out`` is how many target images are held out for evaluation; the
    default is half of them, at most 2000. After ``load``, ``n_source``,
    ``n_target_pool`` and ``n_reference`` hold the image counts.
    """

    name = "folders"

    def __init__(
        self,
        source_dir: str | Path,
        target_dir: str | Path,
        held_out: int | None = None,
        warn: Callable[[str], None] = warn_to_stderr,
    ) -> None:
        self.source_dir = Path(source_dir)
        self.target_dir = Path(target_dir)
        self.held_out = held_out
        self.warn = warn
        self.description = f"image folders: {self.source_dir} -> {self.target_dir}"
        self.n_source: int | None = None
        self.n_target_pool: int | None = None
        self.n_reference: int | None = None

    def _held_out_count(self, n_target: int) -> int:
        """The size of the held-out set for ``n_target`` target images, or a UsageError."""
        if self.held_out is None:
            held_out = min(n_target // 2, MAX_DEFAULT_HELD_OUT)
            if held_out < MIN_HELD_OUT:
                raise UsageError(
                    f"target folder {self.target_dir} has {n_target} usable images, too few: at least "
                    f"{2 * MIN_HELD_OUT} are needed, since half are held out for evaluation and that must be "
                    f"at least {MIN_HELD_OUT}"
                )
            return held_out
        if self.held_out < MIN_HELD_OUT:
            raise UsageError(
                f"held-out set of {self.held_out} target images is too small: at least {MIN_HELD_OUT} are needed "
                f"(target folder {self.target_dir} has {n_target} usable images)"
            )
        if self.held_out > n_target - 1:
            raise UsageError(
                f"held-out set of {self.held_out} target images leaves none for shots: target folder "
                f"{self.target_dir} has {n_target} usable images, so at most {n_target - 1} can be held out"
            )
        return self.held_out

    def load(self, resolution: int, data_root: Path | None = None) -> PairData:
        """Decode both folders and split the target images; ``data_root`` is not used."""
        # The target goes first so that a too-small target folder fails before the source is decoded.
        target = load_image_folder(self.target_dir, resolution, self.warn)
        held_out = self._held_out_count(len(target))
        order = torch.randperm(len(target), generator=torch.Generator().manual_seed(SPLIT_SEED))
        reference = target[order[:held_out].sort().values]
        target_pool = target[order[held_out:].sort().values]
        source = load_image_folder(self.source_dir, resolution, self.warn)
        self.n_source, self.n_target_pool, self.n_reference = len(source), len(target_pool), len(reference)
        return PairData(name=self.name, source=source, target_pool=target_pool, reference=reference)
