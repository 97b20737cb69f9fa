"""Built-in pairs read from torchvision datasets kept under ``--data-root``.

* ``cifar10-dog``: CIFAR-10 train images of the nine other classes -> the dog
  train images for shots, the dog test images held out.
* ``mnist-fashion``: MNIST train digits -> Fashion-MNIST train images for shots,
  Fashion-MNIST test images held out; grayscale repeated to three channels.

Files live where torchvision puts them (``DATA_ROOT/cifar-10-batches-py``,
``DATA_ROOT/MNIST/raw``, ``DATA_ROOT/FashionMNIST/raw``). Missing files are
downloaded once; without network access the error says what to fetch and where
to put it. Images that are not already at the requested resolution are resized
(bilinear, antialiased).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from torchvision import datasets
from torchvision.transforms import InterpolationMode

from tganbench.data.pairs import Pair, PairData
from tganbench.errors import UsageError
from tganbench.hookspecs import hookimpl

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Images resized per batch, so the float intermediates of the resize stay small.
RESIZE_BATCH = 1024


def download(dataset_cls: type, root: Path) -> None:
    """Download ``dataset_cls`` (train and test) into ``root`` with torchvision; its errors propagate."""
    for train in (True, False):
        dataset_cls(root=str(root), train=train, download=True)


def _fetch_instructions(dataset_cls: type, root: Path) -> str:
    """Where to get the files of ``dataset_cls`` by hand and where they go under ``root``."""
    if issubclass(dataset_cls, datasets.CIFAR10):
        return (
            f"fetch {dataset_cls.url} on a machine with network access and put it, unextracted, at "
            f"{root / dataset_cls.filename} (or extract it there, giving {root / dataset_cls.base_folder})"
        )
    files = ", ".join(filename for filename, _ in dataset_cls.resources)
    mirrors = " or ".join(dataset_cls.mirrors)
    raw = root / dataset_cls.__name__ / "raw"
    return f"fetch {files} from {mirrors} on a machine with network access and put the .gz files in {raw}"


def _open(dataset_cls: type, root: Path, train: bool):
    """The torchvision dataset object, downloading the files first when they are missing."""
    try:
        return dataset_cls(root=str(root), train=train, download=False)
    except RuntimeError:  # torchvision's "Dataset not found or corrupted"
        pass
    try:
        download(dataset_cls, root)
        return dataset_cls(root=str(root), train=train, download=False)
    except Exception as error:  # noqa: BLE001 -- URLError, OSError, tar, parse errors: all mean "no usable files"
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        if len(reason) > 160:
            reason = reason[:157] + "..."
        raise UsageError(
            f"{dataset_cls.__name__} files are missing or unreadable in data root {root} and could not be "
            f"downloaded ({reason}); "
            f"{_fetch_instructions(dataset_cls, root)}; --data-root selects the data root"
        ) from None


def _resized(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) at resolution x resolution; returned unchanged when already that size."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    out = torch.empty((len(images), images.shape[1], resolution, resolution), dtype=torch.uint8)
    for start in range(0, len(images), RESIZE_BATCH):
        batch = images[start : start + RESIZE_BATCH]
        out[start : start + RESIZE_BATCH] = TF.resize(
            batch, [resolution, resolution], interpolation=InterpolationMode.BILINEAR, antialias=True
        )
    return out


def _cifar_images(dataset: datasets.CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (N, 3, 32, 32) uint8 and labels (N,) of a loaded CIFAR-10 split."""
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.as_tensor(dataset.targets)


def _gray_images(dataset: datasets.MNIST) -> torch.Tensor:
    """The images of a loaded MNIST-style split as uint8 (N, 1, 28, 28)."""
    return dataset.data.unsqueeze(1)


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    """Grayscale (N, 1, H, W) repeated into (N, 3, H, W)."""
    return images.repeat(1, 3, 1, 1)


class CifarClassPair(Pair):
    """CIFAR-10: the train images of the nine other classes -> one class (train for shots, test held out)."""

    def __init__(self, target_class: str = "dog") -> None:
        if target_class not in CIFAR10_CLASSES:
            raise UsageError(f"unknown CIFAR-10 class '{target_class}'; choose from {', '.join(CIFAR10_CLASSES)}")
        self.target_class = target_class
        self.name = f"cifar10-{target_class}"
        self.description = f"CIFAR-10: the nine other classes -> {target_class} (train for shots, test held out)"
        self.origin = "torchvision CIFAR10 (download to --data-root)"
        self.sizes = (45_000, 5_000, 1_000)

    def load(self, resolution: int, data_root: Path) -> PairData:
        """Read (downloading if needed) CIFAR-10 under ``data_root`` and split it by class."""
        root = Path(data_root)
        train_images, train_labels = _cifar_images(_open(datasets.CIFAR10, root, train=True))
        test_dataset = _open(datasets.CIFAR10, root, train=False)
        test_images, test_labels = _cifar_images(test_dataset)
        label = test_dataset.class_to_idx[self.target_class]
        return PairData(
            name=self.name,
            source=_resized(train_images[train_labels != label], resolution),
            target_pool=_resized(train_images[train_labels == label], resolution),
            reference=_resized(test_images[test_labels == label], resolution),
        )


class MnistFashionPair(Pair):
    """MNIST train digits -> Fashion-MNIST (train for shots, test held out), grayscale as RGB."""

    name = "mnist-fashion"
    description = "MNIST digits -> Fashion-MNIST (train for shots, test held out), grey as RGB"
    origin = "torchvision MNIST, FashionMNIST (download to --data-root)"
    sizes = (60_000, 60_000, 10_000)

    def load(self, resolution: int, data_root: Path) -> PairData:
        """Read (downloading if needed) MNIST and Fashion-MNIST under ``data_root``."""
        root = Path(data_root)
        source = _gray_images(_open(datasets.MNIST, root, train=True))
        target_pool = _gray_images(_open(datasets.FashionMNIST, root, train=True))
        reference = _gray_images(_open(datasets.FashionMNIST, root, train=False))
        return PairData(
            name=self.name,
            source=_three_channels(_resized(source, resolution)),
            target_pool=_three_channels(_resized(target_pool, resolution)),
            reference=_three_channels(_resized(reference, resolution)),
        )


@hookimpl
def tganbench_register_pairs(register) -> None:
    """Register the torchvision pairs (their files are read only when a run selects them)."""
    register(CifarClassPair("dog"))
    register(MnistFashionPair())
