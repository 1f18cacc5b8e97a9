"""UI-format workflow (what the front end saves) -> API-format prompt (what POST /prompt takes).

The UI format stores widget values by position (``widgets_values``), so the converter needs the
node definitions from GET /object_info to know which input each value belongs to. The widget
order rules mirror the front end (comfyui-frontend-package 1.27): inputs in ``input_order``
(required, then optional), one widget per INT/FLOAT/STRING/BOOLEAN/COMBO input that is not
``forceInput``; an INT with ``control_after_generate`` (or named seed/noise_seed) has one extra
"control after generate" widget, a COMBO with it two (control + filter list); a combo with an
upload flag adds an "upload" button widget after all inputs. Both of those extras are saved in
``widgets_values`` but never sent to the server.

Handled: links, Reroute nodes, PrimitiveNode values, muted nodes (mode 2), notes. Refused with a
clear error: bypassed nodes (mode 4) and subgraphs, which these tests do not need.
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
FRONT_END_ONLY = {"Note", "MarkdownNote"}
MUTED, BYPASSED = 2, 4


class ConversionError(ValueError):
    """The workflow cannot be turned into a prompt faithfully."""


def _kind(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def _options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def widget_layout(node_def: dict) -> tuple[list[tuple[str, int]], int]:
    """[(input name, extra widgets after it)] in widget order, plus trailing extra widgets."""
    layout = []
    trailing = 0
    inputs = node_def.get("input", {})
    order = node_def.get("input_order") or {k: list(v) for k, v in inputs.items()}
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = inputs.get(section, {}).get(name)
            if spec is None or _kind(spec) not in WIDGET_TYPES or _options(spec).get("forceInput"):
                continue
            options = _options(spec)
            control = options.get("control_after_generate")
            extra = 0
            if _kind(spec) == "INT" and (control if control is not None else name in ("seed", "noise_seed")):
                extra = 1
            elif _kind(spec) == "COMBO" and control:
                extra = 2
            if section == "required" and _kind(spec) == "COMBO" and any(options.get(f) for f in UPLOAD_FLAGS):
                trailing = 1
            layout.append((name, extra))
    return layout, trailing


def widget_inputs(node: dict, node_def: dict, strict: bool = True) -> dict[str, Any]:
    """Map a node's ``widgets_values`` to input names; ``strict=False`` for a workflow saved by an
    older version, which may lack the values of optional widgets added since (see below)."""
    values = node.get("widgets_values") or []
    layout, trailing = widget_layout(node_def)
    if isinstance(values, dict):  # some packs save widgets by name
        return {name: values[name] for name, _ in layout if name in values}
    expected = sum(1 + extra for _, extra in layout) + trailing
    # A workflow saved before an input gained its upload button lacks the button's trailing value;
    # the front end fills widgets in order, so the values before it still land where they did.
    # Likewise a workflow saved before a node gained optional widgets at the end: the front end fills
    # the saved values in order and the new widgets keep their defaults (left out here, as a prompt
    # may leave out an optional input).
    kept = None if strict else _saved_widgets(layout, len(values), _optional_names(node_def))
    if len(values) != expected and not (trailing and len(values) == expected - trailing) and kept is None:
        raise ConversionError(
            f"node {node['id']} ({node['type']}): {len(values)} widget values, expected {expected} "
            f"for widgets {[name for name, _ in layout]}")
    result, position = {}, 0
    for name, extra in layout[:kept]:
        result[name] = values[position]
        position += 1 + extra
    return result


def _optional_names(node_def: dict) -> set[str]:
    order = node_def.get("input_order") or {k: list(v) for k, v in node_def.get("input", {}).items()}
    return set(order.get("optional", []))


def _saved_widgets(layout: list[tuple[str, int]], count: int, optional: set[str]) -> int | None:
    """How many widgets ``count`` saved values fill when they stop before optional widgets only."""
    position = 0
    for index, (_name, extra) in enumerate(layout):
        if position == count:
            return index if all(n in optional for n, _ in layout[index:]) else None
        position += 1 + extra
    return None


class _Graph:
    def __init__(self, workflow: dict) -> None:
        if workflow.get("definitions", {}).get("subgraphs"):
            raise ConversionError("subgraphs are not supported by this converter")
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = {}
        for link in workflow.get("links", []):
            if isinstance(link, dict):
                link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"],
                        link["target_slot"], link.get("type")]
            self.links[link[0]] = link

    def source(self, link_id: int) -> Any:
        """What feeds a link: ``[node id, slot]``, a primitive's value, or None (muted/absent)."""
        seen = set()
        while link_id is not None and link_id not in seen:
            seen.add(link_id)
            link = self.links.get(link_id)
            if link is None:
                return None
            origin = self.nodes.get(link[1])
            if origin is None or origin.get("mode", 0) == MUTED:
                return None
            if origin["type"] == "Reroute":
                link_id = (origin.get("inputs") or [{}])[0].get("link")
                continue
            if origin["type"] == "PrimitiveNode":
                return ("value", (origin.get("widgets_values") or [None])[0])
            return ("link", [str(origin["id"]), link[2]])
        return None


def ui_to_api(workflow: dict, object_info: dict[str, dict]) -> dict[str, dict]:
    """The API-format prompt the front end would queue for ``workflow``."""
    graph = _Graph(workflow)
    prompt: dict[str, dict] = {}
    for node in sorted(graph.nodes.values(), key=lambda n: n.get("order", 0)):
        kind = node["type"]
        if kind in FRONT_END_ONLY or kind in ("Reroute", "PrimitiveNode") or node.get("mode", 0) == MUTED:
            continue
        if node.get("mode", 0) == BYPASSED:
            raise ConversionError(f"node {node['id']} ({kind}) is bypassed; not supported here")
        if kind not in object_info:
            raise ConversionError(f"node {node['id']}: type {kind!r} is not installed (missing node)")
        inputs = widget_inputs(node, object_info[kind])
        for slot in node.get("inputs") or []:
            fed = graph.source(slot.get("link")) if slot.get("link") is not None else None
            if fed is not None:
                inputs[(slot.get("widget") or {}).get("name", slot["name"])] = fed[1]
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs,
                                   "_meta": {"title": node.get("title") or kind}}
    return prompt
