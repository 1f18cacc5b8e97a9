"""Code rules for two jobs with one owner each (more live in test_code_rules.py).

- A missing optional extra (optuna, ray, ...): ``lora_foundry.extras.optional_extra`` wraps the plain
  import and says what needs the package and which extra installs it. A hand-written
  ``except ImportError: raise ...`` in the engine is how the Ray runner and the tuner came to word
  the same refusal two ways.
- A node's help: its class docstring (``nodes/_declare.node``). A literal ``description=`` beside it
  is a second place for the same text, which is how help and code drifted apart."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OWNER = "lora_foundry/extras.py"


def _import_errors(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def _raises(node: ast.AST) -> list[int]:
    """Lines of ``raise`` under ``node``, not counting those inside a nested ``try`` (the Windows
    fallback of a lock refuses its own error, not the missing import)."""
    if isinstance(node, ast.Raise):
        return [node.lineno]
    if isinstance(node, ast.Try):
        return []
    return [line for child in ast.iter_child_nodes(node) for line in _raises(child)]


def missing_import_refusals(source: str) -> list[int]:
    """Lines of ``raise`` statements inside ``except ImportError`` handlers."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler) and node.type is not None and _import_errors(node):
            lines += [line for statement in node.body for line in _raises(statement)]
    return lines


def test_only_extras_refuses_a_missing_optional_package():
    found = {str(p.relative_to(REPO)): lines for p in sorted((REPO / "lora_foundry").rglob("*.py"))
             if str(p.relative_to(REPO)) != OWNER and (lines := missing_import_refusals(p.read_text("utf-8")))}
    assert not found, f"a missing import refused outside {OWNER} (use extras.optional_extra): {found}"


def test_the_rule_sees_a_planted_second_owner():
    planted = "try:\n    import ray\nexcept ImportError as error:\n    raise RuntimeError('pip install ray') from error\n"
    assert missing_import_refusals(planted) == [4]
    assert missing_import_refusals("try:\n    import hdbscan\nexcept ImportError:\n    backend = 'sklearn'\n") == []


def test_a_configured_cluster_without_ray_says_which_extra(monkeypatch):
    """What the operator reads when a Ray address is set but Ray is not in ComfyUI's Python."""
    from lora_foundry.scale import ray_runner

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RuntimeError, match=r"a configured Ray cluster needs ray.*lora-foundry\[ray\]"):
        ray_runner._import_ray()


def literal_descriptions(source: str) -> list[int]:
    """Lines of ``@node(..., description=<a written-out string>)``: help that belongs in the docstring."""
    return [keyword.value.lineno for call in ast.walk(ast.parse(source)) if isinstance(call, ast.Call)
            and getattr(call.func, "id", None) == "node"
            for keyword in call.keywords if keyword.arg == "description"
            and isinstance(keyword.value, (ast.Constant, ast.JoinedStr))]


def test_a_nodes_help_is_written_only_in_its_docstring():
    found = {p.name: lines for p in sorted((REPO / "nodes").glob("*.py"))
             if (lines := literal_descriptions(p.read_text("utf-8")))}
    assert not found, f"help written in @node(description=...) instead of the class docstring: {found}"
    planted = '@node("LF_X", "LF X", category="c", function="f", description="Does X.")\nclass X:\n    pass\n'
    assert literal_descriptions(planted) == [1]
