"""Nodes declared as data: one declaration per input, turned into ComfyUI's classic (V1) ``INPUT_TYPES``.

Why V1 underneath: classic classes import without ComfyUI (CI has none), load in every ComfyUI
0.3.x, and keep saved workflows' node ids and widget positions exactly (docs/ARCHITECTURE.md says
why we did not move to the V3 ``comfy_api`` schema). Why data on top: written by hand, every node
repeated its id twice, its hidden input in two shapes, a tooltip was easy to forget, and each node
file carried an ``INPUT_TYPES`` method of plumbing. Now a node file holds its work.

- ``@node(id, display name, ..., inputs={...}, optional={...})`` is the one registration of a node:
  it sets ``CATEGORY``, ``DESCRIPTION`` (the class docstring), ``FUNCTION``, ``RETURN_TYPES``/``RETURN_NAMES``,
  ``OUTPUT_NODE``, the id and name that ``mappings`` turns into ``NODE_CLASS_MAPPINGS``/
  ``NODE_DISPLAY_NAME_MAPPINGS``, keeps the declaration as ``cls.INPUTS`` and generates
  ``INPUT_TYPES`` from it, with the hidden ``unique_id`` every node receives (ComfyUI's progress
  bar and previews are addressed by it). Input order is the declaration's: saved workflows store
  widget values by position.
- Input builders (``integer``, ``number``, ``text``, ``boolean``, ``choice``, ``socket``) take the
  tooltip as a required argument and return an ``Input``. A combo's choices (and its default) may
  be a function, called each time ComfyUI asks for the node's inputs (the files in a folder).
- Socket inputs are checked against ``_sockets.py`` on every run, from the declaration.
- Every input is checked before work: ``@node`` sets ``VALIDATE_INPUTS`` to ``_checks.Validation``
  (finite FLOATs, text sizes and formats, socket types, then the node's own check), so ComfyUI refuses
  bad values with HTTP 400 before they reach its queue; errors show folders relative to ComfyUI's.

Example::

    @node("LF_DatasetSubset", "LF Dataset Subset", category="dataset", function="add",
          outputs=[("LF_SUBSETS", "subsets")],
          inputs={"repeats": integer("num_repeats; 0 = balance", 0, 0, 1000)})
    class DatasetSubset:
        '''Adds another concept ... (the node's help, shown as DESCRIPTION)'''

        def add(self, repeats: int, unique_id: str | None = None) -> tuple: ...

    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(DatasetSubset)
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import _comfy
from ._checks import Validation
from ._sockets import check_sockets

HIDDEN = {"unique_id": "UNIQUE_ID"}
RAW_METHOD = "__lf_original__"  # the undecorated node method, kept on the wrapper
NodeClass = TypeVar("NodeClass", bound=type)
Choices = Sequence[str] | Callable[[], Sequence[str]]
logger = logging.getLogger("lora_foundry")


@dataclass(frozen=True)
class Input:
    """One input as data: its ComfyUI type, its options (tooltip included), and for a combo its
    choices and default, either fixed or a function called when ComfyUI lists the node's inputs."""

    kind: str  # "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO" or a socket type ("LF_FRAMES", "MODEL" ...)
    options: Mapping[str, Any]
    choices: Choices | None = None
    default: str | Callable[[], str] | None = field(default=None)

    def listed(self) -> list[str]:
        """A combo's choices now."""
        return list(self.choices() if callable(self.choices) else self.choices or [])

    def default_value(self) -> Any:
        """The value a new node starts with (a combo without one starts on its first choice)."""
        if self.kind != "COMBO":
            return self.options.get("default")
        default = self.default() if callable(self.default) else self.default
        return default if default is not None else next(iter(self.listed()), None)

    def v1(self) -> tuple[Any, dict[str, Any]]:
        """The classic ``(TYPE, options)`` tuple; a combo's TYPE is its list of choices."""
        if self.kind != "COMBO":
            return (self.kind, dict(self.options))
        listed = self.listed()
        default = self.default() if callable(self.default) else self.default
        if default is not None and default not in listed:
            raise ValueError(f"default {default!r} is not among the choices {listed}")
        more = {"default": default} if default is not None else {}
        return (listed, {**more, **self.options})


@dataclass(frozen=True)
class Declared:
    """A node's inputs in declaration order: required, then optional (ComfyUI's sections)."""

    required: Mapping[str, Input]
    optional: Mapping[str, Input]

    def sections(self) -> dict[str, Mapping[str, Input]]:
        return {"required": self.required, "optional": self.optional}

    def input_types(self) -> dict[str, Any]:
        """The V1 ``INPUT_TYPES`` value, hidden ``unique_id`` included."""
        declared: dict[str, Any] = {"required": {name: spec.v1() for name, spec in self.required.items()}}
        if self.optional:
            declared["optional"] = {name: spec.v1() for name, spec in self.optional.items()}
        declared["hidden"] = dict(HIDDEN)
        return declared


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


def node(node_id: str, display_name: str, *, category: str, function: str,
         outputs: Sequence[tuple[str, str]] = (), output_node: bool = False,
         inputs: Mapping[str, Input] | None = None,
         optional: Mapping[str, Input] | None = None,
         description: str | None = None) -> Callable[[NodeClass], NodeClass]:
    """Register a node class: its id and display name (written once), category under "LoRA Foundry/",
    the method ComfyUI calls, its ``(type, name)`` outputs, and its ``inputs`` (required) and
    ``optional`` inputs, from which ``INPUT_TYPES`` is generated.

    The node's help (``DESCRIPTION``) is the class docstring folded to one line, so the text a user
    reads is the text a reader of the code reads. ``description=`` is only for help built from data
    (LF Build Captions lists its templates from the strategy table)."""
    if not node_id.startswith("LF_"):
        raise ValueError(f"node ids start with LF_: {node_id!r}")
    declared = None if inputs is None else _declared(node_id, inputs, optional or {})

    def register(cls: NodeClass) -> NodeClass:
        help_text = description if description is not None else _docstring(cls)
        if not help_text.strip():
            raise ValueError(f"{node_id} needs a description: give the class a docstring")
        cls.NODE_ID = node_id
        cls.DISPLAY_NAME = display_name
        cls.CATEGORY = f"{_comfy.CATEGORY}/{category}"
        cls.FUNCTION = function
        if declared is not None:
            cls.INPUTS = declared
            cls.INPUT_TYPES = classmethod(lambda _cls: declared.input_types())
        method = getattr(cls, function, None)
        if callable(method):
            # A node class that subclasses another node inherits its already-wrapped method: wrap the
            # original again, so each run logs once under this node's name and is checked once.
            original = getattr(method, RAW_METHOD, method)
            wrapped = _checked(cls, _one_line_per_run(display_name, original))
            setattr(wrapped, RAW_METHOD, original)
            setattr(cls, function, wrapped)
        cls.VALIDATE_INPUTS = Validation(cls, _own_validation(cls))
        cls.DESCRIPTION = help_text
        cls.RETURN_TYPES = tuple(kind for kind, _ in outputs)
        cls.RETURN_NAMES = tuple(name for _, name in outputs)
        if output_node:
            cls.OUTPUT_NODE = True
        return cls

    return register


def _docstring(cls: type) -> str:
    """The class's own docstring (never a parent node's) as one line, the way ComfyUI shows it."""
    return " ".join(inspect.cleandoc(cls.__dict__.get("__doc__") or "").split())


def _declared(node_id: str, required: Mapping[str, Input], optional: Mapping[str, Input]) -> Declared:
    for name, spec in {**required, **optional}.items():
        if not isinstance(spec, Input):
            raise TypeError(f"{node_id} input {name!r}: declare it with a builder (integer, choice, socket ...)")
    clash = set(required) & set(optional)
    if clash:
        raise ValueError(f"{node_id}: inputs both required and optional: {sorted(clash)}")
    return Declared(dict(required), dict(optional))


def _own_validation(cls: type) -> Callable[..., Any] | None:
    """The node's own ``VALIDATE_INPUTS`` function (not the one ``@node`` generated for a parent class)."""
    static = inspect.getattr_static(cls, "VALIDATE_INPUTS", None)
    if isinstance(static, Validation):
        return static.own
    return static.__func__ if isinstance(static, classmethod) else None


def _checked(cls: type, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` that first checks its socket inputs' Python types (``_sockets.py``): a workflow can
    give a socket a literal value, which ComfyUI passes through for custom types. Its errors reach
    every client of the server, so they show folders relative to ComfyUI's (``_comfy.shown_to_clients``)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _comfy.shown_to_clients():
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


def _options(tooltip: str, more: dict[str, Any]) -> dict[str, Any]:
    if not tooltip or not tooltip.strip():
        raise ValueError("every input needs a tooltip")
    return {**{k: v for k, v in more.items() if v is not None}, "tooltip": tooltip}


def socket(kind: str, tooltip: str, **more: Any) -> Input:
    """A connection-only input of type ``kind`` (``LF_FRAMES``, ``MODEL``, ``IMAGE`` ...)."""
    return Input(kind, _options(tooltip, more))


def integer(tooltip: str, default: int, min: int, max: int, step: int | None = None,  # noqa: A002
            **more: Any) -> Input:
    """An INT widget."""
    return Input("INT", _options(tooltip, {"default": default, "min": min, "max": max, "step": step, **more}))


def number(tooltip: str, default: float, min: float, max: float, step: float | None = None,  # noqa: A002
           **more: Any) -> Input:
    """A FLOAT widget."""
    return Input("FLOAT", _options(tooltip, {"default": default, "min": min, "max": max, "step": step, **more}))


def text(tooltip: str, default: str = "", multiline: bool = False, **more: Any) -> Input:
    """A STRING widget (one line, or a text box with ``multiline``)."""
    return Input("STRING", _options(tooltip, {"default": default, "multiline": multiline or None, **more}))


def boolean(tooltip: str, default: bool, **more: Any) -> Input:
    """A BOOLEAN toggle."""
    return Input("BOOLEAN", _options(tooltip, {"default": default, **more}))


def choice(choices: Iterable[str] | Callable[[], Sequence[str]], tooltip: str,
           default: str | Callable[[], str] | None = None, **more: Any) -> Input:
    """A combo box; ``default`` must be one of ``choices`` (the first when omitted). Either may be a
    function, called each time the node's inputs are listed (files in a folder)."""
    if callable(choices):
        return Input("COMBO", _options(tooltip, more), choices, default)
    listed = tuple(choices)
    if default is not None and not callable(default) and default not in listed:
        raise ValueError(f"default {default!r} is not among the choices {list(listed)}")
    return Input("COMBO", _options(tooltip, more), listed, default)
