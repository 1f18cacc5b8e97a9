"""A stand-in for musubi-tuner's caching and training scripts, printing the lines the real ones print.

Taken from musubi-tuner (2026-06): caching scripts log ``Load dataset config from <toml>`` and
``Encoding dataset [i]`` (``logging.basicConfig(level=INFO)``, so ``INFO:<logger>:<message>``) and
iterate batches under a bare ``tqdm``; they write ``<item>_<WxH>_<arch>.safetensors`` latents and
``<item>_<arch>_te.safetensors`` text-encoder outputs into each dataset's ``cache_directory``
(``dataset/image_video_dataset.py``). Training (``training/trainer_base.py``) prints ``running
training / 学習開始``, draws ``tqdm(..., desc="steps")`` updated with ``progress_bar.update(1)`` and
then ``set_postfix(avr_loss=...)``, prints ``\\nsaving checkpoint: <file>`` and logs
``model saved.``; its LoRA carries ``ss_network_module``.

Modes (environment ``FAKE_MUSUBI_MODE``): ``ok``; ``latents_crash`` (the latent cache step dies
with a traceback); ``text_nocache`` (the text step exits 0 without writing a cache); ``slow``
(training stops before step 3 until it is stopped: cancel tests).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lora_foundry.musubi.install import PRESETS, MusubiInstall

COMMON = r'''
import glob, json, os, sys, time, tomllib
args = sys.argv[1:]
def arg(name, default=None):
    return args[args.index(name) + 1] if name in args else default
mode = os.environ.get("FAKE_MUSUBI_MODE", "ok")
config_path = arg("--dataset_config")
print(f"INFO:__main__:Load dataset config from {config_path}", flush=True)
config = tomllib.load(open(config_path, "rb"))
videos = []
for dataset in config["datasets"]:
    if "video_directory" in dataset:
        for path in sorted(glob.glob(os.path.join(dataset["video_directory"], "*.mp4"))):
            videos.append((dataset["cache_directory"], os.path.splitext(os.path.basename(path))[0]))
'''

CACHE = COMMON + r'''
arch = "@ARCH@"
text = @TEXT@
if mode == "latents_crash" and not text:
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
print("INFO:__main__:Encoding dataset [0]", flush=True)
for done, (cache, stem) in enumerate(videos, start=1):
    os.makedirs(cache, exist_ok=True)
    name = f"{stem}_00000-061_{arch}_te.safetensors" if text else f"{stem}_00000-061_0640x0352_{arch}.safetensors"
    if not (text and mode == "text_nocache"):
        open(os.path.join(cache, name), "wb").write(b"fake cache")
    sys.stderr.write(f"\r{done}it [00:0{done % 10}, 2.00it/s]")
sys.stderr.write("\n")
'''

TRAIN = COMMON + r'''
import numpy as np
from safetensors.numpy import save_file
out_dir, name = arg("--output_dir"), arg("--output_name")
epochs = int(arg("--max_train_epochs"))
total = len(videos) * epochs
print("running training / 学習開始", flush=True)
def bar(step, postfix):
    filled = "\u2588" * (10 * step // total)
    timing = "00:00<?, ?it/s" if not step else f"00:{step:02d}<00:{total - step:02d},  1.00s/it"
    return f"\rsteps: {100 * step // total:3d}%|{filled:<10}| {step}/{total} [{timing}{postfix}]"
postfix = ""
sys.stderr.write(bar(0, ""))
for step in range(1, total + 1):
    while mode == "slow" and step == 3:  # held here until the launcher cancels the run
        time.sleep(0.01)
    sys.stderr.write(bar(step, postfix))  # progress_bar.update(1): the previous step's avr_loss
    postfix = f", avr_loss={1.0 / step:.3g}"
    sys.stderr.write(bar(step, postfix))  # set_postfix(avr_loss=...)
    sys.stderr.flush()
path = os.path.join(out_dir, name + ".safetensors")
print(f"\nsaving checkpoint: {path}", flush=True)
save_file({"lora_unet_blocks_0_self_attn_q.lora_down.weight": np.zeros((4, 8), np.float32)}, path,
          metadata={"ss_network_module": arg("--network_module"), "ss_output_name": name})
print("INFO:musubi_tuner.training.trainer_base:model saved.", flush=True)
'''


def make_fake_musubi(root: Path) -> MusubiInstall:
    """A fake musubi-tuner checkout (every preset's three scripts) run by this Python, no accelerate,
    with placeholder model files for every preset."""
    scripts = root / "musubi-tuner" / "src" / "musubi_tuner"
    scripts.mkdir(parents=True, exist_ok=True)
    models: dict[str, dict[str, Path]] = {}
    for preset in PRESETS.values():
        arch = preset.architecture
        (scripts / preset.cache_latents).write_text(CACHE.replace("@ARCH@", arch).replace("@TEXT@", "False"), encoding="utf-8")
        (scripts / preset.cache_text).write_text(CACHE.replace("@ARCH@", arch).replace("@TEXT@", "True"), encoding="utf-8")
        (scripts / preset.train).write_text(TRAIN, encoding="utf-8")
        roles = (*preset.latent_models, *preset.text_models, *preset.train_models)
        models[preset.name] = {role: root / "models" / f"{preset.name}_{role}.safetensors" for role in roles}
        for path in models[preset.name].values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"placeholder")
    return MusubiInstall(root / "musubi-tuner", Path(sys.executable), accelerate=False, models=models,
                         source="test")
