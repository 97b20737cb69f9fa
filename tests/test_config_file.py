"""`tganbench run --config FILE.toml`: every flag round-trips, typed flags override, bad files are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from tganbench.cli import _build_parser, parse_arguments, run_settings
from tganbench.config import parse_seeds

# One valid value per `run` flag (switches: True). A new flag without a sample here fails the test below.
SAMPLES = {
    "--plugin": ["a_plugin.py", "b_plugin.py"],
    "--strategies": ["finetune", "freeze-d[layers=1]"],
    "--source": "photos/source",
    "--target": "photos/target",
    "--held-out": 30,
    "--data-root": "datasets",
    "--profile": "smoke",
    "--shots": [10, 100],
    "--seeds": 3,
    "--source-checkpoint": "pretrain",
    "--source-steps": 7,
    "--source-seed": 3,
    "--source-seeds": 2,
    "--target-steps": 9,
    "--eval-every": 3,
    "--n-generated": 50,
    "--n-reference": 40,
    "--n-validation": 30,
    "--batch-size": 16,
    "--architecture": "dcgan",
    "--width": 8,
    "--resolution": 16,
    "--z-dim": 32,
    "--lr": 0.001,
    "--d-norm": "none",
    "--augment": ["color", "cutout"],
    "--real-symmetries": ["xflip"],
    "--r1-gamma": 0.5,
    "--ema-beta": 0.99,
    "--device": "cuda",
    "--precision": "bf16",
    "--compile": True,
    "--cuda-graph": True,
    "--memory-format": "contiguous",
    "--executor": "local:2",
    "--executor-setup": ["module load cuda", "source venv/bin/activate"],
    "--feature-extractor": "inception",
    "--feature-extractor-weights": "weights.pth",
    "--fd-target": 42.5,
    "--out": "results/somewhere",
    "--cache-dir": "cache",
    "--quiet": True,
    "--force-new": True,
}


def _command_line(samples: dict) -> list[str]:
    arguments = ["run"]
    for flag, value in samples.items():
        if value is True:
            arguments.append(flag)
        elif flag in ("--plugin", "--executor-setup"):
            arguments += [part for item in value for part in (flag, item)]
        else:
            arguments += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return arguments


def _toml(samples: dict) -> str:
    def literal(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return f'"{value}"'
        if isinstance(value, list):
            return "[" + ", ".join(literal(item) for item in value) + "]"
        return repr(value)

    return "".join(f"{flag[2:].replace('-', '_')} = {literal(value)}\n" for flag, value in samples.items())


def test_every_run_flag_has_a_sample():
    flags = {flag for action in _build_parser().run_options for flag in action.option_strings}
    assert {flag for flag in flags if flag.startswith("--")} - {"--help", "--config"} == set(SAMPLES) | {"--pair"}


@pytest.mark.parametrize("with_pair", [False, True], ids=["folders", "pair"])
def test_every_flag_round_trips_through_a_config_file(tmp_path, with_pair):
    samples = dict(SAMPLES)
    if with_pair:  # --pair excludes --source/--target/--held-out; --cuda-graph excludes --compile
        for flag in ("--source", "--target", "--held-out", "--compile"):
            del samples[flag]
        samples["--pair"] = "shapes-near"
    else:
        del samples["--cuda-graph"]
    config = tmp_path / "run.toml"
    config.write_text(_toml(samples))
    from_flags = run_settings(parse_arguments(_command_line(samples)))
    from_file = run_settings(parse_arguments(["run", "--config", str(config)]))
    assert from_file == from_flags
    assert from_file.config.shots == (10, 100) and from_file.quiet
    assert from_file.config.cuda_graph == with_pair and from_file.config.compile != with_pair
    assert from_file.config.plugins == ("a_plugin.py", "b_plugin.py")
    assert from_file.config.executor_setup == ("module load cuda", "source venv/bin/activate")
    assert from_file.config.augment == "color,cutout" and from_file.config.ema_beta == 0.99
    assert from_file.config.source_checkpoint == "pretrain" and from_file.config.d_norm == "none"


def test_flags_on_the_command_line_override_the_file(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('target_steps = 7\nstrategies = "finetune"\nseeds = [0, 4]\n')
    settings = run_settings(parse_arguments(["run", "--config", str(config), "--target-steps", "9"]))
    assert settings.config.target_steps == 9
    assert settings.config.strategies == "finetune" and settings.config.seeds == (0, 4)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("target_steps = 5\nstepz = 3\n", "unknown key 'stepz' in config file"),
        ("config = 'other.toml'\n", "unknown key 'config'"),
        ("target_steps = \n", "is not valid TOML"),
        ("target_steps = 0\n", "--target-steps must be a positive integer, got 0"),
        ("[table]\nx = 1\n", "key 'table' in config file"),
    ],
    ids=["unknown key", "nested config", "syntax error", "bad value", "table"],
)
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, text, fragment):
    config = tmp_path / "run.toml"
    config.write_text(text)
    result = run_cli("run", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_is_a_usage_error(tmp_path):
    result = run_cli("run", "--config", str(tmp_path / "nope.toml"))
    assert result.code == 2 and "config file" in result.stderr and "does not exist" in result.stderr


def test_the_ci_benchmark_config_is_valid():
    config = Path(__file__).resolve().parent.parent / "benchmarks" / "ci.toml"
    settings = run_settings(parse_arguments(["run", "--config", str(config)]))
    assert len(settings.config.seeds) >= 2 and settings.config.device == "cpu"


@pytest.mark.parametrize("text, seeds", [("3", (0, 1, 2)), ("0,5,7", (0, 5, 7)), ("4,", (4,)), ("0,", (0,))])
def test_seeds_are_a_count_a_list_or_one_seed_with_a_trailing_comma(text, seeds):
    assert parse_seeds(text) == seeds
