"""A stand-in for sd-scripts that the tests write into a fake sd-scripts folder and run with the
real Python: it reads the generated ``--config_file`` TOML like sd-scripts does, prints
sd-scripts-style progress to stderr redrawn with ``\\r``, obeys SIGINT/SIGTERM, writes a
safetensors LoRA with ``ss_*`` metadata, or fails the ways sd-scripts fails.

Modes (environment ``FAKE_MODE``): ``ok``; ``nofile`` (exit 0, no LoRA: sd-scripts on an empty
dataset); ``crash`` (traceback and exit 1 half-way); ``hang`` (ignores SIGINT/SIGTERM and starts a
child that does too: only SIGKILL of the whole group ends it); ``badmeta`` (a LoRA without the
metadata we asked for); ``slow`` (like ok, but slower steps, for cancel tests).

``FAKE_HOLD=<file>``: the run named in that file, half-way (after its mid checkpoint and one
more step), writes ``held`` beside ``trainer.pid`` and then waits silently until it is signalled, as
sd-scripts does while it loads models or caches latents (a trainer that prints would die of a broken
pipe once its parent is gone; a silent one outlives it). A gate for kill tests: no timing involved.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from lora_foundry.kohya.operator_config import TrainerInstall

FAKE_TRAINER = r'''
import json, os, signal, subprocess, sys, time, tomllib
import numpy as np
from safetensors.numpy import save_file

mode = os.environ.get("FAKE_MODE", "ok")
args = sys.argv[1:]
config_path = args[args.index("--config_file") + 1]
cfg = {}
for section in tomllib.load(open(config_path, "rb")).values():
    cfg.update(section if isinstance(section, dict) else {})
out_dir, name = cfg["output_dir"], cfg["output_name"]
total = int(cfg["max_train_steps"])
every = int(cfg.get("save_every_n_steps", 0))
step_s = float(os.environ.get("FAKE_STEP_S", "0.02"))
with open(os.path.join(out_dir, "trainer.pid"), "w") as f:
    f.write(str(os.getpid()))
print("prepare tokenizers", flush=True)
print(f"Loading settings from {config_path}...", flush=True)

def write_lora(path, metadata):
    tensors = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": np.zeros((4, 8), np.float32)}
    save_file(tensors, path, metadata=metadata)

def metadata():
    if mode == "badmeta":
        return {"ss_network_module": "something.else"}
    return {"ss_network_module": cfg["network_module"], "ss_network_dim": str(cfg["network_dim"]),
            "ss_network_alpha": str(cfg["network_alpha"]), "ss_output_name": name,
            "ss_learning_rate": str(cfg["learning_rate"])}

if mode == "nofile":
    print("No data found. Please verify arguments (train_data_dir must be the parent of folders with images)", flush=True)
    sys.exit(0)
if mode == "hang":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    with open(os.path.join(out_dir, "child.pid"), "w") as f:
        f.write(str(child.pid))
if mode == "slow":
    step_s = 0.5

def bar(step, elapsed, postfix):
    # tqdm's own layout; like sd-scripts' bar, postfix values are tqdm.format_num'd ('{:.3g}')
    rate = elapsed / step if step else 0.0
    filled = "\u2588" * (10 * step // total)
    timing = f"{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}<00:{int(rate * (total - step)):02d}, {rate:5.2f}s/it"
    if not step:
        timing = "00:00<?, ?it/s"
    return f"\rsteps: {100 * step // total:3d}%|{filled:<10}| {step}/{total} [{timing}{postfix}]"

start = time.monotonic()
postfix = ""
sys.stderr.write(bar(0, 0.0, ""))
for step in range(1, total + 1):
    time.sleep(step_s)
    if mode == "crash" and step == total // 2:
        raise RuntimeError("CUDA out of memory (fake)")
    # sd-scripts: progress_bar.update(1) redraws with the PREVIOUS step's avr_loss ...
    sys.stderr.write(bar(step, time.monotonic() - start, postfix))
    sys.stderr.flush()
    if every and step % every == 0 and step < total:
        path = os.path.join(out_dir, f"{name}-step{step:08d}.safetensors")
        print(f"\nsaving checkpoint: {path}", flush=True)
        write_lora(path, metadata())
    # ... then set_postfix(avr_loss=...) redraws with this step's value.
    postfix = f", avr_loss={1.0 / step:.3g}"
    sys.stderr.write(bar(step, time.monotonic() - start, postfix))
    sys.stderr.flush()
    if mode == "hang" and step == 2:
        while True:
            time.sleep(1)
    hold = os.environ.get("FAKE_HOLD")
    if hold and step == total // 2 + 1 and os.path.isfile(hold) and open(hold).read().strip() == name:
        open(os.path.join(out_dir, "held"), "w").close()
        while True:
            time.sleep(1)
sys.stderr.write("\n")
path = os.path.join(out_dir, name + ".safetensors")
print(f"\nsaving checkpoint: {path}", flush=True)
write_lora(path, metadata())
print("model saved.", flush=True)
'''


def make_fake_install(root: Path, tokenizers: tuple[str, ...] = ("openai_clip-vit-large-patch14",)) -> TrainerInstall:
    """A fake sd-scripts folder whose training scripts are the stand-in, run by this Python."""
    sd_scripts = root / "sd-scripts"
    sd_scripts.mkdir(parents=True, exist_ok=True)
    for script in ("train_network.py", "sdxl_train_network.py", "flux_train_network.py", "sd3_train_network.py"):
        (sd_scripts / script).write_text(FAKE_TRAINER, encoding="utf-8")
    cache = root / "tokenizer_cache"
    for folder in tokenizers:
        write_tokenizer_files(cache / folder)
    return TrainerInstall(sd_scripts_dir=sd_scripts, python=Path(sys.executable), tokenizer_cache_dir=cache,
                          source="test")


def configure_operator(install: TrainerInstall, user_root: Path) -> None:
    """The operator's ``trainer.json`` naming ``install``, where ``operator_config`` reads it:
    ``<ComfyUI user folder>/lora_foundry/`` (without ComfyUI, ``<output root>/.user``)."""
    user_dir = user_root / "lora_foundry"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "trainer.json").write_text(json.dumps({
        "sd_scripts": str(install.sd_scripts_dir), "python": str(install.python),
        "tokenizer_cache_dir": str(install.tokenizer_cache_dir)}))


def training_setup(tmp_path: Path, output_root: Path) -> tuple[TrainerInstall, Path, Path, Path, Path]:
    """A fake install, a 4-image dataset in the writer's layout, a base model, and the run and LoRA
    output folders: what a launcher test trains with."""
    install = make_fake_install(tmp_path / "kohya")
    dataset = make_dataset(tmp_path / "dataset")
    base = make_base_model(tmp_path / "models" / "checkpoints")
    return install, dataset, base, output_root / "training", output_root / "loras"


def ctrl_c_at(proc: subprocess.Popen, prefix: str) -> str:
    """Everything a CLI process prints (stdout with stderr merged), pressing Ctrl+C (SIGINT) when a
    line starts with ``prefix``; waits for the process to end."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(prefix):
            proc.send_signal(signal.SIGINT)
            break
    return "".join(lines) + proc.communicate(timeout=60)[0]


def write_tokenizer_files(folder: Path) -> None:
    """The files sd-scripts' tokenizers read, with placeholder content (the stand-in never reads them)."""
    folder.mkdir(parents=True, exist_ok=True)
    if "t5" in folder.name:
        (folder / "spiece.model").write_bytes(b"placeholder sentencepiece model")
    else:
        (folder / "vocab.json").write_text('{"a</w>": 0}', encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def make_dataset(root: Path, images: int = 4, trigger: str = "ohwx", class_word: str = "person") -> Path:
    """A dataset in the writer's layout: ``dataset.toml`` + ``<N>_<trigger> <class>/`` images with
    ``.txt`` captions (tiny PNGs written with Pillow)."""
    from PIL import Image

    subset = root / f"10_{trigger} {class_word}"
    subset.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.new("RGB", (64, 64), (40 * i % 255, 90, 160)).save(subset / f"{i:05d}.png")
        (subset / f"{i:05d}.txt").write_text(f"{trigger}, {class_word}\n", encoding="utf-8")
    (root / "dataset.toml").write_text(
        '[general]\ncaption_extension = ".txt"\nkeep_tokens = 1\n\n[[datasets]]\nresolution = 512\n'
        f'batch_size = 1\nenable_bucket = true\n\n[[datasets.subsets]]\nimage_dir = "{subset.name}"\n'
        f'num_repeats = 10\nclass_tokens = "{trigger} {class_word}"\n',
        encoding="utf-8",
    )
    return root


def make_base_model(folder: Path, name: str = "base.safetensors") -> Path:
    """A stand-in base model file in a 'checkpoints' folder (the trainer never opens it)."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({"w": np.zeros(1, np.float32)}, str(folder / name))
    return folder / name


# The stand-in as kohya's train_leco.py / sdxl_train_leco.py (063ef100): it prints what their loop
# prints, as tests/data/sd_scripts_leco_output.json captured it from upstream's own calls rendered by
# tqdm and rich: the bar's postfix is ``loss=0.1234`` (set_postfix after update(1), which tqdm redraws
# only 0.1 s after the last redraw), and every LoRA file is a Rich log record, ``saved model to:``,
# 80 columns wide with the path folded onto further lines, written straight after the bar (tqdm ends
# its redraws with \r only). Like upstream's loader it reads neutral prompt files beside the prompt
# TOML, and like its tokenizer load offline it fails when ``tokenizer_cache_dir`` is missing.
FAKE_LECO = r"""
import json, os, sys, time, tomllib
import numpy as np
from safetensors.numpy import save_file

mode = os.environ.get("FAKE_MODE", "ok")
args = sys.argv[1:]
if "--prompts_file" not in args:  # upstream: parser.add_argument("--prompts_file", ..., required=True)
    sys.stderr.write("train_leco.py: error: the following arguments are required: --prompts_file\n")
    sys.exit(2)
config_path = args[args.index("--config_file") + 1]
cfg = {}
for section in tomllib.load(open(config_path, "rb")).values():
    cfg.update(section if isinstance(section, dict) else {})
cfg["prompts_file"] = args[args.index("--prompts_file") + 1]  # the command line wins, as in sd-scripts
out_dir, name = cfg["output_dir"], cfg["output_name"]
total, every = int(cfg["max_train_steps"]), int(cfg.get("save_every_n_steps", 0))
step_s = float(os.environ.get("FAKE_STEP_S", "0.5" if mode == "slow" else "0.01"))
with open(os.path.join(out_dir, "trainer.pid"), "w") as f:
    f.write(str(os.getpid()))
last_stamp = [None]

def record(message, source):
    # rich.logging.RichHandler on a pipe: time (19) + level (8) + message + source, 80 columns.
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    shown, last_stamp[0] = (" " * 19 if stamp == last_stamp[0] else stamp), stamp
    width = 80 - 29 - len(source) - 1
    rows, row = [], ""
    for word in message.split(" "):
        if row and len(row) + 1 + len(word) <= width:
            row += " " + word
            continue
        if row:
            rows.append(row)
        while len(word) > width:
            rows.append(word[:width])
            word = word[width:]
        row = word
    rows.append(row)
    lines = [f"{shown} INFO     {rows[0]:<{width}} {source}"]
    lines += [" " * 29 + f"{r:<{width}}" + " " * (len(source) + 1) for r in rows[1:]]
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()

prompts_path = cfg["prompts_file"]
prompts = tomllib.load(open(prompts_path, "rb"))
tables = [prompts.get("slider", prompts)] + list(prompts.get("slider", prompts).get("targets", []))
for table in tables:
    for key in ("neutral_prompt_file", "prompt_file"):
        if key in table:
            open(os.path.join(os.path.dirname(prompts_path), table[key]), encoding="utf-8").read()
count = max(1, len(prompts.get("prompts", [])) + 4 * len(prompts.get("targets", [])))
record(f"loaded {count} LECO prompt settings from {prompts_path}", "train_leco.py:117")
cache = cfg.get("tokenizer_cache_dir")
if not cache or not os.path.isdir(cache):
    sys.stderr.write("OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't "
                     "find them in the cached files.\n")
    sys.exit(1)
if mode == "nofile":
    sys.exit(0)

def bar(step, elapsed, postfix):
    rate = step / elapsed if elapsed else 0.0
    blocks = " " + "".join(map(chr, range(0x258F, 0x2587, -1)))  # tqdm's unicode bar: 1/8 steps
    full, part = divmod(int(step / total * 10 * 8), 8)
    filled = blocks[-1] * full + (blocks[part] if full < 10 else "")
    timing = f"00:{int(elapsed) % 60:02d}<00:00, {rate:5.2f}it/s" if step else "00:00<?, ?it/s"
    sys.stderr.write(f"\rsteps: {100 * step / total:3.0f}%|{filled:<10}| {step}/{total} [{timing}{postfix}]")
    sys.stderr.flush()

def save(path):
    metadata = {"ss_network_module": cfg["network_module"], "ss_network_dim": str(cfg["network_dim"]),
                "ss_network_alpha": str(cfg["network_alpha"]), "ss_leco_prompt_count": str(count),
                "ss_leco_prompts_file": os.path.basename(prompts_path), "ss_leco_preview": "[]"}
    if mode == "badmeta":
        metadata.pop("ss_leco_prompts_file")
    tensors = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": np.zeros((4, 8), np.float32)}
    save_file(tensors, path, metadata=metadata)
    record(f"saved model to: {path}", "leco_train_util.py:91")

start = last_draw = time.monotonic()
postfix = ""
bar(0, 0.0, "")
for step in range(1, total + 1):
    time.sleep(step_s)
    if mode == "crash" and step == total // 2:
        raise RuntimeError("CUDA out of memory (fake)")
    now = time.monotonic()
    if now - last_draw >= 0.1:  # progress_bar.update(1): redrawn with the previous step's loss
        bar(step, now - start, postfix)
    postfix = f", loss={0.5 / step:.4f}"
    bar(step, now - start, postfix)  # progress_bar.set_postfix(loss=f"{loss:.4f}")
    last_draw = time.monotonic()
    if every and step % every == 0 and step < total:
        save(os.path.join(out_dir, f"{name}-step{step:08d}.safetensors"))
save(os.path.join(out_dir, name + ".safetensors"))
bar(total, time.monotonic() - start, postfix)
sys.stderr.write("\n")
"""


def add_leco_scripts(install: TrainerInstall) -> TrainerInstall:
    """Make a fake sd-scripts look new enough for LECO (train_leco.py and sdxl_train_leco.py)."""
    for script in ("train_leco.py", "sdxl_train_leco.py"):
        (install.sd_scripts_dir / script).write_text(FAKE_LECO, encoding="utf-8")
    return install
