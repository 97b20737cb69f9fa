"""The torchvision pairs, read offline from small files written in torchvision's on-disk formats."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils
from torchvision import datasets

from tganbench.data import torchvision_pairs
from tganbench.data.torchvision_pairs import CIFAR10_CLASSES, CifarClassPair, MnistFashionPair
from tganbench.errors import UsageError
from tganbench.plugins import load_plugins

DOG = CIFAR10_CLASSES.index("dog")
CIFAR_TRAIN_PER_BATCH = 6  # 5 batches -> 30 train images, labels 0..9 three times: 3 dogs
CIFAR_TEST = 20  # labels 0..9 twice: 2 dogs
REAL_DOWNLOAD = torchvision_pairs.download
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def md5(path: Path) -> str:
    """The MD5 of a file, as torchvision checks it."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Write a tiny CIFAR-10 in ``folder`` (pickled batches) and point torchvision's checksums at it.

    Returns the train and test images as (N, 3, 32, 32) uint8; labels cycle 0..9 over each split.
    """
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(name: str, count: int, first: int) -> tuple[np.ndarray, list[str]]:
        data = rng.integers(0, 256, (count, 3 * 32 * 32), dtype=np.uint8)
        labels = [index % 10 for index in range(first, first + count)]
        with open(folder / name, "wb") as file:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, file)
        return data, [name, md5(folder / name)]

    train, train_list = [], []
    for number in range(1, 6):
        data, entry = batch(f"data_batch_{number}", CIFAR_TRAIN_PER_BATCH, (number - 1) * CIFAR_TRAIN_PER_BATCH)
        train.append(data)
        train_list.append(entry)
    test, test_entry = batch("test_batch", CIFAR_TEST, 0)
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, file)
    meta = {"filename": "batches.meta", "key": "label_names", "md5": md5(folder / "batches.meta")}

    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [test_entry])
    monkeypatch.setattr(datasets.CIFAR10, "meta", meta)
    train_images = torch.from_numpy(np.concatenate(train).reshape(-1, 3, 32, 32))
    return train_images, torch.from_numpy(test.reshape(-1, 3, 32, 32))


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format of MNIST: magic 0x0000 08 ndim, big-endian sizes, then the bytes."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_mnist(raw: Path, count_train: int, count_test: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Write uncompressed MNIST-style raw files in ``raw``; returns train and test images (N, 28, 28)."""
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images = {}
    for prefix, count in (("train", count_train), ("t10k", count_test)):
        images[prefix] = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images[prefix]))
        labels = (np.arange(count) % 10).astype(np.uint8)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return torch.from_numpy(images["train"]), torch.from_numpy(images["t10k"])


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if torchvision tries to reach the network; calling ``download`` is an error too."""

    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to use the network")

    monkeypatch.setattr(torchvision.datasets.utils, "_urlretrieve", refuse)
    monkeypatch.setattr(torchvision.datasets.utils, "_get_redirect_url", refuse)
    monkeypatch.setattr(torchvision_pairs, "download", refuse)


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None):
    """A data root holding a tiny CIFAR-10, and its train/test images."""
    train, test = write_cifar(tmp_path / "data" / "cifar-10-batches-py", monkeypatch)
    return tmp_path / "data", train, test


@pytest.fixture
def mnist_root(tmp_path: Path, no_network: None):
    """A data root holding tiny MNIST and Fashion-MNIST raw files, and their images."""
    root = tmp_path / "data"
    mnist_train, _ = write_mnist(root / "MNIST" / "raw", 12, 4, seed=1)
    fashion_train, fashion_test = write_mnist(root / "FashionMNIST" / "raw", 10, 5, seed=2)
    return root, mnist_train, fashion_train, fashion_test


def test_cifar_split_by_class(cifar_root) -> None:
    root, train, test = cifar_root
    train_labels = torch.arange(len(train)) % 10
    test_labels = torch.arange(len(test)) % 10
    data = CifarClassPair("dog").load(32, root)
    assert data.name == "cifar10-dog"
    for images in (data.source, data.target_pool, data.reference):
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 32, 32)
    assert torch.equal(data.source, train[train_labels != DOG])  # every train image but the dogs
    assert torch.equal(data.target_pool, train[train_labels == DOG])
    assert torch.equal(data.reference, test[test_labels == DOG])  # the dog test images, nothing else
    assert (len(data.source), len(data.target_pool), len(data.reference)) == (27, 3, 2)


@pytest.mark.parametrize("resolution", [16, 64])
def test_cifar_resized(cifar_root, resolution: int) -> None:
    root, train, _ = cifar_root
    data = CifarClassPair("dog").load(resolution, root)
    assert data.source.shape == (27, 3, resolution, resolution)
    assert data.target_pool.shape == (3, 3, resolution, resolution)
    assert data.reference.shape == (2, 3, resolution, resolution)
    assert data.source.dtype == torch.uint8
    # Resizing keeps each image's mean colour: the result is the same picture, not noise or a clipped copy.
    expected = train[(torch.arange(len(train)) % 10) != DOG].float().mean(dim=(2, 3))
    assert torch.allclose(data.source.float().mean(dim=(2, 3)), expected, atol=3)
    assert data.source.min() >= 0 and data.source.max() <= 255 and data.source.float().std() > 20


def test_mnist_fashion_native_size(mnist_root) -> None:
    root, mnist_train, fashion_train, fashion_test = mnist_root
    data = MnistFashionPair().load(28, root)
    for images, gray in ((data.source, mnist_train), (data.target_pool, fashion_train), (data.reference, fashion_test)):
        assert images.dtype == torch.uint8 and images.shape == (len(gray), 3, 28, 28)
        for channel in range(3):
            assert torch.equal(images[:, channel], gray)


@pytest.mark.parametrize("resolution", [16, 64])
def test_mnist_fashion_resized_gray_as_rgb(mnist_root, resolution: int) -> None:
    root, mnist_train, _, _ = mnist_root
    data = MnistFashionPair().load(resolution, root)
    assert data.source.shape == (12, 3, resolution, resolution)
    assert data.target_pool.shape == (10, 3, resolution, resolution)
    assert data.reference.shape == (5, 3, resolution, resolution)
    for images in (data.source, data.target_pool, data.reference):
        assert images.dtype == torch.uint8
        assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2])
    assert torch.allclose(data.source.float().mean(dim=(1, 2, 3)), mnist_train.float().mean(dim=(1, 2)), atol=3)


def test_offline_error_names_the_url_and_the_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def offline(dataset_cls, root):
        calls.append((dataset_cls, root))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision_pairs, "download", offline)
    root = tmp_path / "empty-root"

    with pytest.raises(UsageError) as caught:
        CifarClassPair("dog").load(32, root)
    message = str(caught.value)
    assert calls == [(datasets.CIFAR10, root)]
    assert datasets.CIFAR10.url in message
    assert str(root / "cifar-10-python.tar.gz") in message and "--data-root" in message
    assert "name resolution" in message
    assert "\n" not in message

    with pytest.raises(UsageError) as caught:
        MnistFashionPair().load(32, root)
    message = str(caught.value)
    assert datasets.MNIST.mirrors[0] in message and "train-images-idx3-ubyte.gz" in message
    assert str(root / "MNIST" / "raw") in message and "--data-root" in message
    assert "\n" not in message


def test_failed_download_with_multiline_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(dataset_cls, root):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirror A, got:\nHTTP 503\n")

    monkeypatch.setattr(torchvision_pairs, "download", failing)
    with pytest.raises(UsageError) as caught:
        MnistFashionPair().load(32, tmp_path)
    assert "\n" not in str(caught.value) and "HTTP 503" in str(caught.value)


def test_missing_files_are_downloaded_then_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    calls = []

    def fake_download(dataset_cls, data_root):
        calls.append(dataset_cls)
        write_cifar(data_root / "cifar-10-batches-py", monkeypatch)

    monkeypatch.setattr(torchvision_pairs, "download", fake_download)
    data = CifarClassPair("dog").load(32, root)
    assert calls == [datasets.CIFAR10]
    assert len(data.target_pool) == 3


def test_files_placed_by_hand_as_the_error_says_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    root = tmp_path / "data"
    staging = tmp_path / "staging"
    write_cifar(staging / "cifar-10-batches-py", monkeypatch)
    archive = root / datasets.CIFAR10.filename
    root.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", md5(archive))

    for dataset_cls, seed in ((datasets.MNIST, 1), (datasets.FashionMNIST, 2)):
        write_mnist(staging / dataset_cls.__name__, 6, 3, seed)
        raw = root / dataset_cls.__name__ / "raw"
        raw.mkdir(parents=True)
        resources = []
        for name in MNIST_FILES:
            (raw / f"{name}.gz").write_bytes(gzip.compress((staging / dataset_cls.__name__ / name).read_bytes()))
            resources.append((f"{name}.gz", md5(raw / f"{name}.gz")))
        monkeypatch.setattr(dataset_cls, "resources", resources)

    monkeypatch.setattr(torchvision_pairs, "download", REAL_DOWNLOAD)  # torchvision's own download, offline
    cifar = CifarClassPair("dog").load(32, root)
    assert (len(cifar.source), len(cifar.target_pool), len(cifar.reference)) == (27, 3, 2)
    mnist = MnistFashionPair().load(32, root)
    assert (len(mnist.source), len(mnist.target_pool), len(mnist.reference)) == (6, 6, 3)


def test_unknown_cifar_class_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown CIFAR-10 class 'dgo'"):
        CifarClassPair("dgo")


def test_pairs_are_registered_through_the_hook() -> None:
    pairs = load_plugins([]).pairs
    assert isinstance(pairs["cifar10-dog"].obj, CifarClassPair)
    assert isinstance(pairs["mnist-fashion"].obj, MnistFashionPair)
    assert pairs["cifar10-dog"].plugin == "tganbench.data.torchvision_pairs"
    assert "download to --data-root" in pairs["mnist-fashion"].obj.origin
    assert pairs["cifar10-dog"].obj.sizes == (45_000, 5_000, 1_000)
