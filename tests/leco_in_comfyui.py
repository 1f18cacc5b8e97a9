"""Run inside ComfyUI's Python (tests/test_leco_comfyui.py starts it): LF Train LECO through the real
ComfyUI glue on the tiny SD1.5-detected checkpoint, then the checks of the "Must show" list, measured
with ComfyUI's own LoraLoader on the saved files. Prints one JSON line of measurements.

argv: COMFYUI_DIR, the pack's folder, the tiny checkpoint, a work folder, and optionally ``sdxl``: then
only a short erase run on the tiny SDXL-detected checkpoint (its loss, LoraLoader's missing keys, the
saved key names); or ``memory on|off [resolution]``: the peak RSS growth of 3 training steps with
gradient checkpointing on or off (one setting per process, so one run's freed memory never hides the other's);
or ``parity``: upstream's docs TOML with ``neutral_prompt_file`` (the file in ComfyUI's input folder)
through LF Train LECO with ``denoise_gradients`` off and on, and the ``dynamic_crops`` refusal.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
from pathlib import Path

COMFY, PACK, CKPT, WORK = (Path(a) for a in sys.argv[1:5])
MODE = sys.argv[5] if len(sys.argv) > 5 else "sd15"
sys.path.insert(0, str(COMFY))
from comfy.cli_args import args  # noqa: E402

args.cpu = True
import comfy.model_management  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # a shared CPU: more threads only spin
LORAS = WORK / "loras"
LORAS.mkdir(parents=True, exist_ok=True)
folder_paths.folder_names_and_paths["loras"] = ([str(LORAS)], {".safetensors"})
spec = importlib.util.spec_from_file_location("lf_pack", PACK / "__init__.py", submodule_search_locations=[str(PACK)])
pack = importlib.util.module_from_spec(spec)
sys.modules["lf_pack"] = pack
spec.loader.exec_module(pack)
from lf_pack.lora_foundry.leco import train, weight_network  # noqa: E402
from lf_pack.lora_foundry.leco.prompts import parse_prompt_text  # noqa: E402
from lf_pack.nodes import _comfy_leco, compose, leco  # noqa: E402


class KeyWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "lora key not loaded" in record.getMessage()


WARNINGS = KeyWarnings()
logging.getLogger().addHandler(WARNINGS)
with torch.inference_mode():  # as ComfyUI's executor loads it
    MODEL, CLIP, _, _ = comfy.sd.load_checkpoint_guess_config(str(CKPT), output_vae=False, output_clip=True)

ERASE = '[[prompts]]\ntarget = "red car"\naction = "erase"\nguidance_scale = 2.0\nresolution = 64\n'
SLIDER = '[[prompts]]\ntarget_class = "person"\npositive = "old wrinkled"\nnegative = "young smooth"\n' \
         'guidance_scale = 2.0\nresolution = 64\n'
COMMON = dict(learning_rate=3e-4, rank=4, alpha=4.0, max_denoising_steps=4, denoise_guidance=3.0, seed=0,
              overwrite=False, dtype="fp32")


def train_node(toml: str, name: str, steps: int, save_every: int = 10, resume: bool = True,
               checkpointing: bool = True) -> tuple[str, str]:
    with torch.inference_mode():
        out = leco.TrainLECO().train(MODEL, CLIP, toml, name, steps, save_every=save_every, resume=resume,
                                     gradient_checkpointing=checkpointing, unique_id="7", **COMMON)
    return out["result"][1], out["result"][2]


def with_lora(lora_name: str, strength: float):
    state = comfy.utils.load_torch_file(str(LORAS / lora_name), safe_load=True)
    before = WARNINGS.count
    model, _ = comfy.sd.load_lora_for_models(MODEL, CLIP, state, strength, 0.0)
    return model, WARNINGS.count - before


def predictions(model, prompts: list[str], seed: int, setting_prompt: str) -> dict[str, torch.Tensor]:
    """Partial denoise with the base model (LoRA off), then each prompt's noise prediction by ``model``."""
    conds = _comfy_leco.encode_prompts(CLIP, prompts + [setting_prompt, ""])
    base = _comfy_leco.ComfyBackend(MODEL, conds, lambda: None)
    sigmas = base.sigmas(4)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed))

    def start(p):
        with torch.no_grad():
            x = p.denoise(p.initial_latents(noise, sigmas[0]), sigmas[:3], setting_prompt, "", 3.0)
        return x

    x = base.run((1, 4, 8, 8), start)
    backend = _comfy_leco.ComfyBackend(model, conds, lambda: None)

    def predict(p):
        with torch.no_grad():
            return {prompt: p.predict_noise(x, sigmas[2], prompt).cpu() for prompt in prompts}

    return backend.run((1, 4, 8, 8), predict)


def erase_checks() -> dict:
    started = time.monotonic()
    lora_name, report = train_node(ERASE, "erase_red_car", 30)
    seconds = time.monotonic() - started
    (setting,) = parse_prompt_text(ERASE)
    lora_model, missing = with_lora(lora_name, 1.0)
    ratios = []
    for seed in range(3):
        off = predictions(MODEL, list(dict.fromkeys(setting.prompts())), 100 + seed, setting.target)
        target = train.build_target(setting, off[setting.positive], off[setting.neutral], off[setting.unconditional])
        on = predictions(lora_model, [setting.target], 100 + seed, setting.target)[setting.target]
        ratios.append(float(((on - target) ** 2).mean() / ((off[setting.target] - target) ** 2).mean()))
    info = compose.LoRAInfo().info(lora_name)["result"][0]
    return {"report": report, "seconds": seconds, "ratios": ratios, "key_not_loaded": missing, "info": info}


def slider_checks() -> dict:
    lora_name, report = train_node(SLIDER, "age_slider", 30, save_every=0)
    plus_model, missing = with_lora(lora_name, 1.0)
    minus_model, _ = with_lora(lora_name, -1.0)
    plus, minus = [], []
    for seed in range(3):
        off = predictions(MODEL, ["old wrinkled", "young smooth", "person"], 200 + seed, "person")
        unit = (off["old wrinkled"] - off["young smooth"]).flatten()
        unit = unit / unit.norm()
        for model, out in ((plus_model, plus), (minus_model, minus)):
            moved = predictions(model, ["person"], 200 + seed, "person")["person"] - off["person"]
            out.append(float(moved.flatten() @ unit))
    return {"report": report, "plus": plus, "minus": minus, "key_not_loaded": missing}


def cancel_and_resume() -> dict:
    folder = LORAS / "lora_foundry" / "cancel_me_checkpoints"
    outcome: dict = {}

    def press_cancel() -> None:
        while not (folder / "cancel_me-step000005.safetensors").exists():
            time.sleep(0.05)
        outcome["asked"] = time.monotonic()
        comfy.model_management.interrupt_current_processing(True)

    watcher = threading.Thread(target=press_cancel)
    watcher.start()
    try:
        train_node(ERASE, "cancel_me", 200, save_every=5)
    except comfy.model_management.InterruptProcessingException:
        outcome["returned_after_s"] = time.monotonic() - outcome["asked"]
    watcher.join()
    comfy.model_management.interrupt_current_processing(False)
    outcome["kept"] = sorted(p.name for p in folder.glob("*.safetensors"))
    _, report = train_node(ERASE, "cancel_me", 8, save_every=5)
    outcome["resume_report"] = report
    return outcome


def sdxl_checks() -> dict:
    """A short erase run on SDXL: the loss, the file's key names and what LoraLoader makes of them."""
    started = time.monotonic()
    lora_name, report = train_node(ERASE, "erase_red_car_sdxl", 10)
    seconds = time.monotonic() - started
    keys = sorted(comfy.utils.load_torch_file(str(LORAS / lora_name), safe_load=True))
    _, missing = with_lora(lora_name, 1.0)
    return {"report": report, "seconds": seconds, "keys": keys, "key_not_loaded": missing,
            "detected": type(MODEL.model.model_config).__name__}


def parity_checks() -> dict:
    """sd-scripts docs/train_leco.md 2.3's neutral-file slider (at 64 px) through the node, both gradient
    settings: settings count, losses, LoraLoader's missing keys; and a dynamic_crops set refused."""
    folder_paths.set_input_directory(str(WORK / "input"))
    (WORK / "input").mkdir(exist_ok=True)
    (WORK / "input" / "neutrals.txt").write_text("a photo\nstudio portrait\n", encoding="utf-8")
    toml = ('neutral_prompt_file = "neutrals.txt"\nresolution = 64\n\n[[targets]]\ntarget_class = ""\n'
            'positive = "high detail"\nnegative = "low detail"\n')
    out = {}
    for gradients in (False, True):
        with torch.inference_mode():
            result = leco.TrainLECO().train(MODEL, CLIP, toml, f"docs_slider_{gradients}", 3, save_every=0,
                                            resume=False, gradient_checkpointing=True, unique_id="7",
                                            denoise_gradients=gradients, **COMMON)
        lora_name, report = result["result"][1], result["result"][2]
        _, missing = with_lora(lora_name, 1.0)
        out[str(gradients)] = {"report": report, "key_not_loaded": missing}
    try:
        with torch.inference_mode():
            leco.TrainLECO().train(MODEL, CLIP, toml.replace("resolution = 64", "resolution = 64\ndynamic_crops = true"),
                                   "crops", 1, save_every=0, resume=False, unique_id="7", **COMMON)
        out["dynamic_crops"] = "trained"
    except ValueError as exc:
        out["dynamic_crops"] = str(exc)
    return out


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def memory_checks(checkpointing: bool, resolution: int) -> dict:
    """Peak resident memory added while training, sampled every 5 ms from /proc/self/statm."""
    with weight_network.training_mode():  # the one-time swap of inference-mode weights is not training memory
        _comfy_leco.lora_network(MODEL, 4, 4.0, 0)
    peak, done = [_rss()], threading.Event()
    before = peak[0]

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        toml = ERASE.replace("resolution = 64", f"resolution = {resolution}")
        _, report = train_node(toml, "memory", 3, save_every=0, checkpointing=checkpointing)
    finally:
        done.set()
        sampler.join()
    patched = [m for m in MODEL.model.diffusion_model.modules()
               if getattr(m.forward, "__func__", None) is not type(m).forward]
    return {"peak_growth_mb": (peak[0] - before) / 2**20, "seconds": time.monotonic() - started, "report": report,
            "blocks_left_patched": len(patched)}


if MODE == "memory":
    print(json.dumps({"memory": memory_checks(sys.argv[6] == "on", int(sys.argv[7]) if len(sys.argv) > 7 else 64)}))
elif MODE == "parity":
    print(json.dumps({"parity": parity_checks()}))
elif MODE == "sdxl":
    print(json.dumps({"sdxl": sdxl_checks()}))
else:
    print(json.dumps({"erase": erase_checks(), "slider": slider_checks(), "cancel": cancel_and_resume()}))
