"""Every input checked before work, from its declaration: the ``VALIDATE_INPUTS`` ``@node`` generates.

ComfyUI validates a prompt before queueing it, but only partly: a NaN FLOAT passes its min/max check
(every comparison with NaN is false), so the prompt is queued, fails inside the node, and from then
on ``GET /api/history`` returns invalid JSON (a bare ``NaN``) to every client; a literal typed into a
socket input is passed through for most types; text inputs have no size limit. So for every node
``@node`` generates a ``VALIDATE_INPUTS`` that checks, from the declarations alone:

- FLOAT: a finite number within the declared min/max (NaN and inf refused);
- STRING: at most ``MAX_LINE_CHARS`` (one line) or ``MAX_TEXT_CHARS`` (a text box) characters, and
  what its declaration asks (``check="json"``/``"toml"``: parses, nesting and size bounded;
  ``"name"``: at most ``MAX_NAME_BYTES`` UTF-8 bytes; ``"path"``, a name with folders (``lora_name``):
  ``paths.text_problem``, the engine's caps; ``"colour"``: what ``parse_color`` reads);
- sockets (ours and ComfyUI's core types): the Python type their producers give (``_sockets.py``);
  a linked input is absent at validation and checked again when the node runs;
then calls the node's own ``VALIDATE_INPUTS``, if it has one. A refusal names the node and the input.

One bad value, one message: ComfyUI (``execution.validate_inputs``, 0.3.64 and 0.8.0) attaches a
*returned* refusal to every input the function was given, so a node given three inputs would list the
same refusal three times (LaMa's missing file once for ``model_name``, once for ``if_missing``). A
*raised* exception is caught by the caller and listed once. So a refusal is returned when ComfyUI
gave one input (its entry then names that input) and raised as ``InputRefused`` when it gave more.

ComfyUI skips its min/max and combo checks for an input that ``VALIDATE_INPUTS`` takes, so this one
takes only the FLOAT, STRING and socket inputs (plus the node's own), and checks FLOAT ranges itself.
INT and combo inputs keep ComfyUI's checks (an INT is converted with ``int()``, which refuses NaN).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

from ..lora_foundry.bounded import TextLimitError, check_text, parse_json, parse_toml
from ..lora_foundry.choices import choice_refusal, quoted
from ..lora_foundry.paths import MAX_PART_BYTES, text_problem
from ..lora_foundry.stages.layers.segment import parse_color
from . import _comfy
from ._sockets import PRODUCERS, check_for

MAX_LINE_CHARS = 4096
MAX_TEXT_CHARS = 256 << 10
MAX_NAME_BYTES = MAX_PART_BYTES  # a file name on most file systems (NAME_MAX), as paths caps it
CHECK_KEY = "lf_check"  # declaration option naming a text check (``text(..., check="json")``)
# The check a text input gets when its declaration names none, by the pack's input-name conventions.
CHECKS_BY_NAME = {"matrix_json": "json", "search_space_json": "json", "axes": "json", "prompts_toml": "toml",
                  "extra_options": "toml", "plain_color": "colour", "workspace": "name", "name": "name",
                  "output_name": "name", "dataset_name": "name", "dataset_path": "name", "trigger": "name",
                  "class_word": "name", "lora_name": "path", "prompts_file": "name"}


def _float_problem(value: Any, options: dict[str, Any]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {type(value).__name__}"
    if not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    low, high = options.get("min", -math.inf), options.get("max", math.inf)
    if not low <= value <= high:
        return f"must be between {low} and {high}, got {value!r}"
    return None


def _text_problem(value: Any, options: dict[str, Any]) -> str | None:
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    limit = options.get("max_length") or (MAX_TEXT_CHARS if options.get("multiline") else MAX_LINE_CHARS)
    if len(value) > limit:
        return f"is {len(value)} characters long; the limit is {limit}"
    check = options.get(CHECK_KEY)
    try:
        if check == "json" and value.strip():
            parse_json(value, "the text", limit)
        elif check == "toml" and value.strip():
            parse_toml(value, "the text", limit)
        elif check == "nested":
            check_text(value, "the text", limit)
    except (TextLimitError, ValueError) as error:
        return str(error).replace("the text ", "", 1)
    if check == "path":  # a name with folders (a LoRA in a subfolder): the engine's byte caps, not one name's
        return text_problem(value)
    size = len(value.encode("utf-8", "replace")) if check == "name" else 0
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes in UTF-8; a name may have {MAX_NAME_BYTES}"
    if check == "colour":
        try:
            parse_color(value)
        except ValueError as error:
            return str(error).replace("colour ", "", 1)
    return None


def input_problem(kind: Any, options: dict[str, Any], value: Any) -> str | None:
    """What is wrong with ``value`` for an input declared as ``(kind, options)``, or None."""
    if value is None:
        return None
    if kind == "FLOAT":
        return _float_problem(value, options)
    if kind == "STRING":
        return _text_problem(value, options)
    check = check_for(kind) if isinstance(kind, str) else None
    if check is not None and not check(value):
        return (f"must be connected to {PRODUCERS.get(kind, f'an {kind} output')}; got {type(value).__name__} "
                f"{quoted(value, 60)} (a value typed into the workflow is not accepted for this input)")
    return None


def each_value(cls: type, value: Any) -> list[Any]:
    """The values to check in one input. ComfyUI gives an ``INPUT_IS_LIST`` node's ``VALIDATE_INPUTS``
    every input as a list (``execution.get_input_data``, 0.3.64 and 0.8.0: a widget's value as ``[v]``,
    a linked input, not run yet, as ``(None,)``), as it gives them to the node's function."""
    if getattr(cls, "INPUT_IS_LIST", False) and isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _declared(cls: type) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, kind, options) per input: from the ``@node`` declaration (no folder is listed to find
    out), else from a hand-written ``INPUT_TYPES``."""
    declared = getattr(cls, "INPUTS", None)
    if declared is not None:
        return [(name, spec.kind, dict(spec.options)) for section in declared.sections().values()
                for name, spec in section.items()]
    listed = cls.INPUT_TYPES()
    return [(name, spec[0], dict(spec[1]) if len(spec) > 1 and spec[1] else {})
            for section in ("required", "optional") for name, spec in listed.get(section, {}).items()]


def checked_inputs(cls: type) -> dict[str, tuple[Any, dict[str, Any]]]:
    """The inputs the generated ``VALIDATE_INPUTS`` takes: FLOAT, STRING and checked sockets."""
    found = {}
    for name, kind, options in _declared(cls):
        if kind == "STRING" and name in CHECKS_BY_NAME:
            options.setdefault(CHECK_KEY, CHECKS_BY_NAME[name])
        if kind in ("FLOAT", "STRING") or (isinstance(kind, str) and check_for(kind) is not None):
            found[name] = (kind, options)
    return found


def _fixed_choice_problem(cls: type, name: str, value: Any) -> str | None:
    """ComfyUI skips the combo check of an input ``VALIDATE_INPUTS`` takes: a node's own function
    taking a fixed combo (LaMa's ``if_missing``) would let any value through. A combo listed from a
    folder is left to the node's own check, which says where the missing file goes."""
    declared = getattr(cls, "INPUTS", None)
    sections = declared.sections().values() if declared is not None else ()
    spec = next((section[name] for section in sections if name in section), None)
    if spec is None or spec.kind != "COMBO" or callable(spec.choices) or value is None:
        return None
    return choice_refusal(value, spec.choices, f"input '{name}'")


class InputRefused(ValueError):
    """A refusal of a ``VALIDATE_INPUTS`` given several inputs (see the module docstring): ComfyUI lists
    it once, as "Exception when validating node", with this message, which names the node and input.
    ComfyUI sends clients the class's module as the exception type; under ComfyUI a custom node's module
    name is its folder's path, so the class says only the pack's name."""

    __module__ = "lora_foundry"


def refusal(validate: Callable[..., Any], **values: Any) -> str | None:
    """What ``validate`` (a ``VALIDATE_INPUTS``) refuses for ``values``, returned or raised, or None."""
    try:
        answer = validate(**values)
    except InputRefused as error:
        return str(error)
    return None if answer is True else str(answer)


class Validation:
    """The ``VALIDATE_INPUTS`` ``@node`` puts on ``cls``: the declared checks, then the node's own
    function (``own``). A descriptor, so the inputs it takes are read from the declaration when ComfyUI
    first asks (at validation, never at import), and once: ComfyUI reads the signature and then calls
    the function, each a fresh attribute lookup, and every validation of every prompt asks again, while
    a node's declared inputs never change."""

    def __init__(self, cls: type, own: Callable[..., Any] | None) -> None:
        self.cls, self.own = cls, own

    @functools.cached_property
    def checked(self) -> dict[str, tuple[Any, dict[str, Any]]]:
        return checked_inputs(self.cls)

    def __get__(self, instance: Any, owner: type) -> _BoundValidation:
        # a class inheriting this without registering itself may declare other inputs: listed afresh
        return _BoundValidation(owner, self.own, self.checked if owner is self.cls else checked_inputs(owner))


class _BoundValidation:
    """``VALIDATE_INPUTS`` of one class. ComfyUI reads the argument names with getfullargspec, which
    honours ``__signature__``, and passes exactly those inputs (leaving their min/max and choices to us)."""

    def __init__(self, cls: type, own: Callable[..., Any] | None,
                 checked: dict[str, tuple[Any, dict[str, Any]]]) -> None:
        self.cls, self.own, self.checked = cls, own, checked

    def _own_names(self) -> list[str]:
        return list(inspect.signature(self.own).parameters)[1:] if self.own is not None else []

    @property
    def __signature__(self) -> inspect.Signature:
        names = list(dict.fromkeys([*self.checked, *self._own_names()]))
        return inspect.Signature([inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
                                  for name in names])

    def __call__(self, **values: Any) -> bool | str:
        answer = self._answer(values)
        if answer is True or len(values) <= 1:
            return answer
        raise InputRefused(answer if isinstance(answer, str) else f"{self._shown()}: refused")

    def _shown(self) -> str:
        return getattr(self.cls, "DISPLAY_NAME", self.cls.__name__)

    def _answer(self, values: dict[str, Any]) -> bool | str:
        shown = self._shown()
        for name, (kind, options) in self.checked.items():
            problems = (input_problem(kind, options, one) for one in each_value(self.cls, values.get(name)))
            problem = next(filter(None, problems), None)
            if problem is not None:
                return f"{shown}: input '{name}' {problem}"
        if self.own is None:
            return True
        own_names = self._own_names()
        for name in own_names:
            problem = _fixed_choice_problem(self.cls, name, values.get(name))
            if problem is not None:
                return f"{shown}: {problem}"
        with _comfy.shown_to_clients():
            answer = self.own(self.cls, **{k: v for k, v in values.items() if k in own_names})
        return _comfy.shown_paths(answer) if isinstance(answer, str) else answer
