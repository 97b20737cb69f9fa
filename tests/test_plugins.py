"""Third-party plugins: registered through the same hooks as the built-ins, isolated when broken."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pandas as pd
import pytest

from conftest import install_fake_distribution, run_cli
from tganbench.plugins import DEFAULT_PLUGINS, load_plugins

PLUGIN_SOURCE = textwrap.dedent(
    '''
    """A test plugin: freeze all of D except its logit, and observe the run."""
    from tganbench import Strategy, hookimpl

    CALLS = []


    class FreezeMostOfD(Strategy):
        name = "freeze-most-of-d"
        description = "test plugin strategy"
        parameters = {"keep": 1}

        def frozen(self, g, d):
            return list(d.stages)[: len(d.stages) - self.params["keep"]]

        def step(self, state):
            CALLS.append(("step", state.step))
            return super().step(state)


    @hookimpl
    def tganbench_register_strategies(register):
        register(FreezeMostOfD)


    @hookimpl
    def tganbench_evaluated(row):
        CALLS.append(("evaluated", row["strategy"], row["step"]))


    @hookimpl
    def tganbench_cell_finished(row):
        CALLS.append(("cell", row["strategy"], row["status"]))


    @hookimpl
    def tganbench_run_finished(out_dir, cells):
        CALLS.append(("run", out_dir, len(cells)))
    '''
)


@pytest.fixture
def plugin_file(tmp_path, monkeypatch):
    path = tmp_path / "my_tgan_plugin.py"
    path.write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    sys.modules.pop("my_tgan_plugin", None)


def test_builtins_are_registered_as_plugins():
    registry = load_plugins()
    assert list(registry.strategies) == ["scratch", "finetune", "freeze-d", "freeze-g", "batchstat", "ewc", "adafm", "cdc", "dcl", "minegan"]
    assert registry.strategies["freeze-d"].plugin == "tganbench.strategies.freeze_d"
    assert all(registry.manager.has_plugin(name) for name in DEFAULT_PLUGINS)


@pytest.mark.parametrize("how", ["module", "file"])
def test_plugin_strategy_is_listed_with_its_plugin_name(plugin_file, how):
    spec = "my_tgan_plugin" if how == "module" else str(plugin_file)
    result = run_cli("list", "--plugin", spec)
    assert result.code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("freeze-most-of-d"))
    assert "keep=1" in line and spec in line


def test_plugin_strategy_runs_and_every_observer_hook_is_called(plugin_file, tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "run", "--plugin", "my_tgan_plugin", "--strategies", "freeze-most-of-d[keep=2],finetune",
        "--profile", "smoke", "--out", str(out),
    )
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["strategy"]) == ["freeze-most-of-d[keep=2]", "finetune"]
    assert cells.loc[0, "trainable_params"] < cells.loc[1, "trainable_params"]
    calls = sys.modules["my_tgan_plugin"].CALLS
    assert ("evaluated", "freeze-most-of-d[keep=2]", 20) in calls
    # Observers hear of an evaluation while the cell is still training.
    assert calls.index(("evaluated", "freeze-most-of-d[keep=2]", 10)) < calls.index(("step", 11))
    assert ("cell", "finetune", "ok") in calls
    assert calls[-1] == ("run", str(out), 2)


def test_entry_point_plugins_are_discovered(plugin_file, monkeypatch):
    entry_point = importlib.metadata.EntryPoint(name="my-plugin", value="my_tgan_plugin", group="tganbench")
    monkeypatch.setattr("tganbench.plugins._entry_points", lambda: [entry_point])
    registry = load_plugins()
    assert registry.strategies["freeze-most-of-d"].plugin == "my-plugin"


BROKEN_PLUGINS = {
    "missing file": None,
    "missing module": "a_module_that_does_not_exist",
    "syntax error": "def register(:\n    pass\n",
    "failing import": "import a_module_that_does_not_exist\n",
    "raising on import": "raise RuntimeError('this plugin is broken')\n",
}


@pytest.mark.parametrize("broken", BROKEN_PLUGINS)
@pytest.mark.parametrize("command", [["list"], ["check-plugin", "finetune"], ["run", "--profile", "smoke"], ["config"]])
def test_a_named_plugin_that_cannot_be_loaded_is_an_error_before_anything_runs(tmp_path, broken, command):
    source = BROKEN_PLUGINS[broken]
    if broken == "missing module":
        spec = source
    else:
        spec = str(tmp_path / "broken_plugin.py")
        if source is not None:
            (tmp_path / "broken_plugin.py").write_text(source)
    out = tmp_path / "run"
    if command == ["config"]:
        (tmp_path / "run.toml").write_text(f'plugin = ["{spec}"]\nprofile = "smoke"\nout = "{out}"\n')
        result = run_cli("run", "--config", str(tmp_path / "run.toml"))
    else:
        result = run_cli(*command, "--plugin", spec, *(["--out", str(out)] if command[0] == "run" else []))
    assert result.code == 2
    assert result.stderr.startswith(f"tganbench: error: plugin '{spec}' ") or \
        result.stderr.startswith(f"tganbench: error: plugin file {spec} does not exist")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert not out.exists()


def test_a_broken_installed_plugin_is_reported_and_the_rest_runs(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "plugin_broken.py").write_text("import a_module_that_does_not_exist\n")
    install_fake_distribution(tmp_path / "site", "broken_dist", {"broken": "plugin_broken"})
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("TGANBENCH_LOAD_PLUGINS")
    monkeypatch.setenv("TGANBENCH_DISABLE_PLUGINS", "l2sp")  # only the broken one, whatever else is installed
    result = run_cli("list")
    assert result.code == 0
    assert "tganbench: warning: plugin 'broken' failed to load: ModuleNotFoundError" in result.stderr
    assert "freeze-d" in result.stdout


def test_a_misspelled_hook_fails_loudly(tmp_path):
    bad = tmp_path / "misspelled_plugin.py"
    bad.write_text(
        "from tganbench import hookimpl\n\n@hookimpl\ndef tganbench_register_strategy(register):\n    pass\n"
    )
    result = run_cli("list", "--plugin", str(bad))
    assert result.code == 2
    assert "misspelled_plugin.py" in result.stderr and "tganbench_register_strategy" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_strategy_name_clash_keeps_the_first_and_warns(tmp_path):
    clash = tmp_path / "clash_plugin.py"
    clash.write_text(
        "from tganbench import Strategy, hookimpl\n\n"
        "class Other(Strategy):\n    name = 'finetune'\n    description = 'impostor'\n\n"
        "@hookimpl\ndef tganbench_register_strategies(register):\n    register(Other)\n"
    )
    result = run_cli("list", "--plugin", str(clash))
    assert result.code == 0
    assert "already registered by 'tganbench.strategies.finetune'" in result.stderr
    assert "impostor" not in result.stdout


PAIR_AND_EXTRACTOR_PLUGIN = '''
from tganbench import hookimpl
from tganbench.data.embedded import ShapesPair
from tganbench.metrics.extractors import ExtractorSpec


@hookimpl
def tganbench_register_pairs(register):
    register(ShapesPair("tiny-rings", "disk", "ring", n_source=400, n_target_pool=300, n_reference=300))


@hookimpl
def tganbench_register_feature_extractors(register):
    register(ExtractorSpec(
        name="shapes-again", fidelity_name="tganbench-shapes", feature_layer="features", metric="FD",
        description="the shapes network under another name", module="tganbench.metrics.shapes_extractor",
    ))
'''


def test_a_plugin_can_add_a_pair_and_a_feature_extractor(tmp_path):
    plugin = tmp_path / "pair_plugin.py"
    plugin.write_text(PAIR_AND_EXTRACTOR_PLUGIN)
    listed = run_cli("list", "--plugin", str(plugin))
    assert "tiny-rings" in listed.stdout and "shapes-again" in listed.stdout
    out = tmp_path / "run"
    result = run_cli(
        "run", "--plugin", str(plugin), "--pair", "tiny-rings", "--feature-extractor", "shapes-again",
        "--strategies", "finetune", "--profile", "smoke", "--out", str(out),
    )
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert cells.loc[0, "pair"] == "tiny-rings" and cells.loc[0, "extractor"] == "shapes-again"


@pytest.fixture
def two_installed_plugins(tmp_path, monkeypatch):
    """Two entry-point plugins, 'alpha' and 'beta', each registering one strategy."""
    site = tmp_path / "site"
    for name in ("alpha", "beta"):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / f"plugin_{name}.py").write_text(
            "from tganbench import Strategy, hookimpl\n\n"
            f"class S(Strategy):\n    name = 'from-{name}'\n    description = '{name}'\n\n"
            "@hookimpl\ndef tganbench_register_strategies(register):\n    register(S)\n"
        )
    install_fake_distribution(site, "two_plugins", {"alpha": "plugin_alpha", "beta": "plugin_beta"})
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("TGANBENCH_LOAD_PLUGINS")
    yield
    for name in ("plugin_alpha", "plugin_beta"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        (None, None, {"from-alpha", "from-beta"}),
        ("TGANBENCH_LOAD_PLUGINS", "beta", {"from-beta"}),
        ("TGANBENCH_LOAD_PLUGINS", "", set()),
        ("TGANBENCH_DISABLE_PLUGINS", "alpha", {"from-beta"}),
    ],
)
def test_environment_chooses_which_entry_points_load(two_installed_plugins, monkeypatch, variable, value, expected):
    if variable:
        monkeypatch.setenv(variable, value)
    registry = load_plugins()
    assert {name for name in registry.strategies if name.startswith("from-")} == expected
    assert "finetune" in registry.strategies  # built-ins always load


def _plugin(folder, name, source):
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def _one_strategy_plugin(folder, module, strategy, description, marker="@hookimpl"):
    """A plugin file registering one strategy, its hook decorated with ``marker``; returns its path."""
    return _plugin(folder, module, f'''
        from tganbench import Strategy, hookimpl

        class One(Strategy):
            name = "{strategy}"
            description = "{description}"

        {marker}
        def tganbench_register_strategies(register):
            register(One)
        ''')


def test_a_tryfirst_implementation_is_called_first_and_wins_a_name_clash(tmp_path):
    early = _one_strategy_plugin(tmp_path, "early_plugin", "finetune", "a replacement fine-tuning",
                                 "@hookimpl(tryfirst=True)")
    late = _one_strategy_plugin(tmp_path, "late_plugin", "late", "called after the built-ins",
                                "@hookimpl(trylast=True)")
    registry = load_plugins([late, early])
    assert list(registry.strategies) == ["finetune", "scratch", "freeze-d", "freeze-g", "batchstat", "ewc", "adafm", "cdc", "dcl", "minegan", "late"]
    assert registry.strategies["finetune"].plugin == early
    assert registry.strategies["finetune"].obj.description == "a replacement fine-tuning"
    assert any("already registered by '" + early in warning for warning in registry.warnings)


WRAPPERS = {
    "wrapper=True": """
        @hookimpl(wrapper=True)
        def tganbench_register_strategies(register):
            register(Before)
            result = yield
            register(After)
            return result
        """,
    "hookwrapper=True": """
        @hookimpl(hookwrapper=True)
        def tganbench_register_strategies(register):
            register(Before)
            yield
            register(After)
        """,
}


@pytest.mark.parametrize("style", WRAPPERS)
def test_a_wrapper_implementation_registers_around_the_others(tmp_path, style):
    wrapper = _plugin(tmp_path, "wrapper_plugin", '''
        from tganbench import Strategy, hookimpl

        class Before(Strategy):
            name = "before-the-others"
            description = "registered before the yield"

        class After(Strategy):
            name = "after-the-others"
            description = "registered after the yield"
        ''' + WRAPPERS[style])
    registry = load_plugins([wrapper])
    assert list(registry.strategies) == [
        "before-the-others", "scratch", "finetune", "freeze-d", "freeze-g", "batchstat", "ewc", "adafm", "cdc", "dcl", "minegan",
        "after-the-others"
    ]
    assert registry.strategies["after-the-others"].plugin == wrapper


def test_a_crash_in_a_registration_hook_names_its_plugin_and_costs_the_others_nothing(tmp_path):
    crashing = _plugin(tmp_path, "crashing_plugin", '''
        from tganbench import Strategy, hookimpl

        class Half(Strategy):
            name = "half-registered"
            description = "registered just before the crash"

        def helper(register):
            register(Half)
            raise RuntimeError("the plugin broke")

        @hookimpl(tryfirst=True)
        def tganbench_register_strategies(register):
            helper(register)
        ''')
    fine = _one_strategy_plugin(tmp_path, "fine_plugin", "fine", "registered after the crash")
    registry = load_plugins([crashing, fine])
    assert f"plugin '{crashing}' failed in tganbench_register_strategies: RuntimeError: the plugin broke" \
        in registry.warnings
    assert "half-registered" not in registry.strategies
    assert registry.strategies["fine"].plugin == fine
    assert list(registry.strategies)[:10] == ["scratch", "finetune", "freeze-d", "freeze-g", "batchstat", "ewc", "adafm", "cdc", "dcl", "minegan"]


NEW_KINDS_PLUGIN = '''
from types import SimpleNamespace

from tganbench import hookimpl


@hookimpl
def tganbench_register_architectures(register):
    register(SimpleNamespace(name="tiny-two-stage", description="a stand-in architecture"))


@hookimpl
def tganbench_register_metrics(register):
    register(SimpleNamespace(name="mean-brightness", description="a stand-in metric"))


@hookimpl
def tganbench_register_augmentations(register):
    register(SimpleNamespace(name="flip", description="a stand-in augmentation"))
'''


@pytest.mark.parametrize(
    "field, name", [("architectures", "tiny-two-stage"), ("metrics", "mean-brightness"), ("augmentations", "flip")]
)
def test_a_plugin_registers_architectures_metrics_and_augmentations(tmp_path, field, name):
    plugin = _plugin(tmp_path, "new_kinds_plugin", NEW_KINDS_PLUGIN)
    entry = getattr(load_plugins([plugin]), field)[name]
    assert entry.plugin == plugin and entry.obj.description.startswith("a stand-in")


RAISING_OBSERVERS = '''
from tganbench import hookimpl


@hookimpl
def tganbench_evaluated(row):
    raise RuntimeError("dashboard is down")


@hookimpl
def tganbench_cell_finished(row):
    raise RuntimeError("logger is down")


@hookimpl
def tganbench_run_finished(out_dir, cells):
    raise RuntimeError("uploader is down")
'''


def test_an_observer_that_raises_is_a_warning_and_the_run_goes_on(tmp_path):
    plugin = _plugin(tmp_path, "raising_observers", RAISING_OBSERVERS)
    out = tmp_path / "run"
    result = run_cli("run", "--plugin", plugin, "--strategies", "finetune", "--profile", "smoke", "--out", str(out))
    assert result.code == 0, result.stderr
    assert pd.read_csv(out / "cells.csv").loc[0, "status"] == "ok"
    errors = (out / "errors.log").read_text()
    for hook, message, calls in [("tganbench_evaluated", "dashboard is down", 3),  # steps 0, 10 and 20
                                 ("tganbench_cell_finished", "logger is down", 1),
                                 ("tganbench_run_finished", "uploader is down", 1)]:
        warning = f"plugin '{plugin}': {hook} hook raised RuntimeError: {message}"
        assert result.stderr.splitlines().count(f"tganbench: warning: {warning} (see errors.log)") == calls
        assert errors.count(warning) == calls
