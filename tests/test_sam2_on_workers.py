"""SAM 2 as a Ray tracking unit opens it: what it asks the cluster for, how a worker refuses a
missing or different file, and that a model not opened from a file is refused before any work
(the cluster run itself is in test_ray_cluster.py)."""

from __future__ import annotations

import dataclasses

import pytest

from lora_foundry.models import sam2_model as SM
from lora_foundry.models.handle import ModelHandle
from lora_foundry.models.registry import ModelMissingError
from lora_foundry.stages.layers import track_stage

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def test_a_gpu_model_asks_for_a_gpu_and_a_cpu_model_for_a_cpu():
    assert SM.Sam2Source("/m/x.pt", CONFIG, (), "cuda:0", "id").resources == {"num_gpus": 1}
    assert SM.Sam2Source("/m/x.pt", CONFIG, (), "cpu", "id").resources == {"num_cpus": 1}


def test_a_worker_without_the_checkpoint_says_it_needs_the_same_path(tmp_path):
    gone = tmp_path / "elsewhere" / "sam2.1_hiera_tiny.pt"
    with pytest.raises(ModelMissingError, match="same path") as missing:
        SM.open_sam2_source(SM.Sam2Source(str(gone), CONFIG, (), "cpu", "id"))
    assert str(gone) in str(missing.value)


def test_a_worker_with_another_file_at_that_path_refuses_before_loading_it(tmp_path):
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_bytes(b"not the driver's checkpoint")
    source = SM.Sam2Source(str(path), CONFIG, (), "cpu", SM.sam2_identity(path, CONFIG))
    with pytest.raises(ModelMissingError, match="another file"):
        SM.open_sam2_source(dataclasses.replace(source, identity="the driver's file"))


def test_a_model_not_opened_from_a_file_cannot_go_to_a_cluster():
    """A SAM 2 built in this process (no file a worker could open) is refused with what to use."""
    held = ModelHandle(object(), "cpu", "held-here", "sam2")
    with pytest.raises(ValueError, match="LF SAM2 Loader"):
        track_stage._sources(held, None)
    source = SM.Sam2Source("/m/x.pt", CONFIG, (), "cpu", "id")
    with pytest.raises(ValueError, match="LF CLIP Loader"):
        track_stage._sources(ModelHandle(object(), "cpu", "id", "sam2", details=source), object())
    assert track_stage._sources(ModelHandle(object(), "cpu", "id", "sam2", details=source), None) == (source, None)
