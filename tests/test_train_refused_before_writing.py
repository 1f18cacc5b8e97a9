"""Issue 28: ``train_character_lora.json`` on a server where training cannot run refuses the queue
before its dataset writer (an output node ComfyUI runs whenever it validates) writes anything.

The writer's ``check_trainer`` asks the trainer's own question (sd-scripts set up by the operator, a
base model installed) at validation; the real ComfyUI run is in
tests/integration/test_trust_comfyui.py (``test_the_training_example_without_a_trainer_writes_nothing``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fixtures_fake_trainer import make_fake_install

EXAMPLE = Path(__file__).resolve().parents[1] / "example_workflows" / "train_character_lora.json"


@pytest.fixture()
def writer(pack, output_root, monkeypatch):
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    return pack.nodes.dataset.WriteKohyaDataset


def _refusal(pack, writer, **values):
    return pack.nodes._checks.refusal(writer.VALIDATE_INPUTS, **values)


def _configure(output_root: Path, tmp_path: Path) -> None:
    install = make_fake_install(tmp_path / "kohya")
    config = output_root / ".user" / "lora_foundry" / "trainer.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"sd_scripts": str(install.sd_scripts_dir), "python": sys.executable}))


def test_without_sd_scripts_the_writer_refuses_naming_the_setting(pack, writer):
    answer = _refusal(pack, writer, check_trainer=True)
    assert answer is not None and "sd-scripts is not configured: set KOHYA_SD_SCRIPTS" in answer
    assert _refusal(pack, writer, check_trainer=False) is None  # a writer alone (video_to_kohya) is not asked


def test_without_a_base_model_the_writer_says_where_one_goes(pack, writer, output_root, tmp_path):
    _configure(output_root, tmp_path)
    answer = _refusal(pack, writer, check_trainer=True)
    assert answer is not None and "no base model: put a .safetensors checkpoint in models/checkpoints" in answer


def test_with_a_trainer_and_a_base_model_the_writer_passes(pack, writer, output_root, tmp_path, monkeypatch):
    _configure(output_root, tmp_path)
    monkeypatch.setattr(pack.nodes.training._comfy, "list_models",
                        lambda folder: ["base.safetensors"] if folder == "checkpoints" else [])
    assert _refusal(pack, writer, check_trainer=True) is None


def test_the_training_example_asks_its_writer_to_check():
    nodes = json.loads(EXAMPLE.read_text())["nodes"]
    (node,) = [n for n in nodes if n["type"] == "LF_WriteKohyaDataset"]
    names = [i["name"] for i in node["inputs"] if "widget" in i]
    assert node["widgets_values"][names.index("check_trainer")] is True
