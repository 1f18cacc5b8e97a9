"""Every name stages exchange is written down in ``lora_foundry/names.py``.

A stage writes an annotation, an item kind or a stage-info key; another stage, a node or the CLI
reads it by the same string. A typo on either side reads nothing and fails silently (an empty
dict, a ``.get`` default). So this test reads the engine and the nodes and collects the string
literals used in the exchanging call shapes; each must be declared in ``names.py``, so a new name is
written down, with who writes it and who reads it, before it is used.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from lora_foundry import names

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("lora_foundry", "nodes") for p in (REPO / folder).rglob("*.py"))
INFO_READERS = {"stage_info", "nearest_info"}


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _attr(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _is_item_key(node: ast.AST | None) -> bool:
    """An item id expression (``item.id``, ``c.item``): not a string and not a ``names.X`` constant."""
    if node is None or _text(node) is not None:
        return False
    return not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "names")


def _keys(node: ast.AST) -> list[str]:
    """The string keys of a dict literal ({} for anything else)."""
    return [key for key in map(_text, node.keys) if key] if isinstance(node, ast.Dict) else []


def _is_stage_info(node: ast.AST) -> bool:
    """A value holding a stage's info: ``info``, ``st.info``, ``ws.stage_info(...)``, ``ws.nearest_info(...)``."""
    if isinstance(node, ast.Name):
        return node.id == "info"
    if isinstance(node, ast.Attribute):
        return node.attr == "info" and isinstance(node.value, ast.Name) and node.value.id == "st"
    return isinstance(node, ast.Call) and _attr(node.func) in INFO_READERS


def _looked_up(node: ast.AST) -> tuple[ast.AST, str] | None:
    """(container, key) for ``container["key"]`` and ``container.get("key", ...)``."""
    if isinstance(node, ast.Subscript) and _text(node.slice):
        return node.value, _text(node.slice)
    if isinstance(node, ast.Call) and _attr(node.func) == "get" and node.args and _text(node.args[0]):
        return node.func.value, _text(node.args[0])
    return None


def _annotation_names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Call):
        name = _attr(node.func)
        if name == "annotations" and len(node.args) >= 2 and _text(node.args[1]):
            yield _text(node.args[1])  # ws.annotations(handle, "x")
        if name == "update" and _attr(node.func.value) == "annotations" and node.args:
            yield from _keys(node.args[0])  # new.annotations.update({"x": ...})
        for keyword in node.keywords:
            if name == "NewItem" and keyword.arg == "annotations":
                yield from _keys(keyword.value)  # NewItem(annotations={"x": ...})
    if isinstance(node, ast.Dict):  # {item.id: {"x": ...}}: the emit shape
        for key, value in zip(node.keys, node.values, strict=True):
            if _is_item_key(key):
                yield from _keys(value)
    if isinstance(node, ast.DictComp) and _is_item_key(node.key):
        yield from _keys(node.value)  # {item.id: {"x": ...} for item in ...}
    if isinstance(node, ast.Assign):
        for target in node.targets:  # annotations[item.id]["x"] = ... / out[item.id] = {"x": ...}
            if isinstance(target, ast.Subscript) and _is_item_key(target.slice):
                yield from _keys(node.value)
            if isinstance(target, ast.Subscript) and _attr(target.value.value if isinstance(
                    target.value, ast.Subscript) else target.value) == "annotations" and _text(target.slice):
                yield _text(target.slice)


def _kinds(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Call) and _attr(node.func) == "NewItem":
        yield from (_text(k.value) for k in node.keywords if k.arg == "kind" and _text(k.value))
    if isinstance(node, ast.Call) and _attr(node.func) == "select_kinds" and len(node.args) >= 3:
        if isinstance(node.args[2], ast.List | ast.Tuple):
            yield from (text for text in map(_text, node.args[2].elts) if text)
    if isinstance(node, ast.Compare):  # item.kind == "x" (a bare ``kind`` may be a model's or a subset's)
        sides = [node.left, *node.comparators]
        if any(isinstance(side, ast.Attribute) and side.attr == "kind" and _attr(side.value) == "item"
               for side in sides):
            yield from (text for text in map(_text, sides) if text)


def _info_keys(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Call) and _attr(node.func) == "set_info":
        yield from (k.arg for k in node.keywords if k.arg)  # st.set_info(x=...)
        for keyword in node.keywords:
            if keyword.arg is None:
                yield from _keys(keyword.value)  # st.set_info(**{"x": ...})
    if isinstance(node, ast.Call) and _attr(node.func) == "nearest_info" and len(node.args) >= 2:
        yield from filter(None, [_text(node.args[1])])
    found = _looked_up(node)
    if found and _is_stage_info(found[0]):
        yield found[1]  # info["x"], st.info.get("x"), ws.stage_info(h)["x"]


def _meta_keys(node: ast.AST) -> Iterator[str]:
    found = _looked_up(node)
    if found and isinstance(found[0], ast.Attribute) and found[0].attr == "meta":
        yield found[1]  # item.meta["x"], item.meta.get("x")


SCANS = {"annotation": (_annotation_names, names.ANNOTATIONS), "item kind": (_kinds, names.KINDS),
         "stage-info key": (_info_keys, names.INFO_KEYS), "item meta key": (_meta_keys, names.META_KEYS)}


def used_names(path: Path) -> dict[str, set[tuple[str, int]]]:
    """{what: {(name, line)}} for every exchanged name ``path`` uses as a string literal."""
    found: dict[str, set[tuple[str, int]]] = {what: set() for what in SCANS}
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        for what, (scan, _) in SCANS.items():
            found[what] |= {(name, getattr(node, "lineno", 0)) for name in scan(node)}
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_exchanged_name_is_declared(path):
    missing = [f"{what} {name!r} (line {line})" for what, used in used_names(path).items()
               for name, line in sorted(used) if name not in SCANS[what][1]]
    assert not missing, f"{path.relative_to(REPO)} uses names not declared in lora_foundry/names.py: {missing}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_exchanged_names_are_spelled_through_the_constants(path):
    """A declared name is written ``names.X``, never as its string: a reader cannot grep for a
    spelling, and renaming or retiring a name must reach every use (about 30 raw spellings were
    found once, in stages and nodes alike)."""
    constants = {value: key for key, value in vars(names).items() if key.isupper() and isinstance(value, str)}
    raw = [f"{what} {name!r} (line {line}): use names.{constants[name]}" for what, used in used_names(path).items()
           for name, line in sorted(used) if name in SCANS[what][1]]
    assert not raw, f"{path.relative_to(REPO)} spells declared names out: {raw}"


def test_every_constant_is_in_its_group():
    """``KIND_*`` in KINDS, ``INFO_*`` in INFO_KEYS, ``META_*`` in META_KEYS, the rest in ANNOTATIONS:
    a constant added without its group would not count as declared."""
    groups = {"KIND_": names.KINDS, "INFO_": names.INFO_KEYS, "META_": names.META_KEYS}
    for constant, value in vars(names).items():
        if constant.isupper() and isinstance(value, str):
            group = next((g for prefix, g in groups.items() if constant.startswith(prefix)), names.ANNOTATIONS)
            assert value in group, f"names.{constant} = {value!r} is missing from its group"


def test_every_call_shape_is_scanned(tmp_path):
    """A new stage using undeclared names in each exchanging call shape is caught."""
    source = tmp_path / "new_stage.py"
    source.write_text(
        'def run(ws, st, item, items, handle, new, out, annotations):\n'
        '    ws.annotations(handle, "sparkle")\n'
        '    st.emit("u", 0, [NewItem(kind="hologram", annotations={"shimmer": 1})], {item.id: {"glitter": 1}})\n'
        '    st.emit_all([], {i.id: {"twinkle": 2} for i in items})\n'
        '    new.annotations.update({"flash": 3})\n'
        '    annotations[item.id]["flare"] = 4\n'
        '    out[item.id] = {"beam": 5}\n'
        '    select_kinds(ws, handle, ["phantom"], "label")\n'
        '    if item.kind == "mirage":\n'
        '        st.set_info(shine=2, **{"sheen": 3})\n'
        '    ws.nearest_info(handle, "luster")\n'
        '    info = ws.stage_info(handle)\n'
        '    return ws.stage_info(handle)["gleam"], info.get("glint"), st.info["glare"], item.meta.get("glow")\n')
    found = {what: {name for name, _ in used} for what, used in used_names(source).items()}
    assert found == {
        "annotation": {"sparkle", "shimmer", "glitter", "twinkle", "flash", "flare", "beam"},
        "item kind": {"hologram", "phantom", "mirage"},
        "stage-info key": {"shine", "sheen", "luster", "gleam", "glint", "glare"},
        "item meta key": {"glow"},
    }
    assert not any("sparkle" in group for group in (names.ANNOTATIONS, names.KINDS, names.INFO_KEYS))


def test_names_constants_are_not_mistaken_for_item_ids(tmp_path):
    """``{names.EMBEDDING_ROW: {"file": ..., "row": ...}}`` is a value's own layout, not an emit."""
    source = tmp_path / "uses_constants.py"
    source.write_text('def run(st, item, rel):\n'
                      '    st.emit("u", 0, [], {item.id: {names.EMBEDDING_ROW: {"file": rel, "row": 0}}})\n')
    assert used_names(source)["annotation"] == set()
