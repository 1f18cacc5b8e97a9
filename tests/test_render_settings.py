"""Issue 28: every example that renders starts on a quick setting a CPU finishes in minutes, labelled
with what it does, and the full setting is one choice away (LF Render Settings feeding the renderer's
steps, width and height)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "example_workflows").glob("*.json"))
# The renderers and their inputs that set the work per image.
RENDERERS = {"KSampler": ("steps",), "EmptyLatentImage": ("width", "height"),
             "LF_EvaluateLoRA": ("steps", "width", "height")}
QUICK_BOUND = {"steps": 8, "width": 256, "height": 256}


def _renders(path: Path) -> list[tuple[dict, str, dict]]:
    """(workflow, input name, renderer node) for every work-setting input of a renderer."""
    workflow = json.loads(path.read_text(encoding="utf-8"))
    return [(workflow, name, node) for node in workflow["nodes"] if node["type"] in RENDERERS
            for name in RENDERERS[node["type"]]]


# Where ComfyUI's core renderers keep these widgets in ``widgets_values`` (KSampler's seed is followed
# by its control_after_generate value).
CORE_POSITIONS = {("KSampler", "steps"): 2, ("EmptyLatentImage", "width"): 0, ("EmptyLatentImage", "height"): 1}


def _widget_value(node: dict, name: str):
    return node["widgets_values"][CORE_POSITIONS[(node["type"], name)]]


@pytest.mark.parametrize("path", [p for p in EXAMPLES if _renders(p)], ids=lambda p: p.stem)
def test_each_rendering_example_starts_quick_with_full_one_choice_away(pack, path):
    settings = pack.nodes.compose_grid.RENDER_SETTINGS
    for workflow, name, node in _renders(path):
        slot = next(s for s in node["inputs"] if s["name"] == name)
        if slot.get("link") is None:  # a widget set by hand must already be quick
            assert _widget_value(node, name) <= QUICK_BOUND[name], (path.name, node["id"], name)
            continue
        link = next(link for link in workflow["links"] if link[0] == slot["link"])
        source = next(n for n in workflow["nodes"] if n["id"] == link[1])
        assert source["type"] == "LF_RenderSettings", (path.name, node["id"], name)
        chosen = source["widgets_values"][0]
        assert chosen.startswith("quick:") and chosen in settings, (path.name, chosen)
        assert link[2] == ("steps", "width", "height").index(name), (path.name, "wired to the wrong output")
        assert settings[chosen][link[2]] <= QUICK_BOUND[name]
    assert any(label.startswith("full:") for label in settings)


def test_each_setting_s_label_says_its_steps_and_size(pack):
    grid = pack.nodes.compose_grid
    for label, (steps, width, height) in grid.RENDER_SETTINGS.items():
        assert re.search(rf"\b{steps} steps, {width} px\b", label) and width == height, label
        assert grid.RenderSettings().settings(label) == (steps, width, height)
    quick = grid.RenderSettings().settings(grid.QUICK)
    assert quick <= (QUICK_BOUND["steps"], QUICK_BOUND["width"], QUICK_BOUND["height"])
