"""Code rules for file jobs with one owner each (more live in test_owner_rules.py and test_code_rules.py).

- Refusing a LoRA name already published: ``kohya/publish.refuse_published``. The kohya and LECO
  planners, musubi's node and the tuner's best-trial copy once each wrote the check, with two error
  types (one the tuner caught, one it did not) and three wordings."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from test_code_rules import SOURCES

REPO = Path(__file__).resolve().parents[1]
PUBLISH_OWNER = "lora_foundry/kohya/publish.py"
PUBLISHED_REFUSAL = re.compile(r"already (exists|published).*another output name", re.DOTALL)


def _text(node: ast.AST) -> str:
    """The literal text of everything under ``node`` (f-string parts included, values left out)."""
    return "".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def published_refusals(source: str) -> list[int]:
    """Lines of ``raise`` statements whose message refuses a name as already published."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Raise) and node.exc is not None and PUBLISHED_REFUSAL.search(_text(node.exc))]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_only_publish_refuses_a_published_lora_name(path):
    if str(path.relative_to(REPO)) == PUBLISH_OWNER:
        assert published_refusals(path.read_text("utf-8")), "the owner no longer holds the refusal this rule looks for"
        return
    assert not published_refusals(path.read_text("utf-8")), "call kohya.publish.refuse_published instead"


def test_the_published_rule_sees_a_planted_second_owner():
    planted = ('if final.exists():\n    raise PreflightError(f"a LoRA named {final.name} already exists in "\n'
               '                         f"{loras_dir}; choose another output name")\n')
    assert published_refusals(planted) == [2]
    assert published_refusals('raise FileExistsError(f"{dst} already exists; choose another output name")') == [1]
    study_clash = 'raise ValueError("other settings differ: choose another output name, or restore them")'
    assert published_refusals(study_clash) == []
