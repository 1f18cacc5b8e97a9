"""Optional extras (``pyproject.toml`` ``[project.optional-dependencies]``): imported only where they
are used, and only through ``require_extra``, so a missing one always says the same thing, which
extra installs it, into which Python."""

from __future__ import annotations

import importlib
from types import ModuleType


def require_extra(module: str, extra: str, needed_for: str, package: str | None = None) -> ModuleType:
    """``module``, imported; or a RuntimeError saying that ``needed_for`` needs the ``extra`` and how
    to install it (``package``: its PyPI name when that differs from the module's)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise RuntimeError(f"{needed_for} needs {package or module}, which is an optional extra: run "
                           f"`pip install 'lora-foundry[{extra}]'` (or `pip install {package or module}`) "
                           "in ComfyUI's Python") from error
