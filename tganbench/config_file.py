"""``tganbench run --config FILE.toml``: a TOML file holding the same settings as the command line.

Keys are the ``run`` flags without their leading dashes, with ``_`` or ``-``
(``target_steps = 200``). Lists become comma-separated values
(``shots = [10, 100]``, ``strategies = ["freeze-d[layers=1]", "finetune"]``),
except ``plugin`` and ``executor_setup``, which may repeat; ``true`` turns a switch on. The file is
turned into command-line arguments placed *before* the ones typed, so a flag
on the command line overrides the file and both go through the same parsing
and validation. Relative paths are relative to the working directory, as on
the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tganbench.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPEATABLE = ("plugin", "executor-setup")


def config_file_arguments(path: str, flags: set[str], keep: set[str] | None = None) -> list[str]:
    """The command-line arguments equivalent to the TOML file at ``path``; ``flags`` are the known ``--flags``.

    With ``keep``, a known key whose flag is not in ``keep`` is left out (a
    command that shares the file but not that setting).
    """
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"config file {file} does not exist")
    try:
        settings = tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read config file {file}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"config file {file} is not valid TOML: {error}") from None
    arguments: list[str] = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if flag not in flags or flag == "--config":
            known = ", ".join(sorted(f[2:].replace("-", "_") for f in flags if f not in ("--config", "--help")))
            raise UsageError(f"unknown key '{key}' in config file {file} (known keys: {known})")
        if keep is None or flag in keep:
            arguments += _arguments(flag, value, file)
    return arguments


def _arguments(flag: str, value: Any, file: Path) -> list[str]:
    if isinstance(value, bool):
        return [flag] if value else []
    if isinstance(value, dict):
        raise UsageError(f"key '{flag[2:]}' in config file {file} must be a value or a list, not a table")
    if isinstance(value, list):
        if flag[2:] in REPEATABLE:
            return [part for item in value for part in (flag, str(item))]
        return [flag, ",".join(str(item) for item in value)]
    return [flag, str(value)]
