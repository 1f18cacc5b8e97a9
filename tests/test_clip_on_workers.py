"""The CLIP model as a Ray unit opens it: what it asks the cluster for, and how it refuses on a
worker that lacks the weights (the cluster run itself is in test_ray_cluster.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lora_foundry.models import clip_model as CM
from lora_foundry.models.handle import ModelHandle
from lora_foundry.models.registry import ModelMissingError

pytest.importorskip("open_clip")
from clip_standin import save_tiny_local_dir  # noqa: E402
from test_clip_standin import images  # noqa: E402


def test_a_gpu_model_asks_for_a_gpu_and_a_cpu_model_for_a_cpu():
    assert CM.ClipSource("/m/x/", "auto", "cuda:0", "id").resources == {"num_gpus": 1}
    assert CM.ClipSource("/m/x/", "auto", "cpu", "id").resources == {"num_cpus": 1}


def test_a_worker_opens_the_same_model_and_embeds_the_same(tmp_path):
    save_tiny_local_dir(tmp_path / "tiny-clip")
    clip = CM.load_clip(tmp_path / "tiny-clip")
    source = clip.details.source
    assert source.path.endswith("tiny-clip/") and source.identity == clip.identity
    there = CM.open_source(source)
    np.testing.assert_array_equal(CM.embed_pil_batch(there, images()), CM.embed_pil_batch(clip, images()))


def test_a_worker_without_the_weights_says_which_file_to_put_where(tmp_path):
    gone = tmp_path / "elsewhere" / "ViT-B-32__laion2b_s34b_b79k.safetensors"
    with pytest.raises(ModelMissingError) as missing:
        CM.open_source(CM.ClipSource(str(gone), "auto", "cpu", "id"))
    message = str(missing.value)
    assert f"put {gone.name} in {gone.parent}" in message and "same path" in message


def test_a_worker_with_other_weights_at_that_path_refuses(tmp_path):
    save_tiny_local_dir(tmp_path / "tiny-clip")
    source = CM.load_clip(tmp_path / "tiny-clip").details.source
    with pytest.raises(ModelMissingError, match="other weights"):
        CM.open_source(dataclasses.replace(source, identity="another model"))


def test_a_clip_not_opened_from_a_file_cannot_go_to_a_cluster(tmp_path):
    """Embedding and tracking ask the one ``source_of``: a loader's model gives its file, any other
    CLIP (no file a worker could open) is refused with the loader to use."""
    save_tiny_local_dir(tmp_path / "tiny-clip")
    clip = CM.load_clip(tmp_path / "tiny-clip")
    assert CM.source_of(clip) == clip.details.source
    with pytest.raises(ValueError, match="LF CLIP Loader"):
        CM.source_of(ModelHandle(object(), "cpu", "held-here", "clip"))
