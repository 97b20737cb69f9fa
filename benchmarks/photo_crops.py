"""Cut random square crops out of photographs: a small real-photo image folder for `--source`/`--target`.

    python benchmarks/photo_crops.py --out photos/target --crops 200 grass.png gravel.png brick.png

Each crop is a square of 20-50% of the photo's shorter side at a random place,
saved at its own size (so the folder has mixed sizes), one subfolder per photo,
alternating PNG and JPEG. The same arguments give the same files.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image


def write_crops(photo: Path, out: Path, crops: int, rng: random.Random) -> int:
    """Save ``crops`` random square crops of ``photo`` under ``out/<photo stem>/``; returns how many."""
    folder = out / photo.stem
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(photo) as image:
        image.load()
        short = min(image.size)
        for index in range(crops):
            side = rng.randint(short // 5, short // 2)
            left = rng.randint(0, image.width - side)
            top = rng.randint(0, image.height - side)
            crop = image.crop((left, top, left + side, top + side))
            suffix = "png" if index % 2 == 0 else "jpg"
            if suffix == "jpg" and crop.mode not in ("RGB", "L"):
                crop = crop.convert("RGB")
            crop.save(folder / f"{photo.stem}-{index:04d}.{suffix}")
    return crops


def main() -> None:
    """Command line: ``--out DIR --crops N [--seed S] PHOTO ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+", type=Path, help="photographs to crop")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the crops into")
    parser.add_argument("--crops", type=int, default=200, help="crops per photo (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    total = sum(write_crops(photo, args.out, args.crops, rng) for photo in args.photos)
    print(f"{total} crops of {len(args.photos)} photos in {args.out}")


if __name__ == "__main__":
    main()
