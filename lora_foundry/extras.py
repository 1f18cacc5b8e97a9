"""Optional extras (``pyproject.toml`` ``[project.optional-dependencies]``): imported only where they
are used, inside ``optional_extra``, so a missing one always says the same thing: what needs it,
which extra installs it, and into which Python. The import itself stays a plain ``import`` at the
call site (the code rules read imports statically)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def optional_extra(package: str, extra: str, needed_for: str) -> Iterator[None]:
    """Turns an ImportError inside the block into a RuntimeError saying that ``needed_for`` needs
    ``package`` (its PyPI name) and how to install the ``extra``."""
    try:
        yield
    except ImportError as error:
        raise RuntimeError(f"{needed_for} needs {package}, which is an optional extra: run "
                           f"`pip install 'lora-foundry[{extra}]'` (or `pip install {package}`) "
                           "in ComfyUI's Python") from error
