"""A node that reads files named by a widget re-runs when those files change.

ComfyUI re-runs a node only when its widget values or its ``IS_CHANGED`` value change: a node that
reads a file (a prompt TOML, a training set, a video) without an ``IS_CHANGED`` over it keeps
giving the result of the old file. The rule is checked over every registered node; the nodes that
once lacked one are checked by editing their files.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from conftest import import_pack

FILE_WIDGET = re.compile(r"^(video|folder|model_name|preset|lora|lora_\d+)$|_(path|file|folder|images)$")
"""Widget names that name files or folders the node reads. ``base_model`` is left out: the training
nodes pass the checkpoint's path to the trainer, and the prompt nodes use the name for a model family."""
NOT_FILES = {("LF_TrainLECO", "preset"): "quick or full: a fixed choice, not a preset file",
             ("LF_MusubiTrain", "preset"): "a model/task built into musubi/install.py, not a preset file"}


def _widgets(cls) -> list[str]:
    spec = cls.INPUT_TYPES()
    return [name for section in ("required", "optional") for name, (kind, *rest) in spec.get(section, {}).items()
            if isinstance(kind, list) or (kind == "STRING" and not (rest and rest[0].get("forceInput")))]


def _covers(cls, name: str) -> bool:
    """``IS_CHANGED`` takes ``name`` as a parameter, or takes ``**kwargs`` and reads it by its stem."""
    changed = getattr(cls, "IS_CHANGED", None)
    if changed is None:
        return False
    parameters = inspect.signature(changed).parameters
    if name in parameters:
        return True
    by_name = any(p.kind is inspect.Parameter.VAR_KEYWORD and p.name != "_" for p in parameters.values())
    return by_name and re.sub(r"_\d+$", "_", name) in inspect.getsource(changed)


NODES = sorted(import_pack().NODE_CLASS_MAPPINGS.items())


@pytest.mark.parametrize(("key", "cls"), NODES, ids=[key for key, _ in NODES])
def test_every_file_reading_widget_is_covered_by_is_changed(key, cls):
    missing = [name for name in _widgets(cls)
               if FILE_WIDGET.search(name) and (key, name) not in NOT_FILES and not _covers(cls, name)]
    assert not missing, f"{key} reads files named by {missing} but its IS_CHANGED does not cover them"


def test_editing_the_prompt_toml_reruns_kohya_train_leco(pack, tmp_path, monkeypatch):
    monkeypatch.setattr(pack.nodes._comfy, "input_root", lambda: tmp_path)
    toml = tmp_path / "slider.toml"
    toml.write_text('[[prompts]]\ntarget = "a cat"\n')
    node = pack.NODE_CLASS_MAPPINGS["LF_KohyaTrainLECO"]
    before = node.IS_CHANGED(prompts_file="slider.toml")
    assert node.IS_CHANGED(prompts_file="slider.toml") == before  # unchanged: ComfyUI keeps its result
    toml.write_text('[[prompts]]\ntarget = "a dog"\nguidance_scale = 2.0\n')
    assert node.IS_CHANGED(prompts_file="slider.toml") != before


@pytest.mark.parametrize("key", ["LF_EvaluateLoRA", "LF_TuneTraining", "LF_KohyaTrainLoRA"])
def test_changing_the_training_set_reruns_the_nodes_that_read_it(pack, output_root, key):
    from lora_foundry.media.images import save_image

    folder = output_root / "lora_foundry" / "datasets" / "mine"
    subset = folder / "10_sks person"
    subset.mkdir(parents=True)
    (folder / "dataset.toml").write_text("[general]\n")
    save_image(np.zeros((8, 8, 3), np.uint8), subset / "a.png")
    (subset / "a.txt").write_text("sks, standing")
    node = pack.NODE_CLASS_MAPPINGS[key]
    before = node.IS_CHANGED(dataset_path="mine")
    assert node.IS_CHANGED(dataset_path="mine") == before
    (subset / "a.txt").write_text("sks, sitting, a longer caption")
    captioned = node.IS_CHANGED(dataset_path="mine")
    save_image(np.ones((8, 8, 3), np.uint8), subset / "b.png")
    assert len({before, captioned, node.IS_CHANGED(dataset_path="mine")}) == 3
