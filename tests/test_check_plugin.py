"""``tganbench check-plugin``: built-ins pass, broken strategies fail naming the check."""

from __future__ import annotations

import pytest

from conftest import BUILT_INS, run_cli


BROKEN = '''
from tganbench import Strategy, hookimpl


class ClaimsToFreeze(Strategy):
    """Declares D's lowest stage frozen, then sneaks it back into the optimiser."""

    name = "claims-to-freeze"
    description = "broken on purpose"

    def frozen(self, g, d):
        return list(d.stages)[:1]

    def prepare(self, state):
        stage = list(state.d.stages)[0]
        stage.requires_grad_(True)
        state.d_opt.add_param_group({"params": list(stage.parameters())})


class ProducesNan(Strategy):
    name = "produces-nan"
    description = "broken on purpose"

    def generator_loss(self, state, fake, z):
        return fake.mean() * float("nan")


class TrainsNothing(Strategy):
    """Claims to train all of G and D but its step does nothing."""

    name = "trains-nothing"
    description = "broken on purpose"

    def step(self, state):
        return {}


@hookimpl
def tganbench_register_strategies(register):
    for strategy in (ClaimsToFreeze, ProducesNan, TrainsNothing):
        register(strategy)
'''


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_built_in_passes_on_the_default_architecture(name):
    result = run_cli("check-plugin", name, "--architecture", "dcgan")
    assert result.code == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 8 and all(line.startswith("PASS") for line in lines[:-1])
    assert all(line.endswith(" on dcgan") or " on dcgan (" in line for line in lines[2:-1])
    assert lines[-1] == f"check-plugin {name}: 7 of 7 checks passed"


def test_without_architecture_it_checks_every_registered_architecture():
    # (tests/test_stylegan2.py runs every built-in on stylegan2 through `tganbench run --strategies all`)
    result = run_cli("check-plugin", "freeze-g")
    assert result.code == 0, result.stdout + result.stderr
    for architecture in ("dcgan", "stylegan2"):
        for check in ("trains without non-finite losses", "frozen parameters and buffers bit-identical",
                      "every other parameter changed", "deterministic for a seed", "finite metrics"):
            assert f"PASS  {check} on {architecture}" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "check-plugin freeze-g: 12 of 12 checks passed"


def test_an_architecture_the_strategy_refuses_is_a_skip_with_its_reason_not_a_failure():
    result = run_cli("check-plugin", "batchstat", "--architecture", "stylegan2")
    assert result.code == 0, result.stdout + result.stderr
    assert "SKIP  runs on stylegan2: needs BatchNorm layers in G, and stylegan2's G has none" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "check-plugin batchstat: 2 of 2 checks passed, 1 architecture refused"


def test_an_unknown_architecture_is_a_usage_error():
    result = run_cli("check-plugin", "finetune", "--architecture", "biggan")
    assert result.code == 2
    assert "unknown architecture 'biggan' (available: dcgan, stylegan2)" in result.stderr


def test_parameters_are_checked_too():
    assert run_cli("check-plugin", "freeze-g[layers=3]").code == 0
    result = run_cli("check-plugin", "freeze-g[layers=x]")
    assert result.code == 1
    assert "FAIL  parameters parse: strategy 'freeze-g': parameter 'layers' expects int, got 'x'" in result.stdout


@pytest.mark.parametrize(
    "name, failing_check, detail",
    [
        ("claims-to-freeze", "frozen parameters and buffers bit-identical on dcgan", "d.stages.32x32.0.bias"),
        ("produces-nan", "trains without non-finite losses on dcgan", "status diverged"),
        ("trains-nothing", "every other parameter changed on dcgan", "did not change"),
    ],
)
def test_broken_strategies_fail_naming_the_check(tmp_path, name, failing_check, detail):
    plugin = tmp_path / "broken_strategies.py"
    plugin.write_text(BROKEN)
    result = run_cli("check-plugin", name, "--plugin", str(plugin), "--architecture", "dcgan")
    assert result.code == 1
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert failures and failures[0].startswith(f"FAIL  {failing_check}: ")
    assert detail in failures[0]


def test_unknown_strategy_is_a_usage_error():
    result = run_cli("check-plugin", "nope")
    assert result.code == 2
    assert "unknown strategy 'nope'" in result.stderr
