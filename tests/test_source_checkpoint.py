"""``--source-checkpoint PATH`` and ``export-source``: a run starts from the weights in a file, checked and named."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import CliResult, run_cli
from tganbench.checkpoint_formats import write_source_file
from tganbench.config import resolve_config
from tganbench.executors import WorkerSetup
from tganbench.fingerprints import state_fingerprint
from tganbench.plan import resolve_model
from tganbench.plugins import load_plugins
from tganbench.shipped_sources import prefixed_state
from tganbench.worker import load_shared

SMOKE = ["--profile", "smoke"]
STRATEGIES = ["finetune", "freeze-d"]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stylegan2_parity" / "checkpoint.pt"
PARITY_MODEL = ["--architecture", "stylegan2[width=8,channel_max=32,n_mlp=2]", "--resolution", "32", "--z-dim", "16"]


def _toml(path: Path, **settings) -> Path:
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
    return path


@dataclass
class Exported:
    folder: Path
    pretrained: CliResult  # the run that pretrained its source
    export: CliResult  # export-source of that source
    from_file: CliResult  # the same run, started from the exported file

    @property
    def file(self) -> Path:
        return self.folder / "source.pt"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A smoke run that pretrains its source, that source exported, and the run again from the file (via TOML)."""
    folder = tmp_path_factory.mktemp("source-checkpoint")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TGANBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "tganbench-cache"))
        patch.setenv("TGANBENCH_LOAD_PLUGINS", "")
        pretrained = run_cli("run", *SMOKE, "--strategies", ",".join(STRATEGIES), "--source-checkpoint", "pretrain",
                             "--quiet", "--out", str(folder / "pretrained"))
        # The run's own config file: export-source takes the settings it shares and leaves strategies, out, ...
        run_config = _toml(folder / "run.toml", profile="smoke", strategies=STRATEGIES, source_checkpoint="pretrain",
                           out=str(folder / "elsewhere"), quiet=True)
        export = run_cli("export-source", str(folder / "source.pt"), "--config", str(run_config))
        file_config = _toml(folder / "from-file.toml", profile="smoke", strategies=STRATEGIES, quiet=True,
                            source_checkpoint=str(folder / "source.pt"))
        from_file = run_cli("run", "--config", str(file_config), "--out", str(folder / "from-file"))
    return Exported(folder, pretrained, export, from_file)


def _values(table: pd.DataFrame) -> pd.DataFrame:
    """A results table without the columns that measure time or memory."""
    return table[[c for c in table.columns if not any(word in c for word in ("seconds", "per_second", "memory"))]]


def test_a_run_from_the_exported_source_gives_the_same_cells(exported):
    for result in (exported.pretrained, exported.export, exported.from_file):
        assert result.code == 0, result.stderr
    pretrained, from_file = exported.folder / "pretrained", exported.folder / "from-file"
    cells = pd.read_csv(from_file / "cells.csv")
    assert list(cells["strategy"]) == STRATEGIES and (cells["status"] == "ok").all()
    pd.testing.assert_frame_equal(_values(cells), _values(pd.read_csv(pretrained / "cells.csv")))
    pd.testing.assert_frame_equal(_values(pd.read_csv(from_file / "evals.csv")),
                                  _values(pd.read_csv(pretrained / "evals.csv")))
    pd.testing.assert_frame_equal(pd.read_csv(from_file / "references.csv"), pd.read_csv(pretrained / "references.csv"))


def test_the_export_line_the_file_and_the_manifest_name_the_same_weights(exported):
    saved = torch.load(exported.file, weights_only=True)
    checksum = saved["checksum"]
    assert saved["format"] == "tganbench-source" and saved["version"] == 1
    assert saved["model"] == {"architecture": "dcgan", "parameters": {"width": 8, "d_norm": "spectral"},
                              "resolution": 32, "z_dim": 64}
    assert checksum == state_fingerprint(prefixed_state(saved["g"], saved["d"]))
    card = saved["card"]
    assert card["origin"] == "pretrained" and card["pair"] == "shapes" and card["steps"] == 40 and card["seed"] == 0
    assert card["seconds"] > 0 and card["tganbench_version"] and card["pair_fingerprint"]

    line = exported.export.stdout.strip()
    assert line.startswith(f"export-source: wrote {exported.file} (tganbench source file: dcgan[width=8] at 32 px")
    assert f"checksum {checksum}" in line and "40 source steps on shapes, seed 0" in line

    assert f"(tganbench format, checksum {checksum}); every transfer strategy starts from it" \
        in exported.from_file.stderr
    manifest = json.loads((exported.folder / "from-file" / "manifest.json").read_text())
    assert {k: manifest["source"]["file"][k] for k in ("path", "format", "checksum")} == {
        "path": str(exported.file), "format": "tganbench", "checksum": checksum}
    assert manifest["source"]["file"]["info"]["card"]["origin"] == "pretrained"
    assert manifest["protocol"]["source_weights"] == f"tganbench file {checksum}"
    assert manifest["protocol"]["source_checkpoint"] == "file" and "source_steps" not in manifest["protocol"]
    assert "the source checkpoint in `" in (exported.folder / "from-file" / "summary.md").read_text()


def test_resume_refuses_other_weights_and_accepts_the_same_file_moved(exported, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(exported.folder / "from-file", out)
    other = tmp_path / "other.pt"
    saved = torch.load(exported.file, weights_only=True)
    first = next(iter(saved["g"]))
    saved["g"][first] = saved["g"][first] + 1e-3
    write_source_file(other, _smoke_model(), saved["g"], saved["d"], saved["card"])
    refused = run_cli("run", *SMOKE, "--strategies", ",".join(STRATEGIES), "--source-checkpoint", str(other),
                      "--out", str(out))
    assert refused.code == 2
    assert "holds a run with a different protocol (source_weights 'tganbench file" in refused.stderr

    moved = tmp_path / "moved.pt"
    shutil.copy(exported.file, moved)
    resumed = run_cli("run", *SMOKE, "--strategies", ",".join(STRATEGIES), "--source-checkpoint", str(moved),
                      "--out", str(out))
    assert resumed.code == 0, resumed.stderr
    assert "resume: 2 finished cells" in resumed.stderr


def test_a_worker_loads_the_file_itself(exported, isolated_cache, tmp_path):
    """A worker plans the run again and reads the file; the source is never looked up in the cache."""
    cache = tmp_path / "cache"
    shutil.copytree(isolated_cache / "reference-features", cache / "reference-features")
    config = resolve_config(profile="smoke", strategies="finetune", source_checkpoint=str(exported.file))
    shared = load_shared(WorkerSetup(config, cache, tmp_path / "out", source_seeds=(0,)))
    source = shared.sources[0]
    saved = torch.load(exported.file, weights_only=True)
    assert source.file is not None and source.file.checksum == saved["checksum"]
    assert all(torch.equal(source.g[k], saved["g"][k]) for k in saved["g"])
    assert not (cache / "sources").exists()


def test_export_of_the_shipped_source_keeps_its_checksum(tmp_path):
    from tganbench.data.embedded import ShapesPair
    from tganbench.fingerprints import tensor_fingerprint
    from tganbench.shipped_sources import find_shipped

    quick = resolve_config("quick")
    entry = find_shipped(tensor_fingerprint(ShapesPair("shapes", "disk", "triangle").load(32).source),
                         resolve_model(quick, load_plugins()))
    result = run_cli("export-source", str(tmp_path / "shipped.pt"))
    assert result.code == 0, result.stderr
    saved = torch.load(tmp_path / "shipped.pt", weights_only=True)
    assert saved["checksum"] == entry.checksum
    assert saved["card"]["origin"] == "shipped" and saved["card"]["steps"] == entry.card["steps"]
    assert f"from the checkpoint shipped for shapes ({entry.file}), checksum {entry.checksum})" in result.stdout


# Files that cannot serve the smoke run, each made from fresh smoke models (nothing is trained).

def _smoke_model():
    return resolve_model(resolve_config("smoke"), load_plugins())


def _states():
    g, d = _smoke_model().build(0, torch.device("cpu"))
    return dict(g.state_dict()), dict(d.state_dict())


def _tganbench_file(path: Path, edit=lambda g, d: None) -> Path:
    g, d = _states()
    edit(g, d)
    write_source_file(path, _smoke_model(), g, d, {"origin": "test"})
    return path


def _reshaped(g, d):
    g["stages.8x8.1.weight"] = torch.zeros(32, 32, 3, 3)


def _without_a_key(g, d):
    del d[next(reversed(list(d)))]


def _damaged(path: Path) -> Path:
    _tganbench_file(path)
    saved = torch.load(path, weights_only=True)
    first = next(iter(saved["d"]))
    saved["d"][first] = saved["d"][first] + 1
    torch.save(saved, path)
    return path


class Payload:
    """An object whose unpickling would create a file: weights_only loading must refuse it first."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickled_object(path: Path) -> Path:
    g, d = _states()
    torch.save({"g_ema": g, "d": d, "extra": Payload(path.with_name("unpickled"))}, path)
    return path


def _rosinality_without_d(path: Path) -> Path:
    torch.save({"g_ema": _states()[0], "latent_avg": torch.zeros(64)}, path)
    return path


def _rosinality_for_dcgan(path: Path) -> Path:
    g, d = _states()
    torch.save({"g": g, "d": d, "g_ema": g, "args": argparse.Namespace(size=32, latent=64, n_mlp=8)}, path)
    return path


def _text(path: Path) -> Path:
    path.write_text("not a checkpoint")
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


BAD_FILES = {
    "missing": (lambda path: path, [], "--source-checkpoint {path}: no such file"),
    "a folder": (_folder, [], "--source-checkpoint {path} is not a file"),
    "two source seeds": (_tganbench_file, ["--source-seeds", "2"],
                         "--source-seeds 2 needs that many pretrained sources, but --source-checkpoint {path} is one"),
    "wrong resolution": (_tganbench_file, ["--resolution", "16"],
                         "checkpoint {path} (tganbench format): made at resolution 32, the run is at 16 "
                         "(--resolution)"),
    "wrong width": (_tganbench_file, ["--width", "16"], "made with width=8, the run has width=16 (--width)"),
    "wrong z_dim": (_tganbench_file, ["--z-dim", "32"], "made with z_dim 64, the run has 32 (--z-dim)"),
    "wrong shape": (lambda path: _tganbench_file(path, _reshaped), [],
                    "checkpoint {path} does not fit the run's generator: stages.8x8.1.weight is (32, 32, 3, 3) in "
                    "the file, (32, 64, 3, 3) in dcgan[width=8] at 32 px"),
    "missing key": (lambda path: _tganbench_file(path, _without_a_key), [],
                    "checkpoint {path} does not fit the run's discriminator: "),
    "damaged": (_damaged, [], "does not match its recorded checksum"),
    "rosinality without d": (_rosinality_without_d, [],
                             "(rosinality format): holds a generator ('g_ema') but no discriminator ('d')"),
    "rosinality for dcgan": (_rosinality_for_dcgan, [],
                             "a rosinality/stylegan2-pytorch checkpoint fits only --architecture stylegan2; the run's "
                             "architecture is dcgan[width=8]"),
    "pickled object": (_pickled_object, [], "which loading with weights_only=True refuses"),
    "not a checkpoint": (_text, [], "checkpoint {path}: no checkpoint format recognises it (formats: tganbench, "
                                    "rosinality)"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_file_that_cannot_serve_the_run_is_one_line_and_exit_2(case, tmp_path):
    make, arguments, fragment = BAD_FILES[case]
    path = make(tmp_path / "source.pt")
    out = tmp_path / "out"
    result = run_cli("run", *SMOKE, "--strategies", "finetune", *arguments, "--source-checkpoint", str(path),
                     "--out", str(out))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tganbench: error: "), result.stderr
    assert fragment.format(path=path) in lines[0]
    assert not out.exists()
    assert not (tmp_path / "unpickled").exists(), "weights_only loading ran a pickled object's code"


def test_a_missing_key_names_the_key_and_its_shape(tmp_path):
    _, d = _states()
    last = next(reversed(list(d)))
    path = _tganbench_file(tmp_path / "source.pt", _without_a_key)
    result = run_cli("run", *SMOKE, "--strategies", "finetune", "--source-checkpoint", str(path))
    shape = "(" + ", ".join(map(str, d[last].shape)) + ")"
    assert result.code == 2
    assert f"{last} {shape} of dcgan[width=8] at 32 px is missing from the file" in result.stderr


def test_a_missing_file_in_a_config_file_is_one_line(tmp_path):
    config = _toml(tmp_path / "run.toml", profile="smoke", source_checkpoint=str(tmp_path / "gone.pt"))
    for command in (["run"], ["export-source", str(tmp_path / "out.pt")]):
        result = run_cli(*command, "--config", str(config))
        assert result.code == 2
        assert result.stderr.strip() == (f"tganbench: error: --source-checkpoint {tmp_path / 'gone.pt'}: no such file "
                                         "(expected shipped, pretrain or the path of a checkpoint file)")


FORMAT_PLUGIN = '''
"""A checkpoint format of another tool: one flat dictionary, generator.* and discriminator.* keys."""
from tganbench import CheckpointFormat, hookimpl
from tganbench.checkpoints import read_torch


class FlatFormat(CheckpointFormat):
    name = "flat"
    description = "one flat dictionary of generator.* and discriminator.* tensors"

    def recognises(self, path):
        contents = read_torch(path)
        return isinstance(contents, dict) and all(k.startswith(("generator.", "discriminator.")) for k in contents)

    def load(self, path, model):
        contents = read_torch(path)
        g = {k[len("generator."):]: v for k, v in contents.items() if k.startswith("generator.")}
        d = {k[len("discriminator."):]: v for k, v in contents.items() if k.startswith("discriminator.")}
        return g, d, {"tool": "flat-saver"}


@hookimpl
def tganbench_register_checkpoint_formats(register):
    register(FlatFormat())
'''


def test_a_plugin_format_loads_its_files(tmp_path):
    plugin = tmp_path / "flat_format_plugin.py"
    plugin.write_text(FORMAT_PLUGIN)
    g, d = _states()
    path = tmp_path / "flat.pt"
    torch.save({**{f"generator.{k}": v for k, v in g.items()}, **{f"discriminator.{k}": v for k, v in d.items()}},
               path)
    listed = run_cli("list", "checkpoint-formats", "--plugin", str(plugin))
    assert listed.code == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[2:] if line.strip() and not line[0].isspace()] \
        == ["tganbench", "rosinality", "flat"]

    out = tmp_path / "run"
    result = run_cli("run", *SMOKE, "--plugin", str(plugin), "--strategies", "finetune", "--target-steps", "2",
                     "--eval-every", "2", "--source-checkpoint", str(path), "--out", str(out))
    assert result.code == 0, result.stderr
    assert "(flat format, checksum" in result.stderr
    source = json.loads((out / "manifest.json").read_text())["source"]["file"]
    assert source["format"] == "flat" and source["info"] == {"tool": "flat-saver"}
    assert source["checksum"] == state_fingerprint(prefixed_state(g, d))
    assert pd.read_csv(out / "cells.csv").loc[0, "status"] == "ok"


@pytest.mark.skipif(not FIXTURE.is_file(), reason="the stylegan2 parity fixture is not there")
def test_a_rosinality_checkpoint_loads_g_ema_and_d_unchanged(tmp_path):
    upstream = torch.load(FIXTURE, weights_only=True)
    without_ema = tmp_path / "no-ema.pt"
    torch.save({"g": upstream["g"], "d": upstream["d"]}, without_ema)
    for source, generator in ((FIXTURE, "g_ema"), (without_ema, "g")):
        out = tmp_path / f"{generator}.pt"
        result = run_cli("export-source", str(out), *SMOKE, *PARITY_MODEL, "--source-checkpoint", str(source))
        assert result.code == 0, result.stderr
        assert "from the rosinality checkpoint" in result.stdout
        saved = torch.load(out, weights_only=True)
        assert list(saved["g"]) == list(upstream[generator]) and list(saved["d"]) == list(upstream["d"])
        assert all(torch.equal(saved["g"][k], upstream[generator][k]) for k in saved["g"])
        assert all(torch.equal(saved["d"][k], upstream["d"][k]) for k in saved["d"])
        assert saved["card"]["origin"] == "file" and saved["card"]["file"]["format"] == "rosinality"
        assert saved["card"]["file"]["info"]["generator"] == generator

    wrong = run_cli("export-source", str(tmp_path / "x.pt"), *SMOKE, *PARITY_MODEL[:-4], "--resolution", "16",
                    "--z-dim", "16", "--source-checkpoint", str(FIXTURE))
    assert wrong.code == 2
    assert "(rosinality format): made at resolution 32, the run is at 16 (--resolution)" in wrong.stderr
