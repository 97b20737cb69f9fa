"""Bad input: one clear line on stderr naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import run_cli

SMOKE = ["run", "--profile", "smoke"]

# (arguments, a fragment the one-line message must contain)
BAD_INPUTS = [
    (["--strategies", "nope"], "unknown strategy 'nope' (available: scratch, finetune, freeze-d, freeze-g, batchstat"),
    (["--strategies", "freeze-d[layers=x]"], "parameter 'layers' expects int, got 'x'"),
    (["--strategies", "freeze-d[nope=1]"], "unknown parameter 'nope' (parameters: layers)"),
    (["--strategies", "freeze-d[layers]"], "malformed parameter 'layers'"),
    (["--strategies", "freeze-d[layers=9]"], "layers must be between 0 and 5, got 9"),
    (["--strategies", "batchstat[perceptual=vgg]"], "perceptual must be one of"),
    (["--strategies", "batchstat[latent_prior=kde]"], "latent_prior must be one of nearest, sorted, got 'kde'"),
    (["--strategies", "finetune[lr=-1]"], "lr must be positive, or 0 for the run's learning rate, got -1.0"),
    (["--strategies", "finetune[", "--shots", "5"], "malformed strategy 'finetune['"),
    (["--shots", "100000"], "--shots 100000 is larger than the 2000 target images"),
    (["--shots", "0"], "--shots must be a positive integer, got 0"),
    (["--target-steps", "0"], "--target-steps must be a positive integer, got 0"),
    (["--source-steps", "-5"], "--source-steps must be a positive integer, got -5"),
    (["--source-seed", "-1"], "--source-seed must be a non-negative integer, got -1"),
    (["--z-dim", "0"], "--z-dim must be a positive integer, got 0"),
    (["--target-steps", "ten"], "invalid int value: 'ten'"),
    (["--seeds", "x"], "--seeds expects a count or a comma-separated list"),
    (["--profile", "huge"], "unknown profile 'huge' (profiles: smoke, quick, study, full, stylegan2-quick, stylegan2-gpu)"),
    (["--pair", "nope"], "unknown pair 'nope' (available: shapes"),
    (["--feature-extractor", "nope"], "unknown feature extractor 'nope' (available: shapes, inception"),
    (["--resolution", "48"], "architecture 'dcgan': resolution must be one of 16, 32, 64, got 48"),
    (["--d-norm", "batch"], "architecture 'dcgan': d_norm must be spectral or none, got 'batch'"),
    (["--architecture", "stylegan9"], "unknown architecture 'stylegan9' (available: dcgan, stylegan2)"),
    (["--architecture", "dcgan[depth=3]"], "architecture 'dcgan': unknown parameter 'depth' (parameters: width, d_norm)"),
    (["--augment", "colour"], "unknown augmentation 'colour' (available: diffaugment, ada)"),
    (["--executor", "local:0"], "--executor local:N needs a number of worker processes N >= 1, got 'local:0'"),
    (["--executor", "local:two"], "--executor local:N needs a number of worker processes N >= 1"),
    (["--executor", "slurm"],
     "--executor must be serial, local:N, submitit[key=value,...] or ray[key=value,...][:ADDRESS], got 'slurm'"),
    (["--executor", "ray[gpus=-1]"], "ray option 'gpus' expects a non-negative number, got '-1'"),
    (["--executor", "submitit[queue=gpu]"], "unknown submitit option 'queue' (options: cluster, partition, account"),
    (["--executor", "submitit[time=0]"], "submitit option 'time' expects a positive int, got '0'"),
    (["--strategies", "finetune+colour"], "unknown augmentation 'colour' (available: diffaugment, ada)"),
    (["--strategies", "finetune+ada+diffaugment"], "malformed strategy 'finetune+ada+diffaugment': expected STRATEGY or"),
    (["--strategies", "finetune+"], "malformed strategy 'finetune+'"),
    (["--strategies", "batchstat+ada"], "nothing to run: batchstat+(ada): it trains no discriminator"),
    (["--augment", "diffaugment[policy=zoom]"], "augmentation 'diffaugment': unknown policy 'zoom'"),
    (["--device", "tpu"], "--device must be auto, cpu or cuda, got 'tpu'"),
    (["--precision", "fp16"], "--precision must be fp32 or bf16, got 'fp16'"),
    (["--device", "cpu", "--cuda-graph"], "--cuda-graph needs a CUDA device, but --device is cpu"),
    (["--cuda-graph", "--compile"], "--cuda-graph and --compile cannot be combined (choose one)"),
    (["--memory-format", "nhwc"], "--memory-format must be channels-last or contiguous, got 'nhwc'"),
    (["--shots", "10,x"], "--shots expects a positive integer or a comma-separated list, got '10,x'"),
    (["--shots", "10,10"], "--shots list must hold distinct values"),
    (["--shots", "10,-1"], "--shots must be a positive integer, got -1"),
    (["--source", "somewhere"], "--source and --target must be given together"),
    (["--source", "a", "--target", "b", "--pair", "shapes"], "--pair cannot be combined with --source/--target"),
    (["--source", "no/such/dir", "--target", "no/such/dir"], "image folder no/such/dir does not exist"),
    (["--held-out", "30"], "--held-out applies only to image folders"),
    (["--fd-target", "-3"], "--fd-target must be a positive number, got -3.0"),
    (["--fd-target", "nan"], "--fd-target must be a positive number, got nan"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--seeds", "0,0"], "--seeds list must hold distinct non-negative integers"),
    (["--seeds", "0"], "--seeds is a count and must be at least 1, got 0 (for seed 0 alone write '0,')"),
    (["--seeds", "-2"], "--seeds is a count and must be at least 1, got -2"),
    (["--seeds", ","], "--seeds expects a count or a comma-separated list of integers, got ','"),
    (["--seeds", "1,,"], "--seeds expects a count or a comma-separated list of integers, got '1,,'"),
    (["--lr", "0"], "--lr must be positive, got 0.0"),
    (["--resolution", "x"], "invalid int value: 'x'"),
    (["--width", "-8"], "--width must be a positive integer, got -8"),
    (["--n-reference", "0"], "--n-reference must be a positive integer, got 0"),
]


def _empty_folder(root):
    (root / "empty").mkdir()
    return root / "empty"


def _text_only_folder(root):
    (root / "texts").mkdir()
    (root / "texts" / "notes.txt").write_text("no images here")
    return root / "texts"


def _undecodable_folder(root):
    (root / "broken").mkdir()
    for name in ("a.png", "b.jpg"):
        (root / "broken" / name).write_bytes(b"these bytes are not an image")
    return root / "broken"


def _a_file(root):
    (root / "file.png").write_bytes(b"")
    return root / "file.png"


# (makes a --target folder in tmp_path, a fragment of the one-line message)
BAD_FOLDERS = [
    (_empty_folder, "no image files in"),
    (_text_only_folder, "no image files in"),
    (_undecodable_folder, "none of the 2 image files in"),
    (_a_file, "is not a folder"),
]


@pytest.mark.parametrize("make, fragment", BAD_FOLDERS, ids=[make.__name__ for make, _ in BAD_FOLDERS])
def test_bad_image_folder_is_one_line_and_exit_2(make, fragment, tmp_path):
    out = tmp_path / "out"
    target = make(tmp_path)
    result = run_cli(*SMOKE, "--source", str(target), "--target", str(target), "--out", str(out))
    assert result.code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tganbench: error: ") and fragment in last, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("arguments, fragment", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(arguments, fragment, tmp_path):
    out = tmp_path / "out"
    result = run_cli(*SMOKE, *arguments, "--out", str(out))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tganbench: error: ")
    assert fragment in lines[0]
    assert not out.exists(), "nothing should be written for a rejected run"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so --device cuda is valid")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path):
    result = run_cli(*SMOKE, "--device", "cuda", "--out", str(tmp_path / "out"))
    assert result.code == 2
    assert "no CUDA device is available" in result.stderr


def test_unwritable_output_folder_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli(*SMOKE, "--strategies", "finetune", "--out", str(blocker / "sub"))
    assert result.code == 2
    assert "cannot write to output folder" in result.stderr


def test_console_script_bad_input_has_no_traceback():
    """The installed entry point itself, in a fresh process."""
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "tganbench.cli", "run", "--strategies", "freeze-d[nope=1]"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "tganbench: error: strategy 'freeze-d': unknown parameter 'nope' (parameters: layers)"
    )


def test_list_into_a_closed_pipe_has_no_traceback():
    """`tganbench list | true`: the reader is gone before anything is written (importing torch takes seconds)."""
    command = f"{sys.executable} -m tganbench.cli list | true"
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr
