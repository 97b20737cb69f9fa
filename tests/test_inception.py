"""``--feature-extractor inception``: torch-fidelity's real loading code, exercised with local files only."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch_fidelity import feature_extractor_inceptionv3 as inception_module

from conftest import run_cli
from tganbench.metrics.evaluator import Evaluator
from tganbench.plugins import load_plugins

WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
# Every image set small (Inception on a CPU costs about 0.1 s an image): 124 images in all, not 672.
TINY_RUN = [
    "run", "--profile", "smoke", "--strategies", "finetune", "--feature-extractor", "inception", "--shots", "10",
    "--n-generated", "12", "--n-reference", "12", "--n-validation", "12", "--target-steps", "2", "--eval-every", "100",
]


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory) -> Path:
    """A weights file with Inception's exact layout but random values (the real one is a download)."""
    path = tmp_path_factory.mktemp("inception") / WEIGHTS_NAME
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inception_module, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(inception_module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        network = inception_module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(network.state_dict(), path)
    return path


def test_offline_without_weights_is_one_clear_line(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(inception_module, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    result = run_cli(*TINY_RUN, "--out", str(tmp_path / "out"))
    assert result.code == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tganbench: error: cannot load the weights of feature extractor 'inception'")
    # Says what to fetch, where the torch hub cache expects it, and the flag for any other place.
    assert inception_module.URL_INCEPTION_V3 in last
    assert f"put it in {tmp_path / 'torch-home' / 'hub' / 'checkpoints'}/" in last
    assert "--feature-extractor-weights" in last
    assert not (tmp_path / "out").exists()


def test_weights_from_a_local_file_give_fid_columns(random_inception_weights, tmp_path):
    out = tmp_path / "out"
    result = run_cli(*TINY_RUN, "--feature-extractor-weights", str(random_inception_weights), "--out", str(out))
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert cells.loc[0, "metric"] == "FID" and cells.loc[0, "extractor"] == "inception"
    assert cells.loc[0, "n_reference"] == 12
    assert "FID[inception] final" in result.stdout


def test_weights_already_in_torch_home_need_no_download(random_inception_weights, tmp_path, monkeypatch):
    """The run's evaluator finds the weights in the torch hub cache and downloads nothing.

    (The test above runs a whole run with Inception; this one builds only what loads the
    weights, since each Inception FD costs seconds on a CPU.)
    """
    checkpoints = tmp_path / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / WEIGHTS_NAME).write_bytes(random_inception_weights.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download the weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    spec = load_plugins().extractors["inception"].obj
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    evaluator = Evaluator(spec, images, torch.device("cpu"), kid_subsets=2, kid_subset_size=2)
    assert evaluator.features(images).shape == (4, 2048)
