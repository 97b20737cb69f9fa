"""``--strategies`` parsing: names, parameters, ``all`` and labels."""

import pytest

from tganbench.errors import UsageError
from tganbench.plugins import load_plugins
from tganbench.strategy import parse_strategies


@pytest.fixture(scope="module")
def available():
    return {name: entry.obj for name, entry in load_plugins().strategies.items()}


def test_all_means_every_registered_strategy_with_defaults(available):
    chosen = parse_strategies("all", available)
    assert [s.label for s in chosen] == list(available)
    assert all(s.params == type(s).parameters for s in chosen)


def test_parameters_override_defaults_and_appear_in_the_label(available):
    chosen = parse_strategies("freeze-d[layers=1],freeze-d[layers=3],finetune", available)
    assert [s.label for s in chosen] == ["freeze-d[layers=1]", "freeze-d[layers=3]", "finetune"]
    assert chosen[1].params == {"layers": 3}


def test_typed_parameters_and_duplicates(available):
    chosen = parse_strategies("batchstat[lr=0.01,perceptual=none],batchstat[lr=0.01,perceptual=none]", available)
    assert len(chosen) == 1
    assert chosen[0].params["lr"] == 0.01 and chosen[0].params["perceptual"] == "none"


def test_fresh_copy_has_same_parameters_but_new_state(available):
    original = parse_strategies("batchstat[latent_weight=0.5]", available)[0]
    copy = original.fresh_copy()
    assert copy is not original and copy.params == original.params


def test_default_valued_override_keeps_the_plain_label(available):
    assert parse_strategies("freeze-d[layers=2]", available)[0].label == "freeze-d"


@pytest.mark.parametrize("text", ["", "freeze-d[layers=1", "x y"])
def test_malformed_specs_are_usage_errors(available, text):
    with pytest.raises(UsageError):
        parse_strategies(text, available)
