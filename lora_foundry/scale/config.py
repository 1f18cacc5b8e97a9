"""Which runner a stage uses: the operator's Ray cluster when one is configured, else this machine.

The cluster address comes from the command line (``--ray ADDRESS``), the ``LF_RAY_ADDRESS``
environment variable, or ``lora_foundry.json`` (``{"ray_address": "..."}``) in ComfyUI's user
folder, in that order; never from a workflow, which is untrusted input and must not pick where
code runs. Ray is imported only when an address is found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_ADDRESS = "LF_RAY_ADDRESS"
CONFIG_NAME = "lora_foundry.json"
CONFIG_KEY = "ray_address"


def ray_address(explicit: str | None = None, user_dir: Path | None = None,
                environ: Mapping[str, str] | None = None) -> str | None:
    """The configured cluster address, or None to run on this machine."""
    if explicit:
        return explicit
    environ = os.environ if environ is None else environ
    if environ.get(ENV_ADDRESS):
        return environ[ENV_ADDRESS]
    if user_dir is not None:
        config = Path(user_dir) / CONFIG_NAME
        if config.is_file():
            try:
                value = json.loads(config.read_text(encoding="utf-8")).get(CONFIG_KEY)
            except (ValueError, AttributeError) as error:
                raise ValueError(f"{config} is not a JSON object: {error}") from error
            return str(value) if value else None
    return None


def ray_runner(address: str | None) -> Any:
    """A connected ``RayRunner`` for ``address``, or None when no cluster is configured."""
    if not address:
        return None
    from .ray_runner import RayRunner

    return RayRunner(address)
