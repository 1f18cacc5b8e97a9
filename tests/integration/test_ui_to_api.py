"""The UI→API converter gives the prompt the real front end gives (runs without ComfyUI).

The golden files in graphs/frontend_golden/ were recorded from ComfyUI 0.3.64 with
comfyui-frontend-package 1.27.10: a workflow saved by ``app.graph.serialize()``, the prompt the
same front end built from it with ``app.graphToPrompt()``, and /object_info for its node types.
It covers the awkward widgets: KSampler's seed with its "control after generate" companion and
LoadImage's upload button, both stored in ``widgets_values`` but never sent.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_to_api import ConversionError, ui_to_api  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "graphs" / "frontend_golden"


def _load(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def _strip(prompt: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}


def test_converter_matches_the_front_end_prompt():
    prompt = ui_to_api(_load("core_workflow.json"), _load("core_object_info.json"))
    assert _strip(prompt) == _load("core_prompt.json")
    assert prompt["4"]["inputs"]["seed"] == 42 and "control_after_generate" not in prompt["4"]["inputs"]


def test_converter_follows_reroutes_and_skips_muted_nodes():
    workflow = copy.deepcopy(_load("core_workflow.json"))
    scale = next(n for n in workflow["nodes"] if n["type"] == "ImageScale")
    link_id = scale["inputs"][0]["link"]
    link = next(link for link in workflow["links"] if link[0] == link_id)
    reroute_id, new_link = 100, max(link[0] for link in workflow["links"]) + 1
    workflow["nodes"].append({"id": reroute_id, "type": "Reroute", "mode": 0,
                              "inputs": [{"name": "", "type": "*", "link": link_id}], "outputs": []})
    workflow["links"].append([new_link, reroute_id, 0, scale["id"], 0, "IMAGE"])
    link[3] = reroute_id
    scale["inputs"][0]["link"] = new_link
    next(n for n in workflow["nodes"] if n["type"] == "VAEDecode")["mode"] = 2
    prompt = ui_to_api(workflow, _load("core_object_info.json"))
    assert prompt[str(scale["id"])]["inputs"]["image"] == [str(link[1]), link[2]]
    assert not any(node["class_type"] == "VAEDecode" for node in prompt.values())


def test_converter_refuses_stale_widget_values_and_missing_nodes():
    workflow = copy.deepcopy(_load("core_workflow.json"))
    sampler = next(n for n in workflow["nodes"] if n["type"] == "KSampler")
    sampler["widgets_values"].remove("fixed")  # as if saved without the seed's control widget
    with pytest.raises(ConversionError, match="widget values"):
        ui_to_api(workflow, _load("core_object_info.json"))
    info = _load("core_object_info.json")
    del info["KSampler"]
    with pytest.raises(ConversionError, match="not installed"):
        ui_to_api(_load("core_workflow.json"), info)
