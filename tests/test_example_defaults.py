"""The spine example, run with its own saved widget values on the bundled clip, writes a dataset the
pack's own checks pass (no warning in LF Write Kohya Dataset's report)."""

from __future__ import annotations

import json
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "tests" / "integration"))
from test_workflows_match_nodes import node_definition  # noqa: E402
from ui_to_api import widget_inputs  # noqa: E402

SPINE = REPO / "example_workflows" / "video_to_kohya_dataset.json"


def _values(pack, workflow: dict, kind: str) -> dict:
    node = next(n for n in workflow["nodes"] if n["type"] == kind)
    return widget_inputs(node, node_definition(pack.NODE_CLASS_MAPPINGS[kind]))


def test_the_spine_example_defaults_pass_the_dataset_checks(pack, output_root):
    workflow = json.loads(SPINE.read_text(encoding="utf-8"))
    nodes = pack.nodes
    frames, _ = nodes.frames.LoadVideoFrames().load(**_values(pack, workflow, "LF_LoadVideoFrames"))
    kept, _ = nodes.frames.FilterFrames().filter(frames, **_values(pack, workflow, "LF_FilterFrames"))
    written = nodes.dataset.WriteKohyaDataset().write(kept, **_values(pack, workflow, "LF_WriteKohyaDataset"))
    report = written["result"][2]
    assert "WARNING" not in report, report
    assert "recommended" in report and written["result"][0].image_count >= 20


def test_trigger_only_captions_are_not_called_duplicates(tmp_path):
    from lora_foundry.kohya.report import _duplicate_warnings

    assert _duplicate_warnings(["montage_lf"] * 5) == []
    assert _duplicate_warnings(["sks, smiling", "sks, smiling", "sks, serious"])  # tagged duplicates still warn


def test_every_example_workflow_has_its_template_card_thumbnail():
    """ComfyUI's template browser shows example_workflows/<name>.jpg on the card (a 404 is a blank card);
    scripts/workflow_screenshots.js thumbnails writes them from the real front end."""
    from lora_foundry.media import images

    for workflow in sorted((REPO / "example_workflows").glob("*.json")):
        thumbnail = workflow.with_suffix(".jpg")
        assert thumbnail.is_file(), f"{thumbnail.name} is missing: run scripts/workflow_screenshots.js thumbnails"
        assert thumbnail.stat().st_size < 200_000
        picture = images.load_image(thumbnail)
        assert picture.shape[0] >= 200 and picture.shape[1] >= 200 and picture.std() > 5  # not a blank card
