"""A tiny random-weight SAM 2 built through sam2's own build_sam2, loaded through ``load_sam2``.

The stand-in keeps the published config and image size and only shrinks the trunk (Hydra
overrides), so the loader, predictor and mask generator run the same code as with real weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

from lora_foundry.models.registry import ModelFormatError  # noqa: E402
from lora_foundry.models.sam2_model import CONFIGS, SAM2_SPEC, config_for_file, load_sam2  # noqa: E402

STANDIN_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SHRINK = (  # every width cut to a few channels; image_size (1024) and the layer layout kept
    "++model.image_encoder.trunk.embed_dim=8",
    "++model.image_encoder.trunk.stages=[1,1,1,1]",
    "++model.image_encoder.trunk.global_att_blocks=[]",
    "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    "++model.image_encoder.neck.d_model=32",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=32",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.d_model=32",
    "++model.memory_attention.layer.d_model=32",
    "++model.memory_attention.layer.dim_feedforward=64",
    "++model.memory_attention.layer.self_attention.embedding_dim=32",
    "++model.memory_attention.layer.cross_attention.embedding_dim=32",
    "++model.memory_attention.layer.cross_attention.kv_in_dim=16",
    "++model.memory_encoder.in_dim=32",  # = neck.d_model: the memory encoder reads its features
    "++model.memory_encoder.out_dim=16",
    "++model.memory_encoder.position_encoding.num_pos_feats=16",
    "++model.memory_encoder.mask_downsampler.embed_dim=32",
    "++model.memory_encoder.fuser.layer.dim=32",
)


def build_standin(seed: int = 0):
    """A random SAM 2.1-tiny-shaped network with a shrunk trunk (image size kept at 1024)."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    return build_sam2(STANDIN_CONFIG, None, device="cpu", hydra_overrides_extra=list(SHRINK))


def save_standin(folder: Path, name: str = "sam2.1_hiera_tiny.pt", seed: int = 0) -> Path:
    """Save a stand-in as Meta's ``{"model": state_dict}`` .pt or as a .safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    state = build_standin(seed).state_dict()
    path = folder / name
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"model": state}, path)
    return path


@pytest.fixture(scope="module")
def standin_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sam2")
    return {suffix: save_standin(folder, f"sam2.1_hiera_tiny{suffix}") for suffix in (".pt", ".safetensors")}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_loader_restores_every_weight(standin_files, suffix):
    model = load_sam2(standin_files[suffix], "cpu", hydra_overrides=SHRINK)
    expected = build_standin(seed=0).state_dict()
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert next(model.parameters()).device.type == "cpu"
    assert not model.training


def test_wrong_config_is_reported_not_half_loaded(standin_files):
    with pytest.raises(ModelFormatError, match="does not match config"):
        load_sam2(standin_files[".pt"], "cpu", config="configs/sam2.1/sam2.1_hiera_s.yaml")


def test_pt_without_model_key_is_refused(tmp_path):
    bad = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"weights": {"a": torch.zeros(1)}}, bad)
    with pytest.raises(ModelFormatError, match="'model'"):
        load_sam2(bad, "cpu", hydra_overrides=SHRINK)


def test_pickled_objects_are_not_executed(tmp_path):
    """weights_only=True refuses a checkpoint holding an arbitrary Python object."""
    bad = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "extra": Path("/")}, bad)
    with pytest.raises(ValueError, match="sam2.1_hiera_tiny.pt: holds Python objects besides tensors") as refused:
        load_sam2(bad, "cpu", hydra_overrides=SHRINK)
    assert "weights_only" not in str(refused.value)


def test_every_published_name_maps_to_an_installed_config():
    import sam2

    package = Path(sam2.__file__).parent
    for name in SAM2_SPEC.files:
        assert (package / config_for_file(name)).is_file(), name
    assert config_for_file("sam2.1_hiera_base_plus-fp16.safetensors") == "configs/sam2.1/sam2.1_hiera_b+.yaml"
    assert config_for_file("sam2_hiera_large.pt") == "configs/sam2/sam2_hiera_l.yaml"
    assert len(set(CONFIGS)) == 8
    with pytest.raises(ValueError, match="choose one of"):
        config_for_file("my_model.pt")


def test_standin_segments_a_real_frame_from_a_box(standin_files, media_dir):
    from lora_foundry.media.video import iter_frames
    from lora_foundry.stages.layers.segment import make_predictor, parse_prompts, segment_prompted

    frame = next(iter_frames(media_dir / "montage_6_shots.mp4", wanted=lambda i: i == 30)).rgb
    model = load_sam2(standin_files[".safetensors"], "cpu", hydra_overrides=SHRINK)
    objects, relative = parse_prompts('{"relative": true, "objects": [{"box": [0.2, 0.1, 0.6, 0.9]}]}')
    instances = segment_prompted(make_predictor(model), frame, objects, relative)
    for inst in instances:  # random weights: plumbing only (shape, box consistent with mask)
        assert inst.mask.shape == frame.shape[:2] and inst.mask.dtype == bool
        ys, xs = np.nonzero(inst.mask)
        assert inst.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert inst.area == len(xs)


def test_segmenting_a_frame_prints_no_sam2_lines_to_the_console(standin_files, caplog):
    """sam2 logs "Computing image embeddings..." per image on the root logger (two console lines
    per frame in ComfyUI); the segmenter silences them, and only them."""
    import logging

    from lora_foundry.stages.layers.segment import make_predictor, parse_prompts, segment_prompted

    frame = np.zeros((64, 96, 3), np.uint8)
    frame[16:48, 32:64] = 200
    model = load_sam2(standin_files[".safetensors"], "cpu", hydra_overrides=SHRINK)
    objects, relative = parse_prompts('{"relative": true, "objects": [{"box": [0.2, 0.1, 0.6, 0.9]}]}')
    predictor = make_predictor(model)
    with caplog.at_level(logging.INFO):
        predictor.set_image(frame)  # sam2 called directly: its lines are there
        assert any("image embeddings" in r.getMessage() for r in caplog.records)
        caplog.clear()
        segment_prompted(predictor, frame, objects, relative)
        logging.getLogger("lora_foundry.test").info("a line of ours")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "image embeddings" in m] and "a line of ours" in messages
