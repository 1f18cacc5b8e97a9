"""Every node the pack registers is a declaration ComfyUI and its front end accept as written.

ComfyUI is not importable in CI, so the rules are written down here, each with the place in
ComfyUI 0.3.64 / comfyui-frontend-package 1.27.10 it comes from. A declaration error shows up to a
user as a node that will not load, a widget clamped to the wrong range, a default the server then
rejects, a missing tooltip, or a cache that never hits (an ``IS_CHANGED`` that raises).

The checker is a plain function so the tests at the bottom can prove it catches each defect.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import pkgutil
from typing import Any

# Option keys, per input type. Sources:
# - comfy/comfy_types/node_typing.py, ``InputTypeOptions`` (the V1 TypedDict);
# - comfy_api/latest/_io.py, the ``as_dict`` of ``Input``/``WidgetInput``/``Boolean``/``Int``/
#   ``Float``/``String``/``Combo``/``MultiCombo`` (what ComfyUI itself emits in /object_info);
# - the front end's zod schema ``zBaseInputOptions`` ... ``zComboInputOptions`` (src/schemas/
#   nodeDefSchema.ts, bundled in comfyui_frontend_package/static/assets/index-*.js).
BASE_OPTION_KEYS = frozenset({
    "default", "defaultInput", "forceInput", "tooltip", "hidden", "advanced", "widgetType",
    "rawLink", "lazy", "socketless", "display_name",
})
OPTION_KEYS_BY_TYPE = {
    "INT": BASE_OPTION_KEYS | {"min", "max", "step", "display", "control_after_generate"},
    "FLOAT": BASE_OPTION_KEYS | {"min", "max", "step", "round", "display"},
    "BOOLEAN": BASE_OPTION_KEYS | {"label_on", "label_off"},
    "STRING": BASE_OPTION_KEYS | {"multiline", "dynamicPrompts", "defaultVal", "placeholder"},
    "COMBO": BASE_OPTION_KEYS | {
        "control_after_generate", "image_upload", "image_folder", "allow_batch", "video_upload",
        "animated_image_upload", "audio_upload", "file_upload", "options", "remote",
        "multi_select", "multiselect", "placeholder", "chip",
    },
}
WIDGET_TYPES = frozenset(OPTION_KEYS_BY_TYPE)
# Hidden input values execution.py (``get_input_data``) fills in.
HIDDEN_VALUES = frozenset({
    "UNIQUE_ID", "PROMPT", "DYNPROMPT", "EXTRA_PNGINFO", "AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG",
})
# The front end's number display modes (zNumericInputOptions.display).
NUMBER_DISPLAYS = frozenset({"number", "slider", "knob"})
SPINE_NODES = (
    "LF_LoadVideoFrames", "LF_LoadImageFolder", "LF_FilterFrames", "LF_FramesToImages",
    "LF_ImagesToFrames", "LF_PreviewFrames", "LF_WriteKohyaDataset",
)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _spec_type(spec: tuple) -> str | None:
    """'COMBO' for a list of choices, the type name for a str, None when malformed."""
    kind = spec[0]
    if isinstance(kind, list):
        return "COMBO"
    return kind if isinstance(kind, str) and kind else None


def _numeric_problems(name: str, kind: str, opts: dict) -> list[str]:
    problems = []
    for key in ("min", "max", "step", "default"):
        if key in opts and not _is_number(opts[key]):
            problems.append(f"{name}: {key}={opts[key]!r} is not a number")
    if problems:
        return problems
    if kind == "INT" and "default" in opts and not isinstance(opts["default"], int):
        problems.append(f"{name}: INT default {opts['default']!r} is not an int")
    # The front end clamps a number widget without min/max to 0..2048 (useIntWidget:
    # ``min: inputSpec.min ?? 0, max: inputSpec.max ?? 2048``), so both must be declared.
    for key in ("min", "max", "default"):
        if key not in opts:
            problems.append(f"{name}: {kind} widget declares no {key}")
    if problems:
        return problems
    if not opts["min"] <= opts["default"] <= opts["max"]:
        problems.append(f"{name}: default {opts['default']} outside [{opts['min']}, {opts['max']}]")
    if "step" in opts and opts["step"] <= 0:
        problems.append(f"{name}: step {opts['step']} is not positive")
    if "display" in opts and opts["display"] not in NUMBER_DISPLAYS:
        problems.append(f"{name}: display {opts['display']!r} not in {sorted(NUMBER_DISPLAYS)}")
    return problems


def _widget_problems(name: str, kind: str, spec: tuple, opts: dict) -> list[str]:
    """Type-specific checks; ComfyUI's validate_inputs rejects a default that breaks them."""
    if kind in ("INT", "FLOAT"):
        return _numeric_problems(name, kind, opts)
    if kind == "BOOLEAN" and "default" in opts and not isinstance(opts["default"], bool):
        return [f"{name}: BOOLEAN default {opts['default']!r} is not a bool"]
    if kind == "STRING" and "default" in opts and not isinstance(opts["default"], str):
        return [f"{name}: STRING default {opts['default']!r} is not a str"]
    if kind == "COMBO":
        choices = spec[0] if isinstance(spec[0], list) else opts.get("options")
        if not isinstance(choices, list):
            return [f"{name}: combo has no list of choices"]
        if not all(isinstance(c, (str, int, float)) for c in choices):
            return [f"{name}: combo choices must be str or numbers"]
        if "default" in opts and opts["default"] not in choices:
            return [f"{name}: combo default {opts['default']!r} not among {choices[:8]}"]
    return []


def input_spec_problems(name: str, spec: Any, section: str) -> list[str]:
    """Problems with one ``(TYPE,)`` / ``(TYPE, options)`` input declaration."""
    if not isinstance(spec, (tuple, list)) or len(spec) not in (1, 2):
        return [f"{name}: spec must be (TYPE,) or (TYPE, options), got {spec!r}"]
    kind = _spec_type(spec)
    if kind is None:
        return [f"{name}: TYPE must be a type name or a list of choices, got {spec[0]!r}"]
    opts = spec[1] if len(spec) == 2 else {}
    if not isinstance(opts, dict):
        return [f"{name}: options must be a dict, got {type(opts).__name__}"]
    problems = []
    allowed = OPTION_KEYS_BY_TYPE.get(kind, BASE_OPTION_KEYS)
    unknown = sorted(set(opts) - allowed)
    if unknown:
        problems.append(f"{name}: option keys {unknown} unknown to ComfyUI for type {kind}")
    tooltip = opts.get("tooltip")
    if section != "hidden" and not (isinstance(tooltip, str) and tooltip.strip()):
        problems.append(f"{name}: no tooltip")
    if kind in WIDGET_TYPES and not opts.get("forceInput"):
        problems += _widget_problems(name, kind, spec, opts)
    return problems


def _callable_problems(cls: type, attr: str, declared: dict[str, set[str]], static: bool) -> list[str]:
    """ComfyUI calls ``attr(**inputs)``: every declared name must be accepted, every parameter
    without a default must always be supplied (a required or hidden input)."""
    raw = inspect.getattr_static(cls, attr, None)
    if raw is None or not callable(getattr(cls, attr)):
        return [f"{attr} is not a method of the class"]
    if static and not isinstance(raw, (classmethod, staticmethod)):
        # execution.py calls getattr(class_def, "IS_CHANGED")(**inputs) on the class: a plain
        # method raises, ComfyUI logs a warning and treats the node as always changed.
        return [f"{attr} must be a classmethod or staticmethod (ComfyUI calls it on the class)"]
    params = list(inspect.signature(getattr(cls, attr)).parameters.values())
    if not isinstance(raw, (classmethod, staticmethod)):
        params = params[1:]  # self
    by_name = {p.name: p for p in params}
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    always = declared["required"] | declared["hidden"]
    problems = []
    for name in sorted(always | declared["optional"]):
        if name not in by_name and not takes_kwargs:
            problems.append(f"{attr}() does not accept input {name!r}")
    for p in params:
        no_default = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        if no_default and p.name not in always:
            problems.append(f"{attr}() parameter {p.name!r} has no default and is not always given")
    return problems


def _input_types_problems(cls: type) -> tuple[list[str], dict[str, set[str]]]:
    declared: dict[str, set[str]] = {"required": set(), "optional": set(), "hidden": set()}
    try:
        types = cls.INPUT_TYPES()
    except Exception as error:  # noqa: BLE001 - report, do not crash the whole check
        return [f"INPUT_TYPES() raised {error!r}"], declared
    if not isinstance(types, dict) or not isinstance(types.get("required"), dict):
        return ["INPUT_TYPES() must return a dict with a 'required' dict"], declared
    problems = []
    extra = sorted(set(types) - set(declared))
    if extra:
        problems.append(f"INPUT_TYPES() has unknown sections {extra}")
    for section in declared:
        inputs = types.get(section, {})
        if not isinstance(inputs, dict):
            problems.append(f"INPUT_TYPES()[{section!r}] is not a dict")
            continue
        declared[section] = set(inputs)
        for name, spec in inputs.items():
            if section == "hidden":
                if spec not in HIDDEN_VALUES:
                    problems.append(f"hidden {name}: {spec!r} not one of {sorted(HIDDEN_VALUES)}")
                continue
            problems += input_spec_problems(name, spec, section)
    clash = declared["required"] & declared["optional"]
    if clash:
        problems.append(f"inputs both required and optional: {sorted(clash)}")
    return problems, declared


def _output_problems(cls: type) -> list[str]:
    returns = getattr(cls, "RETURN_TYPES", None)
    if not isinstance(returns, tuple) or not all(isinstance(t, str) and t for t in returns):
        return [f"RETURN_TYPES must be a tuple of type names, got {returns!r}"]
    problems = []
    for attr, item in (("RETURN_NAMES", str), ("OUTPUT_TOOLTIPS", str), ("OUTPUT_IS_LIST", bool)):
        value = getattr(cls, attr, None)
        if value is None:
            continue
        if not isinstance(value, (tuple, list)) or len(value) != len(returns):
            problems.append(f"{attr} must have {len(returns)} entries like RETURN_TYPES, got {value!r}")
        elif not all(isinstance(v, item) for v in value):
            problems.append(f"{attr} entries must be {item.__name__}")
    if not isinstance(getattr(cls, "OUTPUT_NODE", False), bool):
        problems.append("OUTPUT_NODE must be a bool")
    if not returns and not getattr(cls, "OUTPUT_NODE", False):
        problems.append("a node with no outputs must be an OUTPUT_NODE (or ComfyUI never runs it)")
    return problems


def declaration_problems(key: str, cls: Any, display_names: dict[str, str]) -> list[str]:
    """Every way node ``key`` departs from a declaration ComfyUI loads and runs as intended."""
    if not inspect.isclass(cls):
        return [f"{key}: mapped to {cls!r}, not a class"]
    problems, declared = _input_types_problems(cls)
    problems += _output_problems(cls)
    function = getattr(cls, "FUNCTION", None)
    if not isinstance(function, str) or not function:
        problems.append("FUNCTION must name a method")
    else:
        problems += _callable_problems(cls, function, declared, static=False)
    if hasattr(cls, "IS_CHANGED"):
        problems += _callable_problems(cls, "IS_CHANGED", declared, static=True)
    category = getattr(cls, "CATEGORY", "")
    if not (isinstance(category, str) and category.startswith("LoRA Foundry")):
        problems.append(f"CATEGORY {category!r} does not start with 'LoRA Foundry'")
    description = getattr(cls, "DESCRIPTION", "")
    if not (isinstance(description, str) and description.strip()):
        problems.append("DESCRIPTION is empty")
    if not key.startswith("LF_"):
        problems.append("node key does not start with 'LF_'")
    if not str(display_names.get(key, "")).strip():
        problems.append("no display name in NODE_DISPLAY_NAME_MAPPINGS")
    return [f"{key}: {p}" if not p.startswith(f"{key}:") else p for p in problems]


# --- the pack ---------------------------------------------------------------------------------


def test_every_registered_node_is_a_valid_comfyui_declaration(pack):
    problems = []
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        problems += declaration_problems(key, cls, pack.NODE_DISPLAY_NAME_MAPPINGS)
    assert not problems, "invalid node declarations:\n" + "\n".join(problems)


def test_the_spine_nodes_are_registered(pack):
    missing = [key for key in SPINE_NODES if key not in pack.NODE_CLASS_MAPPINGS]
    assert not missing, f"nodes missing from NODE_CLASS_MAPPINGS: {missing}"


def test_node_keys_and_display_names_are_unique_across_modules(pack):
    """Two modules defining one key would shadow each other in ComfyUI's global registry."""
    seen: dict[str, str] = {}
    clashes = []
    for info in pkgutil.iter_modules(pack.nodes.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{pack.nodes.__name__}.{info.name}")
        for key in getattr(module, "NODE_CLASS_MAPPINGS", {}):
            if key in seen:
                clashes.append(f"{key} in nodes/{seen[key]}.py and nodes/{info.name}.py")
            seen[key] = info.name
        orphans = set(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {})) - set(
            getattr(module, "NODE_CLASS_MAPPINGS", {}))
        clashes += [f"display name for unknown node {k} in nodes/{info.name}.py" for k in orphans]
    assert not clashes, clashes
    assert set(seen) == set(pack.NODE_CLASS_MAPPINGS)
    names = list(pack.NODE_DISPLAY_NAME_MAPPINGS.values())
    assert len(names) == len(set(names)), "two nodes share a display name"


# --- the checker catches what it claims to ----------------------------------------------------


class _GoodNode:
    CATEGORY = "LoRA Foundry/test"
    DESCRIPTION = "A node that does things."
    RETURN_TYPES = ("LF_FRAMES", "INT")
    RETURN_NAMES = ("frames", "count")
    OUTPUT_TOOLTIPS = ("the frames", "how many")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("LF_FRAMES", {"tooltip": "frames in"}),
                "count": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": "how many"}),
                "mode": (["a", "b"], {"default": "b", "tooltip": "which"}),
            },
            "optional": {"note": ("STRING", {"default": "", "multiline": True, "tooltip": "text"})},
            "hidden": {"node_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return ""

    def run(self, frames, count, mode, node_id, note=""):
        return frames, count


def _variant(**changes) -> type:
    return type("Variant", (_GoodNode,), changes)


def _inputs_with(**required) -> classmethod:
    def input_types(cls):
        spec = _GoodNode.INPUT_TYPES()
        spec["required"].update(required)
        return spec
    return classmethod(input_types)


def _problems(cls: type, key: str = "LF_Test") -> list[str]:
    return declaration_problems(key, cls, {key: "LF Test"})


def test_checker_accepts_a_well_formed_node():
    assert _problems(_GoodNode) == []


def test_checker_catches_bad_inputs():
    cases = {
        "no tooltip": {"count": ("INT", {"default": 4, "min": 1, "max": 64})},
        "outside [1, 64]": {"count": ("INT", {"default": 99, "min": 1, "max": 64, "tooltip": "t"})},
        "declares no max": {"count": ("INT", {"default": 4, "min": 1, "tooltip": "t"})},
        "not among": {"mode": (["a", "b"], {"default": "c", "tooltip": "t"})},
        "unknown to ComfyUI": {"count": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": "t",
                                                "multiline": True})},
        "spec must be": {"count": "INT"},
        "is not an int": {"count": ("INT", {"default": 1.5, "min": 1, "max": 64, "tooltip": "t"})},
        "is not a bool": {"flag": ("BOOLEAN", {"default": 1, "tooltip": "t"})},
    }
    for expected, inputs in cases.items():
        found = _problems(_variant(INPUT_TYPES=_inputs_with(**inputs)))
        assert any(expected in p for p in found), (expected, found)


def test_checker_catches_bad_outputs_and_metadata():
    cases = {
        "RETURN_NAMES must have 2": _variant(RETURN_NAMES=("frames",)),
        "OUTPUT_TOOLTIPS must have 2": _variant(OUTPUT_TOOLTIPS=("a", "b", "c")),
        "OUTPUT_IS_LIST must have 2": _variant(OUTPUT_IS_LIST=(False,)),
        "RETURN_TYPES must be a tuple": _variant(RETURN_TYPES=["LF_FRAMES", "INT"]),
        "CATEGORY": _variant(CATEGORY="image"),
        "DESCRIPTION is empty": _variant(DESCRIPTION=" "),
        "FUNCTION must name": _variant(FUNCTION=None),
        "is not a method": _variant(FUNCTION="missing"),
    }
    for expected, cls in cases.items():
        found = _problems(cls)
        assert any(expected in p for p in found), (expected, found)
    assert any("'LF_'" in p for p in _problems(_GoodNode, key="LoadThing"))
    assert any("display name" in p for p in declaration_problems("LF_Test", _GoodNode, {}))


def test_checker_catches_signatures_comfyui_cannot_call():
    def missing_input(self, frames, mode, node_id, note=""):
        return frames, 0

    def extra_param(self, frames, count, mode, node_id, strength, note=""):
        return frames, count

    def plain_is_changed(self, **kwargs):
        return ""

    assert any("does not accept input 'count'" in p for p in _problems(_variant(run=missing_input)))
    assert any("'strength' has no default" in p for p in _problems(_variant(run=extra_param)))
    assert any("classmethod or staticmethod" in p
               for p in _problems(_variant(IS_CHANGED=plain_is_changed)))



def test_a_node_that_subclasses_another_logs_each_run_once_under_its_own_name(pack, caplog):
    """LF SAM2 Track Through Shots subclasses LF SAM2 Layer Split: a run must log one line, under the
    subclass's name, and check its sockets once (not once per class in the chain)."""
    declare = importlib.import_module(f"{pack.nodes.__name__}._declare")

    @declare.node("LF_TestBase", "LF Test Base", category="test", function="go", description="base")
    class Base:
        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
            return {"required": {}}

        def go(self):
            return ("done",)

    @declare.node("LF_TestSub", "LF Test Sub", category="test", function="go", description="sub")
    class Sub(Base):
        pass

    with caplog.at_level("INFO", logger="lora_foundry"):
        assert Sub().go() == ("done",)
    lines = [r.getMessage() for r in caplog.records if "done in" in r.getMessage()]
    assert len(lines) == 1 and "LF Test Sub" in lines[0], lines
