"""Every example workflow still fits the pack's current node declarations (runs without ComfyUI).

A UI workflow stores widget values by position; when a node gains, loses or reorders a widget
input, a saved workflow silently shifts every value after it. This test builds the same node
definitions ComfyUI's /object_info would serve for our nodes (``server.py`` ``node_info``: input,
input_order) and converts each workflow with the same converter the real-ComfyUI test uses, then
applies ComfyUI's own validation rules to our nodes' values (``execution.validate_inputs``: combo
values among the choices, numbers within min/max). Core ComfyUI nodes are left to the real test.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_to_api import ConversionError, widget_inputs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".onnx", ".bin", ".gguf")
WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))


def node_definition(cls: type) -> dict:
    """What ComfyUI's /object_info says about a V1 node class (server.py, ``node_info``)."""
    inputs = cls.INPUT_TYPES()
    return {"input": inputs, "input_order": {section: list(spec) for section, spec in inputs.items()}}


def value_problems(name: str, spec: tuple, value: object) -> list[str]:
    options = spec[1] if len(spec) > 1 else {}
    if isinstance(spec[0], list):
        if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES):
            return []  # lists of installed model files differ per machine; the real test checks them
        return [] if value in spec[0] else [f"{name}: {value!r} not among {spec[0]}"]
    if spec[0] in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{name}: {value!r} is not a number"]
        low, high = options.get("min", value), options.get("max", value)
        return [] if low <= value <= high else [f"{name}: {value} outside [{low}, {high}]"]
    if spec[0] == "BOOLEAN" and not isinstance(value, bool):
        return [f"{name}: {value!r} is not a bool"]
    return []


def self_validated(cls: type) -> set[str]:
    """Inputs named in ``VALIDATE_INPUTS``' signature: ComfyUI (execution.validate_inputs) leaves
    their type and list checks to the node."""
    check = getattr(cls, "VALIDATE_INPUTS", None)
    return set(inspect.signature(check).parameters) if check is not None else set()


def workflow_problems(workflow: dict, classes: dict[str, type], strict: bool = True) -> list[str]:
    problems = []
    for node in workflow.get("nodes", []):
        kind = node.get("type", "")
        if not kind.startswith("LF_"):
            continue
        if kind not in classes:
            problems.append(f"node {node['id']}: {kind} is not a node of the pack")
            continue
        definition = node_definition(classes[kind])
        declared = {**definition["input"].get("required", {}), **definition["input"].get("optional", {})}
        try:
            values = widget_inputs(node, definition, strict)
        except ConversionError as error:
            problems.append(str(error))
            continue
        self_checked = self_validated(classes[kind])
        for name, value in values.items():
            if name in self_checked:
                continue  # ComfyUI skips its list check for inputs the node's VALIDATE_INPUTS takes
            problems += [f"node {node['id']} ({kind}) {p}" for p in value_problems(name, declared[name], value)]
        for slot in node.get("inputs") or []:
            if slot.get("link") is not None and slot["name"] not in declared:
                problems.append(f"node {node['id']} ({kind}): link into unknown input {slot['name']!r}")
        missing = [n for n, s in definition["input"].get("required", {}).items()
                   if n not in values and not any(i["name"] == n and i.get("link") is not None
                                                  for i in node.get("inputs") or [])]
        problems += [f"node {node['id']} ({kind}): required input {n!r} has no value or link" for n in missing]
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_example_workflow_fits_the_current_node_declarations(pack, path):
    workflow = json.loads(path.read_text(encoding="utf-8"))
    assert workflow.get("nodes") and "links" in workflow, f"{path.name} is not a UI-format workflow"
    problems = workflow_problems(workflow, pack.NODE_CLASS_MAPPINGS)
    assert not problems, f"{path.name} no longer matches the nodes:\n" + "\n".join(problems)


def test_the_spine_example_workflow_exists():
    assert (REPO / "example_workflows" / "video_to_kohya_dataset.json").is_file()


def test_the_check_catches_a_workflow_saved_before_a_widget_was_added(pack):
    workflow = json.loads((REPO / "example_workflows" / "video_to_kohya_dataset.json").read_text())
    writer = next(n for n in workflow["nodes"] if n["type"] == "LF_WriteKohyaDataset")
    writer["widgets_values"] = writer["widgets_values"][:-1]
    assert any("widget values" in p for p in workflow_problems(workflow, pack.NODE_CLASS_MAPPINGS))
    loader = next(n for n in workflow["nodes"] if n["type"] == "LF_LoadVideoFrames")
    loader["widgets_values"][2] = "everything"  # mode
    assert any("not among" in p for p in workflow_problems(workflow, pack.NODE_CLASS_MAPPINGS))
