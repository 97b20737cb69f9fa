"""Pairs from the command line: image folders end to end, shot lists, `list`, and the offline dataset error."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pandas as pd
from PIL import Image

from conftest import run_cli
from tganbench.data import torchvision_pairs
from tganbench.data.shapes import render_shapes


def _write_folder(folder: Path, shape: str, count: int, seed: int) -> None:
    """``count`` shape images as PNG and JPEG files of mixed sizes, some in a subfolder, some grayscale."""
    (folder / "more").mkdir(parents=True)
    for i, image in enumerate(render_shapes(shape, count, 48, seed)):
        picture = Image.fromarray(image.permute(1, 2, 0).numpy())
        if i % 3 == 1:
            picture = picture.resize((64, 40))  # wider than tall: resized, then centre-cropped
        if i % 7 == 0:
            picture = picture.convert("L")
        target = folder / ("more" if i % 2 else ".") / f"{shape}-{i:03d}.{'jpg' if i % 5 == 0 else 'png'}"
        picture.save(target)


def test_image_folder_pair_runs_end_to_end_with_a_shot_list(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    _write_folder(source, "disk", 60, seed=1)
    _write_folder(target, "triangle", 80, seed=2)
    (target / "more" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = run_cli(
        "run", "--source", str(source), "--target", str(target), "--shots", "5,10", "--seeds", "2",
        "--strategies", "scratch,finetune", "--profile", "smoke", "--out", str(out),
    )
    assert result.code == 0, result.stderr
    assert f"skipped undecodable image {target / 'more' / 'broken.png'}" in result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 2 * 2 * 2 and set(cells["shots"]) == {5, 10}
    assert (cells["pair"] == "folders").all()
    # half of the 80 decodable target images is held out, shared by test and validation images (200 each asked)
    assert (cells["n_reference"] == 20).all()
    assert cells["reference_fingerprint"].nunique() == 1
    # One shot set per (shots, seed), shared by both strategies.
    assert cells.groupby(["shots", "seed"])["shots_fingerprint"].nunique().eq(1).all()
    assert cells["shots_fingerprint"].nunique() == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pair_sizes"] == {"source": 60, "target_pool": 40, "reference": 40}
    assert manifest["split"] == {"validation": 20, "test": 20}
    assert manifest["config"]["shots"] == [5, 10]
    assert "200 generated vs 20 held-out target images" in result.stdout.split("\n\n")[0].replace("\n", " ")
    summary = (out / "summary.md").read_text()
    assert "`folders`" in summary
    header = next(line for line in summary.splitlines() if line.startswith("|   shots"))
    assert "Δ vs scratch [95% CI]" in header and "to target" in header


def test_too_few_target_images_for_the_shots_is_a_usage_error(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    _write_folder(source, "disk", 10, seed=1)
    _write_folder(target, "triangle", 50, seed=2)
    result = run_cli(
        "run", "--source", str(source), "--target", str(target), "--shots", "30",
        "--profile", "smoke", "--out", str(tmp_path / "out"),
    )
    assert result.code == 2
    assert "--shots 30 is larger than the 25 target images available for training" in result.stderr
    assert not (tmp_path / "out").exists()


def test_list_shows_every_pair_with_sizes_and_origin():
    result = run_cli("list")
    assert result.code == 0
    pairs_table = result.stdout.split("\n\n")[1]
    lines = {line.split()[0]: line for line in pairs_table.splitlines() if line.strip()}
    assert "5,000 / 2,000 / 2,000" in lines["shapes"] and "embedded" in lines["shapes"]
    assert "shapes-near" in lines and "shapes-far" in lines
    assert "45,000 / 5,000 / 1,000" in lines["cifar10-dog"] and "torchvision" in lines["cifar10-dog"]
    assert "60,000 / 60,000 / 10,000" in lines["mnist-fashion"]


def test_offline_torchvision_pair_is_one_line_saying_what_to_download(tmp_path, monkeypatch):
    def no_network(dataset_cls, root):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(torchvision_pairs, "download", no_network)
    data_root = tmp_path / "data"
    result = run_cli(
        "run", "--pair", "cifar10-dog", "--data-root", str(data_root), "--profile", "smoke",
        "--out", str(tmp_path / "out"),
    )
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tganbench: error: CIFAR10 files are missing")
    assert "cifar-10-python.tar.gz" in lines[0] and str(data_root) in lines[0]
    assert not (tmp_path / "out").exists()
