"""The source checkpoint shipped for the embedded pairs: it draws disks, runs start from it, damage is caught."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import tganbench.shipped_sources as shipped_sources
from conftest import run_cli
from tganbench.config import resolve_config
from tganbench.data.embedded import ShapesPair
from tganbench.fingerprints import tensor_fingerprint
from tganbench.metrics.recognition import recognised
from tganbench.models import DCGAN, ModelSpec
from tganbench.plan import resolve_model
from tganbench.plugins import load_plugins
from tganbench.shipped_sources import find_shipped, load_shipped, shipped_sources as all_shipped
from tganbench.train import sample_images

REGISTRY = load_plugins()
QUICK = resolve_config("quick")
QUICK_MODEL = ModelSpec(DCGAN(width=QUICK.width, d_norm=QUICK.d_norm), QUICK.resolution, QUICK.z_dim)
PROFILES_WITH_A_SHIPPED_SOURCE = ("quick", "stylegan2-quick")


def _entry(model: ModelSpec = QUICK_MODEL):
    data = ShapesPair("shapes", "disk", "triangle").load(model.resolution)
    entry = find_shipped(tensor_fingerprint(data.source), model)
    assert entry is not None, f"no shipped source checkpoint fits {model.describe()}"
    return entry


def _quick_entry():
    return _entry(QUICK_MODEL)


def _card_model(entry) -> ModelSpec:
    """The models a card describes: its architecture (``dcgan`` when absent) with its parameters."""
    described = {"architecture": "dcgan", **entry.model}
    name, resolution, z_dim = described.pop("architecture"), described.pop("resolution"), described.pop("z_dim")
    return ModelSpec(REGISTRY.architectures[name].obj(**described), resolution, z_dim)


@pytest.mark.parametrize("profile", PROFILES_WITH_A_SHIPPED_SOURCE)
def test_the_profile_has_a_shipped_source_for_every_embedded_pair(profile):
    model = resolve_model(resolve_config(profile), REGISTRY)
    entry = _entry(model)
    for target in ("square", "cross"):
        data = ShapesPair("p", "disk", target).load(model.resolution)
        assert find_shipped(tensor_fingerprint(data.source), model) == entry
    wider = type(model.architecture)(**{**model.architecture.params, "width": model.architecture.params["width"] + 1})
    assert find_shipped(tensor_fingerprint(data.source), ModelSpec(wider, model.resolution, model.z_dim)) is None


@pytest.mark.parametrize("entry", all_shipped(), ids=lambda entry: entry.file)
def test_the_shipped_source_draws_disks(entry):
    """A quality regression test: fixed noise, CPU, the share of samples recognised as disks."""
    g_state, d_state = load_shipped(entry)
    model = _card_model(entry)
    g, d = model.build(0, torch.device("cpu"))
    g.load_state_dict(g_state)
    d.load_state_dict(d_state)
    noise = torch.randn((500, model.z_dim), generator=torch.Generator().manual_seed(1_000_003))
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


def test_the_stylegan2_quick_profile_starts_from_the_shipped_stylegan2_source(tmp_path):
    entry = _entry(resolve_model(resolve_config("stylegan2-quick"), REGISTRY))
    out = tmp_path / "run"
    result = run_cli("run", "--profile", "stylegan2-quick", "--strategies", "finetune", "--target-steps", "2",
                     "--eval-every", "2", "--n-generated", "64", "--n-reference", "64", "--n-validation", "64",
                     "--quiet", "--out", str(out))
    assert result.code == 0, result.stderr
    assert f"source: shipped checkpoint {entry.file} (checksum {entry.checksum}" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["protocol"]["source_weights"] == f"shipped {entry.checksum}"
    assert manifest["config"]["lr"] == 0.002 and manifest["config"]["r1_gamma"] == 0.1


def test_the_card_describes_the_weights():
    for entry in all_shipped():
        assert entry.path.is_file(), entry.file
        assert {"steps", "seconds", "machine", "fd_held_out_source", "recognised_as_source"} <= set(entry.card)
        assert entry.card["recognised_as_source"] >= 0.9
        model = _card_model(entry)
        assert {"resolution", "z_dim", *model.architecture.params} == set(entry.model) - {"architecture"}
        g_state, d_state = load_shipped(entry)
        assert set(g_state) == set(model.build(0, torch.device("cpu"))[0].state_dict())
