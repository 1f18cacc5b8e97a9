"""Every example workflow carries, on each node that names a model file, the link ComfyUI's front end
lists in its Missing Models dialog ({name, url, directory} in ``properties.models``), and the links
are the registry's (``scripts/embed_model_links.py`` writes them; rerun it after editing a workflow)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import REPO

from lora_foundry.models.links import model_links

WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".onnx", ".bin")
# Model files that no one downloads: the LoRAs a user trains with the dataset examples. Any other name
# a shipped workflow carries must have a link (a test-only stand-in name would leave users stuck).
MADE_BY_EXAMPLES = {"lf_character.safetensors", "lf_background.safetensors", "lf_pose.safetensors"}


def _script():
    spec = importlib.util.spec_from_file_location("embed_model_links", REPO / "scripts" / "embed_model_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_the_embedded_links_are_the_registry_links(path):
    workflow = json.loads(path.read_text(encoding="utf-8"))
    expected = _script().embed(json.loads(path.read_text(encoding="utf-8")), model_links())
    assert workflow == expected, f"{path.name}: run python scripts/embed_model_links.py"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_model_file_a_workflow_names_has_a_link(path):
    workflow = json.loads(path.read_text(encoding="utf-8"))
    missing = []
    for node in workflow["nodes"]:
        linked = {entry["name"] for entry in node.get("properties", {}).get("models", [])}
        for value in node.get("widgets_values") or []:
            if (isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES)
                    and value not in MADE_BY_EXAMPLES and value not in linked):
                missing.append(f"node {node['id']} ({node['type']}): {value}")
    assert not missing, f"{path.name}: model files without a link (add them to lora_foundry/models/links.py):\n" \
        + "\n".join(missing)


def test_links_name_a_folder_and_a_download_address():
    folders = {"sam2", "lama", "open_clip", "rtmpose", "facedetection", "expression", "wd14", "checkpoints"}
    for link in model_links().values():
        assert link.directory in folders, link
        assert link.url.startswith("https://") and " " not in link.url, link


def test_the_script_drops_a_link_the_node_no_longer_names():
    links = model_links()
    node = {"id": 1, "type": "LF_SAM2Loader", "widgets_values": ["my_own.pt", "auto", "auto"],
            "properties": {"models": [links["sam2.1_hiera_tiny.pt"].as_dict()]}}
    embedded = _script().embed({"nodes": [node]}, links)
    assert "models" not in embedded["nodes"][0]["properties"]
    node["widgets_values"][0] = "sam2.1_hiera_small.pt"
    entry = _script().embed({"nodes": [node]}, links)["nodes"][0]["properties"]["models"]
    assert entry == [{"name": "sam2.1_hiera_small.pt", "directory": "sam2",
                      "url": "https://huggingface.co/facebook/sam2.1-hiera-small/resolve/main/sam2.1_hiera_small.pt"}]


# ComfyUI's Missing Models dialog offers "Download" only for huggingface.co and civitai.com addresses
# (front ends 1.27.10 and 1.35.9; others show "Download not allowed from source"), and then only for
# .safetensors/.sft names (others: "Only allowed suffixes are ..."). Files that no
# publisher-run Hugging Face repository carries keep their upstream link, for the reason given.
DOWNLOADABLE_HOSTS = ("https://huggingface.co/", "https://civitai.com/")
NOT_ON_HUGGING_FACE = {
    "big-lama.pt": "TorchScript (code): only third-party copies on Hugging Face",
    "detection_Resnet50_Final.pth": "facexlib's GitHub release; only third-party copies on Hugging Face",
    "detection_mobilenet0.25_Final.pth": "facexlib's GitHub release; only third-party copies on Hugging Face",
    "emotion-ferplus-8.onnx": "ONNX model zoo on GitHub",
    "rtmpose-m_simcc-body7_pt-body7_420e-256x192.onnx": "published inside a zip (OpenMMLab)",
    "rtmo-s_8xb32-600e_body7-640x640.onnx": "published inside a zip (OpenMMLab)",
}


def test_links_the_missing_models_dialog_can_download_from():
    links = model_links()
    others = {name: link.url for name, link in links.items() if not link.url.startswith(DOWNLOADABLE_HOSTS)}
    assert set(others) == set(NOT_ON_HUGGING_FACE), others
    assert links["sam2.1_hiera_tiny.pt"].url == \
        "https://huggingface.co/facebook/sam2.1-hiera-tiny/resolve/main/sam2.1_hiera_tiny.pt"


def _installed(tmp_path, *files):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return lambda folder: [tmp_path / folder]


def test_a_tagger_needs_its_label_file_too(tmp_path):
    from lora_foundry.models.links import missing_links

    entry = model_links()["wd-vit-tagger-v3/model.onnx"].as_dict()
    folders = _installed(tmp_path, "wd14/wd-vit-tagger-v3/model.onnx")
    assert [e["name"] for e in missing_links([entry], folders)] == ["wd-vit-tagger-v3/selected_tags.csv"]
    assert missing_links([entry], folders)[0]["url"] == \
        "https://huggingface.co/SmilingWolf/wd-vit-tagger-v3/resolve/main/selected_tags.csv"
    folders = _installed(tmp_path, "wd14/wd-vit-tagger-v3/selected_tags.csv")
    assert missing_links([entry], folders) == []  # both installed: nothing to list (an .onnx ComfyUI never lists)
    assert [e["name"] for e in missing_links([entry], lambda folder: [])] == \
        ["wd-vit-tagger-v3/model.onnx", "wd-vit-tagger-v3/selected_tags.csv"]


def test_only_known_names_are_looked_up_and_each_file_is_listed_once(tmp_path):
    from lora_foundry.models.links import missing_links

    (tmp_path / "secret.pt").write_bytes(b"x")
    odd = {"name": "../secret.pt", "directory": "sam2", "url": "https://example.com/x"}
    lama = model_links()["big-lama.pt"].as_dict()
    assert missing_links([odd, lama, lama], lambda folder: [tmp_path / folder]) == [odd, lama]
