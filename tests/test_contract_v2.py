"""Contract v2: every new seam, exercised by a plugin written only against the public API.

The plugin is tests/plugins/seams_plugin.py, loaded with ``--plugin`` as a user would.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import run_cli

PLUGIN = Path(__file__).parent / "plugins" / "seams_plugin.py"
PACKAGE = Path(__file__).resolve().parent.parent / "tganbench"
SMOKE = ["--profile", "smoke", "--plugin", str(PLUGIN), "--seeds", "1"]


def seen() -> dict[str, list]:
    """What the plugin saw in the last run (each ``--plugin FILE`` load imports the file afresh)."""
    return sys.modules["seams_plugin"].SEEN


def plugin_module():
    """The plugin file imported as a module, for tests that use its classes directly."""
    spec = importlib.util.spec_from_file_location("seams_plugin_direct", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_augmentation_sees_real_and_fake_images_in_both_steps(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", *SMOKE, "--strategies", "finetune,batchstat", "--augment", "spy",
                     "--real-symmetries", "none", "--out", str(out))
    assert result.code == 0, result.stderr
    first_step = [kind for step, kind, _ in seen()["augmented"] if step == 1]
    assert first_step == ["fake", "real", "fake"]  # D step: fake then real; G step: fake
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["strategy"]) == ["finetune+spy", "batchstat"]
    assert list(cells["augmentation"]) == ["spy", "none"]
    assert "batchstat+(spy): it trains no discriminator" in result.stderr


def test_augmentations_are_crossed_with_every_adversarial_strategy(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", *SMOKE, "--strategies", "scratch,freeze-d", "--augment", "none,spy",
                     "--target-steps", "2", "--eval-every", "2", "--out", str(out))
    assert result.code == 0, result.stderr
    labels = list(pd.read_csv(out / "cells.csv")["strategy"])
    assert labels == ["scratch", "scratch+spy", "freeze-d", "freeze-d+spy"]
    resumed = run_cli("run", *SMOKE, "--strategies", "scratch,freeze-d", "--augment", "none,spy",
                      "--target-steps", "2", "--eval-every", "2", "--out", str(out))
    assert "4 finished cells already" in resumed.stderr  # the composed label is the resume key


def test_a_discriminator_loss_term_changes_the_discriminator_update():
    R1Term = plugin_module().R1Term  # noqa: N806
    from tganbench.data.shapes import render_shapes
    from tganbench.models import ModelConfig, build_models
    from tganbench.strategies.finetune import Finetune
    from tganbench.train import TrainConfig, train

    images = render_shapes("triangle", 64, 32, seed=3)
    weights = []
    for strategy in (Finetune(), R1Term()):
        g, d = build_models(ModelConfig(width=8), 0, torch.device("cpu"))
        train(g, d, strategy, images, TrainConfig(steps=2, batch_size=8), seed=1)
        weights.append(torch.cat([p.flatten() for p in d.parameters()]))
    assert not torch.equal(weights[0], weights[1])


def test_a_registered_metric_reaches_cells_summary_compare_and_the_html_report(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", *SMOKE, "--strategies", "finetune", "--out", str(out))
    assert result.code == 0, result.stderr
    cells, evals = pd.read_csv(out / "cells.csv"), pd.read_csv(out / "evals.csv")
    assert cells["sharpness"].notna().all() and evals["sharpness"].notna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["name"] for m in manifest["metrics"]] == ["fd", "kid", "recognised", "precision", "recall", "copying", "diversity", "sharpness"]
    assert "sharpness" in (out / "summary.md").read_text()
    assert "sharpness" in (out / "report.html").read_text()
    compared = run_cli("compare", str(out), str(out))
    assert compared.code == 0 and "sharpness" in compared.stdout


def test_a_second_architecture_runs_every_strategy_but_batchstat_which_is_refused_with_its_reason(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", *SMOKE, "--architecture", "tiny", "--strategies",
                     "scratch,finetune,freeze-d,freeze-g,batchstat", "--out", str(out))
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["strategy"]) == ["scratch", "finetune", "freeze-d", "freeze-g"]
    assert (cells["status"] == "ok").all()
    assert "skipped batchstat: needs BatchNorm layers in G, and tiny's G has none" in result.stderr
    assert json.loads((out / "manifest.json").read_text())["model"]["architecture"] == "tiny"
    only = run_cli("run", *SMOKE, "--architecture", "tiny", "--strategies", "batchstat", "--out", str(tmp_path / "b"))
    assert only.code == 2 and "nothing to run: batchstat: needs BatchNorm" in only.stderr


def test_a_strategy_can_replace_the_latent_sampler_that_evaluation_also_uses(tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", *SMOKE, "--strategies", "anchored-sampler", "--out", str(out))
    assert result.code == 0, result.stderr
    assert "train" in seen()["sampler_modes"] and "eval" in seen()["sampler_modes"]
    assert seen()["g_source_frozen"] and all(seen()["g_source_frozen"])
    assert pd.read_csv(out / "cells.csv")["status"].tolist() == ["ok"]


def test_g_source_is_refused_for_a_cell_without_a_source():
    from tganbench.step import TrainState

    state = TrainState(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), None, None, torch.zeros(1), 1,
                       torch.Generator())
    with pytest.raises(RuntimeError, match="no source model"):
        state.g_source  # noqa: B018


def _module_imports(path: Path) -> set[str]:
    """``tganbench.*`` modules imported at module level (not under TYPE_CHECKING, not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tganbench"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tganbench"))
    return found


def test_no_import_cycle_inside_the_package():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: {m for m in _module_imports(path) if m in modules and m != "tganbench"}
             for name, path in modules.items() if name != "tganbench"}
    visiting, done = [], set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, f"import cycle: {' -> '.join(visiting[visiting.index(name):] + [name])}"
        visiting.append(name)
        for target in graph.get(name, ()):
            visit(target)
        visiting.pop()
        done.add(name)

    for module in graph:
        visit(module)


def test_each_cell_records_its_optimizer_settings(smoke_run):
    out, result = smoke_run
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv").set_index("strategy")
    manifest = json.loads((out / "manifest.json").read_text())
    run_lr = manifest["config"]["lr"]
    assert json.loads(cells.loc["finetune", "optimizer"]) == {"lr": run_lr, "beta1": 0.5, "beta2": 0.999}
    assert json.loads(cells.loc["batchstat", "optimizer"])["lr"] == 1e-3  # batchstat's own scale/shift rate


def test_a_cell_description_pickles_and_executes_the_same(tmp_path):
    """The scale-out seam: a CellSpec survives pickling and executes to the same row."""
    import pickle

    from tganbench.cell import SharedArtefacts, execute_cell
    from tganbench.config import resolve_config
    from tganbench.metric import MetricContext
    from tganbench.metrics.evaluator import Evaluator
    from tganbench.plan import plan_run
    from tganbench.plugins import load_plugins
    from tganbench.runner import cell_specs

    registry = load_plugins()
    config = resolve_config("smoke", strategies="scratch", augment="diffaugment[policy=color]", device="cpu",
                            target_steps=4, eval_every=2)
    plan = plan_run(config, registry, tmp_path / "data")
    (spec,) = cell_specs(plan, plan.cells())
    copy = pickle.loads(pickle.dumps(spec))
    assert copy.key() == spec.key() == (100, "scratch+diffaugment[policy=color]", 0, -1)
    evaluator = Evaluator(plan.extractor, plan.reference, torch.device("cpu"), 5, 50, validation=plan.validation)
    context = MetricContext(evaluator, plan.reference, plan.families)
    metrics = [entry.obj for entry in registry.metrics.values()]
    shared = SharedArtefacts(torch.device("cpu"), context, metrics, plan.extractor.name, plan.extractor.metric)
    rows = [execute_cell(s, shared, quiet=True).row for s in (spec, copy)]
    numbers = [{k: v for k, v in row.items() if "second" not in k and "memory" not in k} for row in rows]
    assert numbers[0] == numbers[1]
