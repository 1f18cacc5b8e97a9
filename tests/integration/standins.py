"""Random-weight stand-ins for every model file the example workflows name, for a real ComfyUI.

Model weights are never downloaded by the tests, so each file an example workflow asks for is
built here with random weights, under its published name and in its published shape, by the same
builders the unit tests use (``tests/test_*_standin.py``, ``tests/comfy_checkpoints.py``).
The server then opens them with the pack's own loaders (and ComfyUI's, for checkpoints and LoRAs):

- ``sam2/sam2.1_hiera_tiny.pt``: SAM 2.1 tiny built from sam2's own config
  (``configs/sam2.1/sam2.1_hiera_t.yaml``, nothing shrunk: the loader picks the config from the
  file name), saved as Meta's ``{"model": state_dict}``.
- ``lama/big-lama.pt``: the TorchScript stand-in of ``tests/test_lama_standin.py`` (LaMa's call
  signature: image and mask in, image out).
- ``open_clip/ViT-B-32__laion2b_s34b_b79k.safetensors``: a random full-size ViT-B-32 (fp16). The
  loader reads the architecture from the file name and open_clip loads strictly, so the file
  cannot be smaller than the architecture it names.
- ``facedetection/detection_Resnet50_Final.pth``: facexlib's ResNet-50 RetinaFace, random, keys
  prefixed ``module.`` as in the published file (the unit test builds the mobile0.25 one).
- ``rtmpose/dw-ll_ucoco_384.onnx``: the tiny SimCC model of ``tests/test_pose_standin.py`` with
  DWPose's contract (288x384 input, 133 keypoints).
- ``wd14/wd-vit-tagger-v3/model.onnx`` (+ ``selected_tags.csv``): the scripted WD14-layout tagger of
  ``tests/wd14_standin.py`` (v3 names and shapes: ``input`` [batch, 448, 448, 3], ``output``).
- ``checkpoints/v1-5-pruned-emaonly.safetensors`` and ``checkpoints/lf_tiny_sd15.safetensors``: the
  tiny SD1.5-shaped checkpoint of ``tests/comfy_checkpoints.py`` (tiny UNet, full-size random
  CLIP-L, TAESD as VAE), built with ComfyUI's own classes by ComfyUI's Python; its UNet keeps
  attention only in the input block (``LIGHT_UNET``), to sample 512 px in reasonable time on a CPU.
- ``loras/lf_character.safetensors``, ``lf_background``, ``lf_pose``: kohya-format SD1.5 LoRAs
  written like ``tests/test_compose_comfyui.py`` writes them.

``trainer_standin`` writes a fake sd-scripts (``tests/fixtures_fake_trainer.py``) and the
``trainer.json`` that points a ComfyUI user folder at it, so a training node finishes too.

Import is light (no torch): the list of files is checked in CI against the workflows.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
DWPOSE_SIZE = (288, 384)  # (width, height): DWPose's dw-ll_ucoco_384 input
DWPOSE_KEYPOINTS = 133  # COCO-WholeBody; the pack's pose rules read the first 17 (body)
SD15_CHECKPOINTS = ("v1-5-pruned-emaonly.safetensors", "lf_tiny_sd15.safetensors")
LORAS = ("lf_character.safetensors", "lf_background.safetensors", "lf_pose.safetensors")

# folder under models/ -> file names the example workflows ask for
STANDIN_FILES: dict[str, tuple[str, ...]] = {
    "sam2": ("sam2.1_hiera_tiny.pt",),
    "lama": ("big-lama.pt",),
    "open_clip": ("ViT-B-32__laion2b_s34b_b79k.safetensors",),
    "facedetection": ("detection_Resnet50_Final.pth",),
    "rtmpose": ("dw-ll_ucoco_384.onnx",),
    "wd14": ("wd-vit-tagger-v3/model.onnx",),
    "checkpoints": SD15_CHECKPOINTS,
    "loras": LORAS,
}


def _test_module(name: str) -> Any:
    """A unit-test module of ``tests/`` (its builders), imported by name as pytest does."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    return importlib.import_module(name)


def _save_safetensors(state: dict[str, Any], path: Path, dtype: Any = None) -> None:
    from safetensors.torch import save_file

    save_file({k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
               for k, v in state.items()}, str(path))


def build_sam2(folder: Path) -> None:
    """Built like ``tests/test_sam2_standin.py`` builds its stand-in, without its shrinking overrides:
    the loader builds the network from the config the file name implies, with nothing changed."""
    import torch
    from sam2.build_sam import build_sam2

    from lora_foundry.models.sam2_model import config_for_file

    (name,) = STANDIN_FILES["sam2"]
    if config_for_file(name) != SAM2_CONFIG:
        raise RuntimeError(f"the loader builds {name} with {config_for_file(name)}, not {SAM2_CONFIG}")
    torch.manual_seed(0)
    model = build_sam2(SAM2_CONFIG, None, device="cpu")
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, folder / name)


def build_lama(folder: Path) -> None:
    _test_module("test_lama_standin").save_lama_standin(folder, STANDIN_FILES["lama"][0])


def build_open_clip(folder: Path) -> None:
    import open_clip
    import torch

    (name,) = STANDIN_FILES["open_clip"]
    torch.manual_seed(0)
    model = open_clip.create_model(name.split("__")[0], pretrained=None)
    folder.mkdir(parents=True, exist_ok=True)
    _save_safetensors(model.state_dict(), folder / name, torch.float16)


def build_retinaface(folder: Path) -> None:
    import torch
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, folder / STANDIN_FILES["facedetection"][0])


def build_dwpose(folder: Path) -> None:
    pose = _test_module("test_pose_standin")
    saved, pose.K = pose.K, DWPOSE_KEYPOINTS  # the builder's keypoint count is a module constant
    try:
        pose.save_tiny_rtmpose(folder / STANDIN_FILES["rtmpose"][0], size=DWPOSE_SIZE)
    finally:
        pose.K = saved


def build_wd14(folder: Path) -> None:
    """The scripted WD14 tagger, in Hugging Face's layout (a folder with model.onnx and its CSV)."""
    (name,) = STANDIN_FILES["wd14"]
    _test_module("wd14_standin").save_wd14_standin(folder / name)


def build_loras(folder: Path) -> None:
    """The compose test's LoRAs (same modules, seeds, ranks and metadata)."""
    from lora_foundry.lora.synthetic import SD15_MODULES, SD15_TE_MODULES, write_kohya_lora

    write_kohya_lora(folder / "lf_character.safetensors", {**SD15_MODULES, **SD15_TE_MODULES}, seed=1,
                     metadata={"lora_foundry.trigger": "alice_lf", "ss_base_model_version": "sd_v1"})
    write_kohya_lora(folder / "lf_background.safetensors", SD15_MODULES, seed=2,
                     metadata={"lora_foundry.trigger": "park_bg"})
    write_kohya_lora(folder / "lf_pose.safetensors", SD15_MODULES, rank=8, alpha=4, seed=3,
                     tags={"5_pose": {"arms_up_pose": 10, "standing": 10}})


# The compose test's UNet has attention in its input, middle and output blocks, all at the latent's
# full size (4096 tokens at 512 px): ~27 s per sampling step on 2 CPU cores, so the 20-step 512 px
# workflows took 9-14 min each and the six-image weight sweep over an hour. Kept here: the input
# block's attention and res block (what the LoRAs patch, and what ComfyUI reads context_dim from
# to detect SD1.5); dropped: the middle block and the output blocks' attention (~3x faster).
COMPOSE_UNET = "transformer_depth=[1], transformer_depth_middle=1, transformer_depth_output=[1, 1]"
LIGHT_UNET = "transformer_depth=[1], transformer_depth_middle=-2, transformer_depth_output=[0, 0]"


def checkpoint_script() -> str:
    """The compose test's checkpoint builder (tiny UNet, random CLIP-L, TAESD), lighter UNet."""
    script = _test_module("comfy_checkpoints").SD15_SCRIPT
    if COMPOSE_UNET not in script:
        raise RuntimeError("tests/comfy_checkpoints.py SD15_SCRIPT changed: update COMPOSE_UNET")
    return script.replace(COMPOSE_UNET, LIGHT_UNET)


def build_checkpoints(folder: Path, comfy_dir: Path, comfy_python: Path) -> None:
    """A tiny SD1.5 checkpoint built by ComfyUI's Python with ComfyUI's classes (ComfyUI detects it
    as SD1.5), linked under every checkpoint name the workflows use."""
    script = checkpoint_script()
    folder.mkdir(parents=True, exist_ok=True)
    first, *others = SD15_CHECKPOINTS
    subprocess.run([str(comfy_python), "-c", script, str(folder / first)], check=True, timeout=900,
                   env={**os.environ, "COMFYUI_DIR": str(comfy_dir)}, cwd=comfy_dir)
    for name in others:
        try:
            os.link(folder / first, folder / name)
        except OSError:
            shutil.copyfile(folder / first, folder / name)


def install_standins(models_dir: Path, *, comfy_dir: Path | None = None, comfy_python: Path | None = None,
                     log: Callable[[str], None] | None = None) -> dict[str, list[str]]:
    """Write every stand-in under ``models_dir/<folder>/`` (files already there are kept) and return
    ``{folder: [file names]}``. The checkpoints need ComfyUI: ``comfy_dir`` (default
    ``$COMFYUI_DIR``) and its Python (default ``$COMFYUI_PYTHON``, else ``<comfy_dir>/venv/bin/python``).
    Everything else is built by this interpreter (torch, sam2, open_clip, facexlib, onnx)."""
    models_dir = Path(models_dir)
    comfy_dir = Path(comfy_dir or os.environ.get("COMFYUI_DIR") or "")
    comfy_python = Path(comfy_python or os.environ.get("COMFYUI_PYTHON") or comfy_dir / "venv" / "bin" / "python")
    builders: dict[str, Callable[[Path], None]] = {
        "sam2": build_sam2, "lama": build_lama, "open_clip": build_open_clip, "facedetection": build_retinaface,
        "rtmpose": build_dwpose, "wd14": build_wd14, "loras": build_loras,
        "checkpoints": lambda folder: build_checkpoints(folder, comfy_dir, comfy_python),
    }
    for folder, names in STANDIN_FILES.items():
        target = models_dir / folder
        if all((target / name).is_file() for name in names):
            continue
        if folder == "checkpoints" and not (comfy_dir / "comfy").is_dir():
            raise FileNotFoundError(f"the SD1.5 stand-in is built with ComfyUI's classes: {comfy_dir} is not ComfyUI")
        start = time.monotonic()
        builders[folder](target)
        missing = [name for name in names if not (target / name).is_file()]
        if missing:
            raise RuntimeError(f"stand-in builder for {folder} did not write {missing}")
        if log:
            log(f"stand-ins {folder}: {', '.join(names)} in {time.monotonic() - start:.1f} s")
    return {folder: list(names) for folder, names in STANDIN_FILES.items()}


def extra_model_paths_yaml(models_dir: Path, path: Path, new_loras: Path | None = None) -> Path:
    """An ``--extra-model-paths-config`` file adding ``models_dir/<folder>`` for every stand-in folder,
    and ``new_loras`` as ComfyUI's first (default) loras folder: a trained LoRA is published into
    the first one, which must not be the checkout's ``models/loras`` nor the reusable stand-ins."""
    lines = ["lora_foundry_standins:", f"  base_path: {json.dumps(str(Path(models_dir).resolve()))}"]
    lines += [f"  {folder}: {folder}" for folder in STANDIN_FILES]
    if new_loras is not None:
        lines += ["lora_foundry_trained:", f"  base_path: {json.dumps(str(Path(new_loras).resolve()))}",
                  "  loras: .", "  is_default: true"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# With stand-ins on a CPU, the evaluation's prompt matrix (dozens of 512 px renders per LoRA) is
# rendered small and short; the graph itself is unchanged (as test_compose_comfyui does for KSampler).
SMALL_RENDERS = {"width": 64, "height": 64, "steps": 2, "matrix_json": '{"strengths": [0, 0.5, 1], "seeds": [1]}'}
SMALL_STUDY = {"n_trials": 2, "checkpoints": 1, "search_space_json": '{"steps": [20, 40], "network_variant": "lora"}'}


def shrink_for_standins(prompt: dict) -> dict:
    """Render the evaluation and tuning nodes' cells small and short, and keep a study to two short
    trials with one intermediate evaluation each (in place; returns ``prompt``)."""
    for node in prompt.values():
        if node["class_type"] in ("LF_EvaluateLoRA", "LF_TuneTraining"):
            node["inputs"].update(SMALL_RENDERS)
        if node["class_type"] == "LF_TuneTraining":
            node["inputs"].update(SMALL_STUDY)
    return prompt


def trainer_standin(root: Path, user_dir: Path) -> Path:
    """A fake sd-scripts under ``root`` (it writes a LoRA file, like sd-scripts, in seconds) and
    ``<user_dir>/lora_foundry/trainer.json`` naming it, as an operator would. Returns that json."""
    fake = _test_module("fixtures_fake_trainer")
    fake.configure_operator(fake.make_fake_install(Path(root)), Path(user_dir))
    return Path(user_dir) / "lora_foundry" / "trainer.json"


def musubi_standin(root: Path, user_dir: Path) -> Path:
    """A fake musubi-tuner under ``root`` (its caching and training scripts print musubi's lines and
    write its cache files and a LoRA in seconds) and ``<user_dir>/lora_foundry/musubi.json`` naming it
    and placeholder model files, as an operator would. Returns that json."""
    install = _test_module("fixtures_fake_musubi").make_fake_musubi(Path(root))
    config = Path(user_dir) / "lora_foundry" / "musubi.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({
        "musubi_tuner": str(install.root), "python": str(install.python), "accelerate": False,
        "models": {preset: {role: str(path) for role, path in roles.items()} for preset, roles in install.models.items()},
    }), encoding="utf-8")
    return config


if __name__ == "__main__":  # python tests/integration/standins.py MODELS_DIR (with COMFYUI_DIR set)
    print(json.dumps(install_standins(Path(sys.argv[1]), log=print), indent=1))
