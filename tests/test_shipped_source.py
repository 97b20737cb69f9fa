"""The source checkpoint shipped for the embedded pairs: it draws disks, runs start from it, damage is caught."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest
import torch

import tganbench.shipped_sources as shipped_sources
from conftest import run_cli
from tganbench.config import resolve_config
from tganbench.data.embedded import ShapesPair
from tganbench.fingerprints import tensor_fingerprint
from tganbench.metrics.recognition import recognised
from tganbench.models import DCGAN, ModelConfig, ModelSpec, build_models
from tganbench.shipped_sources import find_shipped, load_shipped, shipped_sources as all_shipped
from tganbench.train import sample_images

QUICK = resolve_config("quick")
QUICK_MODEL = ModelSpec(DCGAN(width=QUICK.width, d_norm=QUICK.d_norm), QUICK.resolution, QUICK.z_dim)


def _quick_entry():
    data = ShapesPair("shapes", "disk", "triangle").load(QUICK.resolution)
    entry = find_shipped(tensor_fingerprint(data.source), QUICK_MODEL)
    assert entry is not None, "no shipped source checkpoint fits the quick profile's architecture"
    return entry


def test_the_quick_profile_has_a_shipped_source_for_every_embedded_pair():
    entry = _quick_entry()
    for target in ("square", "cross"):
        data = ShapesPair("p", "disk", target).load(QUICK.resolution)
        assert find_shipped(tensor_fingerprint(data.source), QUICK_MODEL) == entry
    assert find_shipped(tensor_fingerprint(data.source), ModelSpec(DCGAN(width=QUICK.width + 1), QUICK.resolution, QUICK.z_dim)) is None


def test_the_shipped_source_draws_disks():
    """A quality regression test: fixed noise, CPU, the share of samples recognised as disks."""
    entry = _quick_entry()
    g_state, _ = load_shipped(entry)
    g, _ = build_models(ModelConfig(**entry.model), seed=0, device=torch.device("cpu"))
    g.load_state_dict(g_state)
    noise = torch.randn((500, g.config.z_dim), generator=torch.Generator().manual_seed(1_000_003))
    samples = sample_images(g, noise)
    assert recognised(samples, "disk") >= 0.9
    assert recognised(samples, "triangle") <= 0.05


def test_a_damaged_shipped_checkpoint_is_refused(tmp_path, monkeypatch):
    entry = _quick_entry()
    damaged = tmp_path / entry.file
    shutil.copy(entry.path, damaged)
    saved = torch.load(damaged, weights_only=True)
    first = next(iter(saved["g"]))
    saved["g"][first] = saved["g"][first] + 1e-3
    torch.save(saved, damaged)
    monkeypatch.setattr(shipped_sources, "SHIPPED_DIR", tmp_path)
    with pytest.raises(ValueError, match="does not match its checksum"):
        load_shipped(entry)
    result = run_cli("run", "--strategies", "finetune", "--target-steps", "2", "--out", str(tmp_path / "run"))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert "does not match its checksum" in lines[-1] and "--source-checkpoint pretrain" in lines[-1]
    assert "Traceback" not in result.stderr


def test_a_run_on_an_embedded_pair_starts_from_the_shipped_checkpoint(tmp_path):
    entry = _quick_entry()
    common = ["--strategies", "finetune", "--target-steps", "2", "--eval-every", "2", "--n-generated", "100",
              "--n-reference", "100", "--quiet"]
    result = run_cli("run", *common, "--out", str(tmp_path / "shipped"))
    assert result.code == 0, result.stderr
    assert f"source: shipped checkpoint {entry.file} (checksum {entry.checksum}" in result.stderr
    manifest = json.loads((tmp_path / "shipped" / "manifest.json").read_text())
    assert manifest["source"]["shipped"]["checksum"] == entry.checksum
    assert manifest["protocol"]["source_weights"] == f"shipped {entry.checksum}"
    assert manifest["source"]["recognised_as_source"] >= 0.9
    assert "the source checkpoint shipped with tganbench" in (tmp_path / "shipped" / "summary.md").read_text()

    asked = run_cli("run", *common, "--source-steps", "3", "--out", str(tmp_path / "pretrained"))
    assert asked.code == 0, asked.stderr
    assert "source: pretraining" in asked.stderr
    manifest = json.loads((tmp_path / "pretrained" / "manifest.json").read_text())
    assert manifest["source"]["shipped"] is None and manifest["config"]["source_checkpoint"] == "pretrain"


def test_the_card_describes_the_weights():
    for entry in all_shipped():
        assert entry.path.is_file(), entry.file
        assert {"steps", "seconds", "machine", "fd_held_out_source", "recognised_as_source"} <= set(entry.card)
        assert entry.card["recognised_as_source"] >= 0.9
        assert set(entry.model) == set(asdict(ModelConfig()))
