"""Issue 28: one bad value, one message naming that input, on every node.

ComfyUI (``execution.validate_inputs``, the same in 0.3.64 and 0.8.0) builds a prompt's error list
from its own per-input checks (conversion, min/max and combo lists, one entry per bad input, skipped
for the inputs ``VALIDATE_INPUTS`` takes) and then from ``VALIDATE_INPUTS``: a returned refusal becomes
one entry *per input it was given* ("for x in input_filtered"), a raised exception one entry
(``validate_prompt``'s and the parent's ``except``). ``comfy_entries`` reproduces that, and every node
gets, in turn, each value the hostile oracle says must be refused at validation (NaN/inf, a huge text,
a literal in a socket, and a value that is not one of a combo's choices) in each input, the others at their defaults (sockets linked, as the front end
sends them). The real server does the same in tests/integration/test_trust_comfyui.py.
"""

from __future__ import annotations

import inspect
import math
import re
from collections import Counter
from typing import Any

import pytest
from conftest import import_pack
from hostile import oracle

PACK = import_pack()
NODES = sorted(PACK.NODE_CLASS_MAPPINGS)
LINKED = None  # get_input_data gives a linked input as None at validation
BAD = {"FLOAT": math.nan, "STRING": "x" * 300_000}
SOCKET_LITERAL = "/etc/passwd"


def comfy_entries(cls: type, values: dict[str, Any]) -> list[str]:
    """The error entries ComfyUI makes for one node given ``values`` (see the module docstring)."""
    spec = inspect.getfullargspec(cls.VALIDATE_INPUTS)
    entries = []
    for item in oracle.node_inputs(cls):
        value = values.get(item.name)
        if value is None or item.name in spec.args:
            continue
        if isinstance(item.kind, list) and value not in item.kind:
            entries.append(f"{item.name} - value not in list")
        elif item.kind in ("INT", "FLOAT") and not (item.options.get("min", -math.inf) <= value
                                                    <= item.options.get("max", math.inf)):
            entries.append(f"{item.name} - out of range")
    given = {name: values[name] for name in spec.args if name in values}
    try:
        answer = cls.VALIDATE_INPUTS(**given)
    except Exception as error:  # noqa: BLE001 - ComfyUI lists any exception here once
        return [*entries, str(error)]
    return entries if answer is True else [*entries, *(f"{name} - {answer}" for name in given)]


@pytest.fixture()
def installed_models(tmp_path, monkeypatch):
    """Every loader's default file present, so the loaders' own check passes on a fresh node."""
    monkeypatch.setenv("LORA_FOUNDRY_MODELS", str(tmp_path))
    for cls in PACK.NODE_CLASS_MAPPINGS.values():
        spec = getattr(cls, "SPEC", None)
        if spec is not None:
            path = tmp_path / spec.folder / spec.default_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"0")


def _fresh(cls: type) -> dict[str, Any]:
    return {item.name: oracle.default_of(item, {}) for item in oracle.node_inputs(cls)}


def _bad_value(item: oracle.Input) -> Any:
    if isinstance(item.kind, list):
        return "(not one of the choices)"
    if item.kind in oracle.WIDGETS:
        return BAD.get(item.kind)
    return SOCKET_LITERAL


@pytest.mark.parametrize("key", NODES)
def test_a_single_bad_value_gives_exactly_one_entry_naming_it(key, installed_models):
    cls = PACK.NODE_CLASS_MAPPINGS[key]
    fresh = _fresh(cls)
    before = comfy_entries(cls, fresh)
    custom_before = [e for e in before if "value not in list" not in e]
    assert custom_before == [], f"{key}: a fresh node is refused: {custom_before}"
    for item in oracle.node_inputs(cls):
        bad = _bad_value(item)
        if bad is None:
            continue
        if any(entry.startswith(f"{item.name} - ") for entry in before):
            continue  # an empty model list here: its fresh value is refused already
        after = comfy_entries(cls, {**fresh, item.name: bad})
        added = list((Counter(after) - Counter(before)).elements())
        assert len(added) == 1, f"{key}.{item.name}: {len(added)} entries for one bad value: {added}"
        assert re.search(rf"\b{item.name}\b", added[0]), f"{key}.{item.name}: not named in {added[0]!r}"


def test_lama_s_missing_file_is_named_once(tmp_path, monkeypatch):
    """The case the issue saw: LaMa's refusal was listed for model_name and again for if_missing."""
    monkeypatch.setenv("LORA_FOUNDRY_MODELS", str(tmp_path))
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    cls = PACK.NODE_CLASS_MAPPINGS["LF_LaMaLoader"]
    entries = comfy_entries(cls, {**_fresh(cls), "if_missing": "error"})
    assert len(entries) == 1 and "put big-lama.pt in models/lama" in entries[0]


def test_validation_lists_a_node_s_checked_inputs_once(monkeypatch):
    """ComfyUI reads ``VALIDATE_INPUTS``'s signature and then calls it (two attribute lookups, as in
    ``comfy_entries``), on every prompt; the declared inputs are listed once for all of them (counted on
    the real ``_checks._declared``), and a bad value is still refused each time."""
    import importlib

    declare = importlib.import_module(f"{PACK.__name__}.nodes._declare")
    checks = importlib.import_module(f"{PACK.__name__}.nodes._checks")

    @declare.node("LF_TestListedOnce", "LF Test Listed Once", category="test", function="go",
                  inputs={"scale": declare.number("A number.", 1.0, 0.0, 2.0, 0.1),
                          "note": declare.text("A line.", "")})
    class ListedOnce:
        """Takes a number and a line."""

        def go(self, scale: float, note: str) -> tuple:
            return (scale, note)

    listed, real_declared = [], checks._declared
    monkeypatch.setattr(checks, "_declared", lambda cls: listed.append(cls) or real_declared(cls))
    assert comfy_entries(ListedOnce, {"scale": 1.0, "note": "fine"}) == []
    refused = comfy_entries(ListedOnce, {"scale": math.nan, "note": "fine"})
    assert len(refused) == 1 and "input 'scale'" in refused[0]
    assert listed == [ListedOnce]


def test_a_lora_name_in_subfolders_gets_the_one_name_rule_at_validation():
    """docs/trust.md: a LoRA name may have 255 bytes per folder or file name and 4096 in all
    (``paths.text_problem``, as the engine checks it). The nodes' own check capped the whole name at
    255 bytes, refusing a LoRA in deep subfolders that the engine finds."""
    deep = "characters/" * 25 + "hero.safetensors"  # 291 bytes of short parts
    for node_id in ("LF_EvaluateLoRA", "LF_LoadTrainedLoRA"):
        cls = PACK.NODE_CLASS_MAPPINGS[node_id]
        assert comfy_entries(cls, {"lora_name": deep}) == [], node_id
        [refused] = comfy_entries(cls, {"lora_name": "sub/" + "x" * 256 + ".safetensors"})
        assert "input 'lora_name' is too long" in refused and "each folder or file name 255" in refused
