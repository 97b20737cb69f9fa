"""Components chosen on the command line as ``NAME[key=value,...]``: strategies, augmentations, architectures.

One base class holds a component's name, description and parameter defaults,
and one parser turns ``--strategies``, ``--augment`` and ``--architecture``
values into validated instances, so all three read and fail the same way.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

from tganbench.errors import UsageError

SPEC_PATTERN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[(.*)\])?$")

C = TypeVar("C", bound="Component")


class Component:
    """A named, parameterised part of a run; subclasses say what it does.

    Class attributes:
        name: what users type (``NAME[k=v]``); unique among its kind across plugins.
        description: one line for ``tganbench list``.
        parameters: defaults of the parameters users may override; a value's type
            is the type a command-line value is converted to.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {}

    def __init__(self, **overrides: Any) -> None:
        unknown = sorted(set(overrides) - set(self.parameters))
        if unknown:
            known = ", ".join(sorted(self.parameters)) or "none"
            raise ValueError(f"unknown parameter '{unknown[0]}' (parameters: {known})")
        self.overrides = dict(overrides)
        self.params: dict[str, Any] = {**self.parameters, **overrides}

    def fresh_copy(self: C) -> C:
        """A new instance with the same parameters (components may keep per-cell state)."""
        return type(self)(**self.overrides)

    @property
    def label(self) -> str:
        """The component as a user would type it, with only the non-default parameters."""
        changed = [f"{k}={v}" for k, v in self.params.items() if v != self.parameters[k]]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name

    def __getstate__(self) -> dict[str, Any]:
        # Pickled as its parameters (a cell description travels to other processes); per-cell state stays.
        return {"overrides": self.overrides}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["overrides"])


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on ``separator`` outside brackets: ``a[x=1,y=2],b`` -> ``a[x=1,y=2]``, ``b``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts]


def _convert(kind: str, name: str, key: str, raw: str, default: Any) -> Any:
    """Convert a command-line value to the type of the parameter's default."""
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        return type(default)(raw)
    except ValueError:
        raise UsageError(f"{kind} '{name}': parameter '{key}' expects {type(default).__name__}, got '{raw}'") from None


def _assignments(kind: str, name: str, body: str, defaults: dict[str, Any]) -> dict[str, str]:
    """``k=v,k2=v2`` -> raw values; a piece without ``=`` continues the previous text value (``policy=a,b``)."""
    raw: dict[str, str] = {}
    last = None
    for piece in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = (part.strip() for part in piece.partition("="))
        if not sep and last is not None and isinstance(defaults.get(last), str):
            raw[last] += "," + piece
            continue
        if not sep or not key:
            raise UsageError(f"{kind} '{name}': malformed parameter '{piece}', expected key=value")
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise UsageError(f"{kind} '{name}': unknown parameter '{key}' (parameters: {known})")
        raw[key], last = value, key
    return raw


def parse_component(item: str, available: dict[str, type[C]], kind: str) -> C:
    """One ``NAME`` or ``NAME[k=v,...]`` -> a validated instance; every problem is a UsageError naming it."""
    match = SPEC_PATTERN.match(item)
    if not match:
        raise UsageError(f"malformed {kind} '{item}': expected NAME or NAME[key=value,...]")
    name, body = match.group(1), match.group(2)
    if name not in available:
        raise UsageError(f"unknown {kind} '{name}' (available: {', '.join(available) or 'none'})")
    cls = available[name]
    raw = _assignments(kind, name, body or "", cls.parameters)
    overrides = {key: _convert(kind, name, key, value, cls.parameters[key]) for key, value in raw.items()}
    try:
        return cls(**overrides)
    except ValueError as error:
        raise UsageError(f"{kind} '{name}': {error}") from None


def parse_components(text: str, available: dict[str, type[C]], kind: str) -> list[C]:
    """Comma-separated ``NAME[k=v]`` items, or ``all``: distinct validated instances in the given order."""
    chosen: list[C] = []
    for item in split_top_level(text):
        if item == "all":
            chosen.extend(cls() for cls in available.values())
        else:
            chosen.append(parse_component(item, available, kind))
    unique: dict[str, C] = {}
    for component in chosen:
        unique.setdefault(component.label, component)
    return list(unique.values())
