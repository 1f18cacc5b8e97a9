"""docs/ARCHITECTURE.md cannot drift from the code: its layout tree lists every module and package,
and every rule it states names the test that holds it, which must exist.

The tree's grammar (so it can be checked): an entry line is its names (``x.py`` or ``x/``, several
separated by one space), two or more spaces, then a description; deeper lines without a name
continue the description above. A package's entry names its modules as words of its description,
unless its sub-packages have entries of their own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ARCHITECTURE.md"
ENTRY_NAME = re.compile(r"^[\w*]+(\.py|/)$")
RULE = re.compile(r"\(rules?:\s*([^)]*)\)")
TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def layout_entries(text: str) -> dict[str, str]:
    """{path: description} of the Layout tree, paths like ``nodes/_comfy.py``, ``lora_foundry/media/``."""
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    folders: list[tuple[int, str]] = []  # (indent, path) of the enclosing folder entries
    last = ""
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        head, _, description = line.strip().partition("  ")
        names = head.split(" ")
        if not all(ENTRY_NAME.match(name) for name in names):
            entries[last] += " " + line.strip()
            continue
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent = folders[-1][1] if folders else ""
        for name in names:
            last = parent + name
            entries[last] = description.strip()
        if len(names) == 1 and names[0].endswith("/"):
            folders.append((indent, last))
    return entries


def _packages(root: Path, top: str) -> list[Path]:
    return sorted(p.parent for p in (root / top).rglob("__init__.py"))


def layout_problems(root: Path, entries: dict[str, str]) -> list[str]:
    """What the tree gets wrong about the code under ``root``."""
    problems = [f"{path}: listed but does not exist" for path in entries
                if "*" not in path and not (root / path).exists()]
    for required in ("__init__.py", "nodes/", "lora_foundry/"):
        if required not in entries:
            problems.append(f"{required}: missing from the tree")
    for top in ("nodes", "lora_foundry"):
        for module in sorted((root / top).glob("*.py")):
            if f"{top}/{module.name}" not in entries:
                problems.append(f"{top}/{module.name}: module missing from the tree")
        for package in _packages(root, top):
            rel = package.relative_to(root).as_posix() + "/"
            if rel == f"{top}/":
                continue
            if rel not in entries:
                problems.append(f"{rel}: package missing from the tree")
                continue
            has_children = any(path.startswith(rel) and path != rel for path in entries)
            words = set(re.findall(r"[\w]+", entries[rel]))
            for module in sorted(package.glob("*.py")):
                named = module.stem in words or f"{rel}{module.name}" in entries
                if module.stem != "__init__" and not has_children and not named:
                    problems.append(f"{rel}{module.name}: not named in its package's description")
    return problems


def rule_references(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(rule markers naming no test, the (file, test) pairs the markers name)."""
    bare = re.findall(r"\*\(rules?[^:)]*\)\*", text)
    refs = [ref for marker in RULE.findall(text) for ref in TEST_REF.findall(marker)]
    empty = [marker for marker in RULE.findall(text) if not TEST_REF.search(marker)]
    return bare + empty, refs


def _defines(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text("utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree))


def test_the_layout_tree_lists_every_module_and_package():
    assert layout_problems(REPO, layout_entries(DOC.read_text("utf-8"))) == []


def test_every_rule_names_a_test_that_exists():
    unnamed, refs = rule_references(DOC.read_text("utf-8"))
    assert not unnamed, f"rules that name no test: {unnamed}"
    assert len(refs) >= 8
    missing = [f"{file}::{name}" for file, name in refs
               if not ((REPO / file).is_file() and _defines(REPO / file, name))]
    assert not missing, f"rules name tests that do not exist: {missing}"


@pytest.fixture
def small_repo(tmp_path):
    for path in ("__init__.py", "nodes/__init__.py", "nodes/a.py", "lora_foundry/__init__.py",
                 "lora_foundry/x.py", "lora_foundry/pkg/__init__.py", "lora_foundry/pkg/one.py",
                 "lora_foundry/pkg/two.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    return tmp_path


SMALL_TREE = """## Layout
```
__init__.py            entry
nodes/                 nodes
  __init__.py a.py     collect; a
lora_foundry/          engine
  __init__.py          nothing
  pkg/                 one and
                       two
  x.py                 x
```
"""


def test_the_checker_catches_a_module_added_removed_or_unnamed(small_repo):
    assert layout_problems(small_repo, layout_entries(SMALL_TREE)) == []
    (small_repo / "nodes" / "b.py").write_text("")
    (small_repo / "lora_foundry" / "pkg" / "three.py").write_text("")
    (small_repo / "lora_foundry" / "new").mkdir()
    (small_repo / "lora_foundry" / "new" / "__init__.py").write_text("")
    (small_repo / "lora_foundry" / "x.py").unlink()
    assert layout_problems(small_repo, layout_entries(SMALL_TREE)) == [
        "lora_foundry/x.py: listed but does not exist",
        "nodes/b.py: module missing from the tree",
        "lora_foundry/new/: package missing from the tree",
        "lora_foundry/pkg/three.py: not named in its package's description",
    ]


def test_the_checker_catches_a_rule_without_a_test():
    unnamed, refs = rule_references("a *(rule)* b *(rule: tests/test_x.py::test_y)* c *(rule: by review)*")
    assert unnamed == ["*(rule)*", "by review"] and refs == [("tests/test_x.py", "test_y")]
