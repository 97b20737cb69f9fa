"""User image folders: file discovery, decoding, colour and size rules, and the target split."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tganbench.data.folders import MIN_HELD_OUT, ImageFolderPair, load_image_folder
from tganbench.errors import UsageError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def noise(width: int, height: int, seed: int) -> Image.Image:
    """An RGB image of uniform noise."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def solid(value: int, size: int = 8) -> Image.Image:
    """A grey RGB square whose pixel value identifies it."""
    return Image.new("RGB", (size, size), (value, value, value))


def jpeg_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as JPEG."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """A folder with every kind of file the loader must handle: 8 good images, 2 broken, 2 non-images."""
    root = tmp_path / "images"
    (root / "nested" / "deeper").mkdir(parents=True)
    noise(40, 20, 0).save(root / "wide.png")
    noise(17, 33, 1).save(root / "tall.jpg")
    noise(64, 64, 2).save(root / "square.bmp")
    noise(30, 30, 3).save(root / "UPPER.PNG")
    Image.new("L", (24, 24), 90).save(root / "gray.png")

    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    rgba.paste((0, 0, 255, 0), (0, 0, 16, 32))  # left half: blue, but fully transparent
    rgba.save(root / "nested" / "rgba.png")

    palette = Image.new("P", (32, 32), 1)
    palette.putpalette([0, 0, 0] + list(GREEN) + [0, 0, 0] * 254)
    palette.paste(0, (0, 0, 16, 32))  # left half: index 0, declared transparent below
    palette.save(root / "nested" / "deeper" / "palette.png", transparency=0)

    noise(20, 20, 4).convert("P").save(root / "nested" / "opaque_palette.gif")

    (root / "nested" / "corrupt.png").write_bytes(np.random.default_rng(5).bytes(500))
    whole = jpeg_bytes(noise(64, 64, 6))
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def numbered_folder(folder: Path, count: int) -> Path:
    """``count`` solid images whose grey value is their index (file names sort in index order)."""
    folder.mkdir(parents=True)
    for index in range(count):
        solid(index).save(folder / f"img_{index:03d}.png")
    return folder


def ids(images: torch.Tensor) -> list[int]:
    """The index encoded in each solid image of ``numbered_folder``."""
    return images[:, 0, 0, 0].tolist()


def test_loads_every_decodable_image_as_uint8_squares(image_tree: Path) -> None:
    warnings: list[str] = []
    images = load_image_folder(image_tree, 32, warnings.append)
    assert images.shape == (8, 3, 32, 32)
    assert images.dtype == torch.uint8
    assert images.float().std() > 10  # real pixels, not a constant fill
    assert len(warnings) == 3
    assert "ignored 2 file(s)" in warnings[0]
    skipped = sorted(warnings[1:])
    assert str(image_tree / "nested" / "corrupt.png") in skipped[0]
    assert "not a recognised image format" in skipped[0]
    assert str(image_tree / "truncated.jpg") in skipped[1]
    assert "truncated" in skipped[1]


def test_output_order_is_sorted_relative_path_and_loads_are_identical(tmp_path: Path) -> None:
    root = tmp_path / "order"
    (root / "a").mkdir(parents=True)
    solid(30).save(root / "b.png")
    solid(20).save(root / "a" / "z.png")
    solid(10).save(root / "a.png")
    solid(40).save(root / "C.JPEG", quality=100)
    first = load_image_folder(root, 8, lambda message: None)
    # POSIX order of relative paths: "C.JPEG" < "a.png" < "a/z.png" < "b.png".
    assert [round(v / 10) * 10 for v in ids(first)] == [40, 10, 20, 30]
    assert torch.equal(first, load_image_folder(root, 8, lambda message: None))


def test_deterministic_across_loads(image_tree: Path) -> None:
    first = load_image_folder(image_tree, 16, lambda message: None)
    second = load_image_folder(image_tree, 16, lambda message: None)
    assert torch.equal(first, second)


def test_transparent_pixels_become_white(tmp_path: Path, image_tree: Path) -> None:
    for name, opaque in (("nested/rgba.png", RED), ("nested/deeper/palette.png", GREEN)):
        folder = tmp_path / name.replace("/", "_")
        folder.mkdir()
        (folder / "image.png").write_bytes((image_tree / name).read_bytes())
        image = load_image_folder(folder, 32, lambda message: None)[0]
        left, right = image[:, :, :12], image[:, :, 20:]
        assert (left == 255).all(), name
        assert (right == torch.tensor(opaque, dtype=torch.uint8).view(3, 1, 1)).all(), name


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    Image.new("L", (20, 20), 90).save(tmp_path / "gray.png")
    image = load_image_folder(tmp_path, 16, lambda message: None)[0]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert (image == 90).all()


def test_shorter_side_is_resized_then_centre_cropped(tmp_path: Path) -> None:
    image = Image.new("RGB", (80, 40), GREEN)
    image.paste(RED, (0, 0, 20, 40))
    image.paste(BLUE, (60, 0, 80, 40))
    image.save(tmp_path / "wide.png")
    # 80x40 -> 64x32 -> centre 32 columns, which were the green middle of the original.
    loaded = load_image_folder(tmp_path, 32, lambda message: None)[0]
    inner = loaded[:, :, 2:30]
    assert (inner[1] > 240).all() and (inner[0] < 15).all() and (inner[2] < 15).all()


def test_too_many_pixels_is_skipped_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    noise(64, 64, 0).save(tmp_path / "big.png")
    noise(8, 8, 1).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    warnings: list[str] = []
    images = load_image_folder(tmp_path, 8, warnings.append)
    assert len(images) == 1
    assert warnings == [f"skipped undecodable image {tmp_path / 'big.png'}: too many pixels (decompression bomb guard)"]


def test_undecodable_warnings_are_capped(tmp_path: Path) -> None:
    for index in range(13):
        (tmp_path / f"bad_{index:02d}.jpg").write_bytes(b"garbage")
    noise(8, 8, 0).save(tmp_path / "good.png")
    warnings: list[str] = []
    assert len(load_image_folder(tmp_path, 8, warnings.append)) == 1
    assert len(warnings) == 11
    assert all(line.startswith("skipped undecodable image ") for line in warnings[:10])
    assert warnings[10] == "... and 3 more undecodable files skipped"


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.write_text("x"), "is not a folder"),
        (lambda root: root.mkdir(), "no image files"),
        (lambda root: (root.mkdir(), (root / "readme.txt").write_text("x")), "no image files"),
        (lambda root: (root.mkdir(), (root / "bad.png").write_bytes(b"x")), "none of the 1 image files"),
    ],
)
def test_folder_errors_are_one_line_usage_errors(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "folder"
    setup(root)
    with pytest.raises(UsageError, match=message) as caught:
        load_image_folder(root, 16, lambda line: None)
    assert str(root) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_split_is_disjoint_sorted_and_fixed(tmp_path: Path) -> None:
    source = numbered_folder(tmp_path / "source", 5)
    target = numbered_folder(tmp_path / "target", 50)
    pair = ImageFolderPair(source, target, warn=lambda message: None)
    data = pair.load(8, tmp_path)
    assert pair.name == "folders" and str(source) in pair.description and str(target) in pair.description
    assert data.source.shape == (5, 3, 8, 8)
    pool, reference = ids(data.target_pool), ids(data.reference)
    assert len(reference) == 25 and len(pool) == 25
    assert (pair.n_source, pair.n_target_pool, pair.n_reference) == (5, 25, 25)
    assert set(pool).isdisjoint(reference) and set(pool) | set(reference) == set(range(50))
    assert pool == sorted(pool) and reference == sorted(reference)
    assert reference != list(range(25))  # shuffled, not a prefix of the path order
    again = ImageFolderPair(source, target, warn=lambda message: None).load(8, tmp_path)
    assert again.fingerprint() == data.fingerprint()

    explicit = ImageFolderPair(source, target, held_out=30, warn=lambda message: None).load(8, tmp_path)
    assert len(explicit.reference) == 30 and len(explicit.target_pool) == 20


def test_default_held_out_is_capped_at_2000(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_target = torch.zeros((4100, 3, 2, 2), dtype=torch.uint8)
    monkeypatch.setattr("tganbench.data.folders.load_image_folder", lambda folder, resolution, warn: fake_target)
    data = ImageFolderPair(tmp_path, tmp_path).load(2, tmp_path)
    assert len(data.reference) == 2000 and len(data.target_pool) == 2100


@pytest.mark.parametrize(
    "count, held_out, words",
    [
        (30, None, ["has 30 usable images", f"at least {2 * MIN_HELD_OUT}"]),
        (50, MIN_HELD_OUT - 1, [f"{MIN_HELD_OUT - 1} target images is too small", "has 50 usable images"]),
        (50, 50, ["leaves none for shots", "at most 49"]),
    ],
)
def test_too_small_held_out_set_is_a_usage_error(tmp_path: Path, count: int, held_out, words: list[str]) -> None:
    source = numbered_folder(tmp_path / "source", 2)
    target = numbered_folder(tmp_path / "target", count)
    with pytest.raises(UsageError) as caught:
        ImageFolderPair(source, target, held_out=held_out, warn=lambda message: None).load(8, tmp_path)
    for word in words:
        assert word in str(caught.value)
    assert "\n" not in str(caught.value)


def test_default_warnings_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    numbered_folder(tmp_path / "source", 2)
    numbered_folder(tmp_path / "target", 40)
    (tmp_path / "target" / "notes.txt").write_text("x")
    ImageFolderPair(tmp_path / "source", tmp_path / "target").load(8, tmp_path)
    assert capsys.readouterr().err.startswith("tganbench: warning: ignored 1 file(s) without an image extension")


def test_unlistable_folder_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(top, onerror):
        onerror(PermissionError(13, "Permission denied", str(top)))
        return iter([])

    monkeypatch.setattr("tganbench.data.folders.os.walk", denied)
    with pytest.raises(UsageError, match=f"cannot list image folder {tmp_path}: Permission denied$"):
        load_image_folder(tmp_path, 16, lambda line: None)
