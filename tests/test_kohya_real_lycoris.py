"""Real sd-scripts: LoHa and LoKr train through the launcher on the tiny SD1.5-family model, the
loss CSV equals the last avr_loss sd-scripts printed for each step, and (with ``COMFYUI_DIR``)
ComfyUI loads each LoRA with no "lora key not loaded".

Skipped unless ``KOHYA_SD_SCRIPTS`` names an sd-scripts checkout whose venv has lycoris-lora 3.4.0
(docs/training.md, scripts/check_training_docs.sh). Assets come from tests/kohya_real_assets.py.
``LF_KEEP_REAL_LOG=DIR`` copies each run's console log there (a captured real log).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures_fake_trainer import make_dataset

from lora_foundry.kohya import train_config
from lora_foundry.kohya.operator_config import load_trainer_install
from lora_foundry.kohya.presets import get_preset
from lora_foundry.kohya.training import train_lora

pytestmark = pytest.mark.skipif(not os.environ.get("KOHYA_SD_SCRIPTS"), reason="real sd-scripts: set KOHYA_SD_SCRIPTS")
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
BAR = re.compile(r"(\d+)/(\d+) \[[^\]]*?(?:avr_)?loss=([0-9.e+-]+)\]")  # LECO prints loss=

LOAD_IN_COMFYUI = r'''
import io, json, logging, os, sys
sys.path.insert(0, os.environ["COMFYUI_DIR"]); os.chdir(os.environ["COMFYUI_DIR"])
from comfy.cli_args import args; args.cpu = True
import comfy.sd, comfy.utils
captured = io.StringIO()
handler = logging.StreamHandler(captured)
logging.getLogger().addHandler(handler); logging.getLogger().setLevel(logging.INFO)
model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(sys.argv[1], output_vae=False, output_clip=True)
lora = comfy.utils.load_torch_file(sys.argv[2], safe_load=True)
m, c = comfy.sd.load_lora_for_models(model, clip, lora, 1.0, 1.0)
print(json.dumps({"not_loaded": captured.getvalue().count("lora key not loaded"),
                  "patched": len(m.patches) + len(c.patcher.patches), "tensors": len(lora)}))
'''


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from kohya_real_assets import CHANNELS, COMFY_DETECTABLE_CHANNELS, build_real_assets

    channels = COMFY_DETECTABLE_CHANNELS if COMFYUI_DIR else CHANNELS
    return build_real_assets(load_trainer_install(None), tmp_path_factory.mktemp("real_assets"), channels)


def last_printed_losses(log: str) -> list[tuple[int, float]]:
    """Per step, the last avr_loss the bar showed: read straight from the raw console log."""
    last: dict[int, float] = {}
    for line in re.split(r"\r|\n", log):
        for step, _, loss in BAR.findall(line):
            last[int(step)] = float(loss)
    return sorted(last.items())


def comfy_loads(base: Path, lora: Path) -> dict[str, int]:
    python = os.environ.get("COMFYUI_PYTHON") or str(Path(COMFYUI_DIR) / "venv" / "bin" / "python")
    done = subprocess.run([python, "-c", LOAD_IN_COMFYUI, str(base), str(lora)], capture_output=True, text=True,
                          env={**os.environ, "COMFYUI_DIR": COMFYUI_DIR}, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("variant", ["loha", "lokr"])
def test_lycoris_variant_trains_and_reports_the_true_loss(assets, variant, tmp_path, output_root):
    install, base = assets
    dataset = make_dataset(tmp_path / "dataset")
    preset = get_preset("sd15", "character").with_overrides(max_train_steps=3, resolution=64, network_dim=4,
                                                             mixed_precision="no")
    request = train_config.TrainRequest(
        architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml", base_model=base,
        output_name=f"real_{variant}", preset=preset, variant=variant)
    outcome = train_lora(request, install, output_root / "training", output_root / "loras")
    result = outcome.result
    assert result.status == "success", result
    assert result.metadata["ss_network_module"] == "lycoris.kohya"
    assert json.loads(result.metadata["ss_network_args"])["algo"] == variant
    log = result.log_path.read_text(encoding="utf-8")
    if os.environ.get("LF_KEEP_REAL_LOG"):
        shutil.copy(result.log_path, Path(os.environ["LF_KEEP_REAL_LOG"]) / f"sd_scripts_{variant}.log")
    rows = list(csv.reader(open(f"{result.loss_path}.csv", encoding="utf-8")))[1:]
    assert [(int(s), float(v)) for s, v in rows] == last_printed_losses(log)
    assert [s for s, _ in result.loss_curve] == [1, 2, 3]
    if COMFYUI_DIR:
        loaded = comfy_loads(base, result.lora_path)
        assert loaded["not_loaded"] == 0 and loaded["patched"] > 0, loaded
