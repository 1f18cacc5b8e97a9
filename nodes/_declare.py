"""Declaring nodes in a few lines that still come out as ComfyUI's classic (V1) declarations.

Why V1 underneath: classic classes import without ComfyUI (CI has none), load in every ComfyUI
0.3.x, and keep saved workflows' node ids and widget positions exactly (docs/ARCHITECTURE.md says
why we did not move to the V3 ``comfy_api`` schema). Why a helper on top: written by hand, every
node repeated its id twice, its hidden input in two shapes, and a tooltip was easy to forget.

- ``@node(id, display name, ...)`` is the one registration of a node: it sets ``CATEGORY``,
  ``DESCRIPTION``, ``FUNCTION``, ``RETURN_TYPES``/``RETURN_NAMES``, ``OUTPUT_NODE`` and the id and
  name that ``mappings`` turns into ``NODE_CLASS_MAPPINGS``/``NODE_DISPLAY_NAME_MAPPINGS``.
- Input builders (``integer``, ``number``, ``text``, ``boolean``, ``choice``, ``socket``) take the
  tooltip as a required argument and return the V1 ``(type, options)`` tuple.
- ``inputs(required, optional)`` adds the hidden ``unique_id`` every node receives (ComfyUI's
  progress bar and previews are addressed by it).

Example::

    @node("LF_DatasetSubset", "LF Dataset Subset", category="dataset", function="add",
          outputs=[("LF_SUBSETS", "subsets")], description="Adds another concept ...")
    class DatasetSubset:
        @classmethod
        def INPUT_TYPES(cls):
            return inputs({"repeats": integer("num_repeats; 0 = balance", 0, 0, 1000)})

    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(DatasetSubset)
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from . import _comfy
from ._sockets import check_sockets

HIDDEN = {"unique_id": "UNIQUE_ID"}
RAW_METHOD = "__lf_original__"  # the undecorated node method, kept on the wrapper
NodeClass = TypeVar("NodeClass", bound=type)
logger = logging.getLogger("lora_foundry")


def _one_line_per_run(display_name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """The node's method, logging one line when it finishes: ComfyUI's console shows each stage once
    (and how long it took), never a line per frame. Logged on ``lora_foundry`` at INFO, which
    ComfyUI prints and the CLI (no handler) does not."""
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        result = method(*args, **kwargs)
        logger.info("LoRA Foundry: %s done in %.1f s", display_name, time.monotonic() - started)
        return result

    return run


def node(node_id: str, display_name: str, *, category: str, function: str, description: str,
         outputs: Sequence[tuple[str, str]] = (), output_node: bool = False) -> Callable[[NodeClass], NodeClass]:
    """Register a node class: its id and display name (written once), category under "LoRA Foundry/",
    the method ComfyUI calls, a description for the node's help, and its ``(type, name)`` outputs."""
    if not node_id.startswith("LF_"):
        raise ValueError(f"node ids start with LF_: {node_id!r}")
    if not description.strip():
        raise ValueError(f"{node_id} needs a description")

    def register(cls: NodeClass) -> NodeClass:
        cls.NODE_ID = node_id
        cls.DISPLAY_NAME = display_name
        cls.CATEGORY = f"{_comfy.CATEGORY}/{category}"
        cls.FUNCTION = function
        method = getattr(cls, function, None)
        if callable(method):
            # A node class that subclasses another node inherits its already-wrapped method: wrap the
            # original again, so each run logs once under this node's name and is checked once.
            original = getattr(method, RAW_METHOD, method)
            wrapped = _checked(cls, _one_line_per_run(display_name, original))
            setattr(wrapped, RAW_METHOD, original)
            setattr(cls, function, wrapped)
        cls.DESCRIPTION = description
        cls.RETURN_TYPES = tuple(kind for kind, _ in outputs)
        cls.RETURN_NAMES = tuple(name for _, name in outputs)
        if output_node:
            cls.OUTPUT_NODE = True
        return cls

    return register


def _checked(cls: type, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` that first checks its socket inputs' Python types (``_sockets.py``): a workflow can
    give a socket a literal value, which ComfyUI passes through for custom types."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        check_sockets(cls, method, (self, *args), kwargs)
        return method(self, *args, **kwargs)

    return call


def mappings(*classes: type) -> tuple[dict[str, type], dict[str, str]]:
    """``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS`` of classes registered with ``node``."""
    found: dict[str, type] = {}
    for cls in classes:
        node_id = getattr(cls, "NODE_ID", None)
        if node_id is None:
            raise ValueError(f"{cls.__name__} is not registered with @node")
        if node_id in found:
            raise ValueError(f"node id {node_id} is registered twice")
        found[node_id] = cls
    return found, {node_id: cls.DISPLAY_NAME for node_id, cls in found.items()}


def inputs(required: dict[str, tuple], optional: dict[str, tuple] | None = None) -> dict[str, Any]:
    """A V1 ``INPUT_TYPES`` value: required and optional inputs plus the hidden ``unique_id``."""
    declared: dict[str, Any] = {"required": dict(required)}
    if optional:
        declared["optional"] = dict(optional)
    declared["hidden"] = dict(HIDDEN)
    return declared


def _options(tooltip: str, more: dict[str, Any]) -> dict[str, Any]:
    if not tooltip or not tooltip.strip():
        raise ValueError("every input needs a tooltip")
    return {**{k: v for k, v in more.items() if v is not None}, "tooltip": tooltip}


def socket(kind: str, tooltip: str, **more: Any) -> tuple[str, dict[str, Any]]:
    """A connection-only input of type ``kind`` (``LF_FRAMES``, ``MODEL``, ``IMAGE`` ...)."""
    return (kind, _options(tooltip, more))


def integer(tooltip: str, default: int, min: int, max: int, step: int | None = None,  # noqa: A002
            **more: Any) -> tuple[str, dict[str, Any]]:
    """An INT widget."""
    return ("INT", _options(tooltip, {"default": default, "min": min, "max": max, "step": step, **more}))


def number(tooltip: str, default: float, min: float, max: float, step: float | None = None,  # noqa: A002
           **more: Any) -> tuple[str, dict[str, Any]]:
    """A FLOAT widget."""
    return ("FLOAT", _options(tooltip, {"default": default, "min": min, "max": max, "step": step, **more}))


def text(tooltip: str, default: str = "", multiline: bool = False, **more: Any) -> tuple[str, dict[str, Any]]:
    """A STRING widget (one line, or a text box with ``multiline``)."""
    return ("STRING", _options(tooltip, {"default": default, "multiline": multiline or None, **more}))


def boolean(tooltip: str, default: bool, **more: Any) -> tuple[str, dict[str, Any]]:
    """A BOOLEAN toggle."""
    return ("BOOLEAN", _options(tooltip, {"default": default, **more}))


def choice(choices: Iterable[str], tooltip: str, default: str | None = None,
           **more: Any) -> tuple[list[str], dict[str, Any]]:
    """A combo box; ``default`` must be one of ``choices`` (the first when omitted)."""
    listed = list(choices)
    if default is not None and default not in listed:
        raise ValueError(f"default {default!r} is not among the choices {listed}")
    return (listed, _options(tooltip, {"default": default, **more}))
