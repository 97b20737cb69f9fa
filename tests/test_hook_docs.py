"""The plugin contract is documented and tested: every hookspec has a docstring, a README section and a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tganbench import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("tganbench_")]


def test_there_are_hooks():
    assert len(HOOKS) >= 6


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_docstring_says_when_and_what_returns(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert "called" in doc.lower(), f"{name}: say when it is called"
    assert "return" in doc.lower(), f"{name}: say what a return value means"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_has_a_readme_section(name):
    readme = (ROOT / "README.md").read_text()
    assert f"#### `{name}(" in readme, f"README.md needs a '#### `{name}(...)`' section"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_has_a_test_implementing_it(name):
    """Some test other than this file defines an implementation of the hook and runs it."""
    sources = [p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name]
    assert any(f"def {name}(" in source for source in sources), f"no test implements {name}"
