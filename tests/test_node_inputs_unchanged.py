"""Every node's ``INPUT_TYPES`` is exactly what it was at 49b5ec0, before declarations became data.

Saved workflows store widget values by position, so a renamed, reordered, retyped or re-ranged input
silently shifts or clamps a user's settings. tests/data/node_input_types_49b5ec0.json was recorded
from main at 49b5ec0 (the hand-written V1 declarations, imported the way ComfyUI imports the pack)
and is compared with order kept: sections, input names, types, defaults, min/max/step, tooltips.
A deliberate change to a node's inputs updates that file in the same commit, with its reason.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "data" / "node_input_types_49b5ec0.json"


def _as_json(value):
    """Tuples as lists, dict order kept: what /object_info sends the front end."""
    return json.loads(json.dumps(value))


def test_the_same_nodes_are_registered(pack):
    assert sorted(pack.NODE_CLASS_MAPPINGS) == sorted(json.loads(GOLDEN.read_text("utf-8")))


@pytest.mark.parametrize("node_id", sorted(json.loads(GOLDEN.read_text("utf-8"))))
def test_input_types_are_unchanged(pack, node_id):
    expected = json.loads(GOLDEN.read_text("utf-8"))[node_id]
    actual = _as_json(pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES())
    assert actual == expected
    for section in expected:  # == ignores dict order; widget values are stored by position
        assert list(actual[section]) == list(expected[section]), f"{node_id} {section}: input order changed"


def test_every_node_is_declared_as_data(pack):
    """No node module writes ``INPUT_TYPES`` by hand: each input is declared once, in ``@node(inputs=...)``,
    and ``INPUT_TYPES`` is generated from it (so V1 and any other emitter read the same data)."""
    nodes_dir = Path(pack.__file__).parent / "nodes"
    written = [f"{p.name}:{n.lineno}" for p in sorted(nodes_dir.glob("*.py"))
               for n in ast.walk(ast.parse(p.read_text("utf-8")))
               if isinstance(n, ast.FunctionDef) and n.name == "INPUT_TYPES"]
    assert not written, f"hand-written INPUT_TYPES: {written}"
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        assert cls.INPUT_TYPES() == cls.INPUTS.input_types(), node_id
