"""What a plugin author imports from ``tganbench`` itself."""

from __future__ import annotations

import subprocess
import sys

import tganbench
from tganbench.data.pairs import Pair, PairData
from tganbench.metrics.extractors import ExtractorSpec
from tganbench.train import TrainState


def test_the_plugin_api_is_exported_from_the_package():
    assert (tganbench.Pair, tganbench.PairData, tganbench.ExtractorSpec, tganbench.TrainState) == (
        Pair, PairData, ExtractorSpec, TrainState
    )
    assert {"Pair", "PairData", "ExtractorSpec", "TrainState", "Strategy", "hookimpl"} <= set(tganbench.__all__)


def test_importing_the_package_does_not_load_the_training_loop_or_torch_fidelity():
    code = "import sys, tganbench; print(sorted({'tganbench.train', 'torch_fidelity'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_worker_process_does_not_load_the_report_builder_or_matplotlib():
    # Every local, submitit or Ray worker imports tganbench.worker; the report is the driver's job.
    code = "import sys, tganbench.worker; print(sorted({'tganbench.reporting.build', 'matplotlib'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
