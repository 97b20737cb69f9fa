"""The plugin contract is documented and tested: every hookspec has a docstring, a docs section and a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tganbench import hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_PAGE = ROOT / "docs" / "plugins.md"
HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("tganbench_")]


def test_there_are_hooks():
    assert len(HOOKS) >= 9


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_docstring_says_when_and_what_returns(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "called" in doc.lower(), f"{name}: say when it is called"
    assert "return" in doc.lower(), f"{name}: say what a return value means"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_documents_and_types_every_argument(name):
    signature = inspect.signature(getattr(hookspecs, name))
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    for parameter in signature.parameters.values():
        assert f":param {parameter.name}:" in doc, f"{name}: add a ':param {parameter.name}:' line"
        assert parameter.annotation is not inspect.Parameter.empty, f"{name}: type the argument {parameter.name}"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_has_a_docs_section_with_its_full_signature(name):
    arguments = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    headings = re.findall(rf"^#### `({name}\(.*?\))`$", PLUGINS_PAGE.read_text(), flags=re.M)
    assert headings == [f"{name}({arguments})"], f"docs/plugins.md needs one '#### `{name}({arguments})`' section"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_has_a_test_implementing_it(name):
    """Some test other than this file defines an implementation of the hook and runs it."""
    sources = [p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name]
    assert any(f"def {name}(" in source for source in sources), f"no test implements {name}"
