"""What a terminal shows fits 120 columns: `tganbench list [SECTION]` and the table `run` prints."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_cli
from tganbench.reporting.tables import compact_table

WIDTH = 120
HEADERS = {"strategies": "strategy", "pairs": "pair", "extractors": "feature extractor"}


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_list_without_a_section_shows_every_section_within_120_columns():
    result = run_cli("list")
    assert result.code == 0, result.stderr
    assert _widest(result.stdout) <= WIDTH
    tables = result.stdout.strip().split("\n\n")
    assert [table.split()[0] for table in tables][:3] == ["strategy", "pair", "feature"]
    assert "freeze-d" in tables[0] and "shapes-far" in tables[1] and "inception" in tables[2]


@pytest.mark.parametrize("section", HEADERS)
def test_list_one_section(section):
    result = run_cli("list", section)
    assert result.code == 0, result.stderr
    assert _widest(result.stdout) <= WIDTH
    assert result.stdout.lstrip().startswith(HEADERS[section])
    others = [header for name, header in HEADERS.items() if name != section]
    assert not any(line.startswith(header) for line in result.stdout.splitlines() for header in others)
    assert "\n\n" not in result.stdout.strip()


def test_list_wraps_a_long_description_and_keeps_the_plugin_on_the_first_line(tmp_path):
    plugin = tmp_path / "wordy_plugin.py"
    plugin.write_text(
        "from tganbench import Strategy, hookimpl\n\n"
        "class Wordy(Strategy):\n    name = 'wordy'\n    description = '" + "a very long description " * 12 + "'\n"
        "    parameters = {'alpha': 0.5, 'beta': 'a-long-parameter-value', 'gamma': 3, 'delta': 'another-one'}\n\n"
        "@hookimpl\ndef tganbench_register_strategies(register):\n    register(Wordy)\n"
    )
    result = run_cli("list", "strategies", "--plugin", str(plugin))
    assert result.code == 0, result.stderr
    first = next(line for line in result.stdout.splitlines() if line.startswith("wordy"))
    assert first.rstrip().endswith(str(plugin)) and "alpha=0.5" in first
    description = " ".join(result.stdout.split())
    assert "a very long description " * 3 in description + " "


def test_an_unknown_section_is_exit_2():
    result = run_cli("list", "wombats")
    assert result.code == 2
    assert "invalid choice: 'wombats'" in result.stderr


def test_the_compact_table_fits_with_long_labels_and_a_plugin_metric():
    labels = ["scratch", "finetune+diffaugment[policy=color,translation,cutout]",
              "freeze-d[layers=3]+diffaugment[policy=color,translation,cutout]"]
    summary = pd.DataFrame([
        {"shots": 100, "strategy": label, "seeds": 3, "not ok": "1 diverged" if "+" in label else "", "FD[shapes] final": "12.34 ± 1.23",
         "95% CI": "[10.00, 14.00]", "Δ vs scratch [95% CI]": "-1.00 [-2.00, 0.00]", "FD[shapes] best": "11.00 ± 1.00",
         "best step": "2000", "KID": "0.123 ± 0.0456", "recognised": "83 ± 4", "sharpness": "0.512 ± 0.0123",
         "to target": "500 steps, 12.3 s", "train s": "123.4", "steps/s": "8.1",
         "eval s": "3.2", "trainable": "1,115,908 / 1,115,908"}
        for label in labels
    ])
    text = compact_table(summary)
    assert _widest(text) <= WIDTH
    header = text.splitlines()[0].split()
    assert header[:3] == ["shots", "strategy", "seeds"] and "sharpness" in header and "train" in header
    for dropped in ("CI]", "best", "trainable", "target"):
        assert dropped not in header
    # the strategy column, read down: every label is there whole (wrapped, never cut)
    start = text.splitlines()[1].index(" -") + 1
    end = text.splitlines()[1].index("  ", start)
    column = "".join(line[start:end].strip() for line in text.splitlines()[2:])
    assert column == "".join(labels)
