"""The command line as docs/training.md and docs/leco.md use it, from ComfyUI's venv: ``python -m
lora_foundry`` from any folder, outputs in ComfyUI's folders when the pack sits in a ComfyUI install
(LoRAs where ComfyUI lists them), a clear refusal without one and without ``--out`` (by every command
that writes, all with the one ``--out`` of ``cli/locations.py``), and report.txt after a double Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_fake_trainer import add_leco_scripts, make_base_model, make_fake_install

from lora_foundry.cli import locations

REPO = Path(__file__).resolve().parents[1]
SLIDER = 'neutral_prompt_file = "neutrals.txt"\n[[targets]]\ntarget_class = ""\npositive = "high detail"\n' \
         'negative = "low detail"\n'


@pytest.fixture
def comfyui(tmp_path):
    """A ComfyUI layout with this pack linked into custom_nodes, as an operator installs it."""
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    (root / "main.py").write_text("")
    (root / "custom_nodes" / "lora_foundry").symlink_to(REPO)
    return root


@pytest.fixture
def operator_env(tmp_path):
    install = add_leco_scripts(make_fake_install(tmp_path / "kohya"))
    return {"KOHYA_SD_SCRIPTS": str(install.sd_scripts_dir), "KOHYA_PYTHON": sys.executable,
            "KOHYA_TOKENIZER_CACHE": str(install.tokenizer_cache_dir)}


def _cli(args, cwd, pythonpath, env=None, **popen):
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | (env or {}) | {"PYTHONPATH": str(pythonpath)}
    return subprocess.Popen([sys.executable, "-m", "lora_foundry", *args], cwd=cwd, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def test_python_dash_m_lora_foundry_runs_from_any_folder(tmp_path):
    done = _cli(["--help"], tmp_path, REPO).communicate(timeout=120)[0]
    assert "train-leco" in done and "doctor" in done
    direct = subprocess.run([sys.executable, str(REPO / "lora_foundry"), "--help"], cwd=tmp_path, text=True,
                            capture_output=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert direct.returncode == 0 and "train-leco" in direct.stdout


def test_outputs_inside_and_outside_comfyui(comfyui, tmp_path):
    pack_file = comfyui / "custom_nodes" / "lora_foundry" / "lora_foundry" / "cli" / "locations.py"
    inside = locations.outputs(None, pack_file=pack_file)
    assert inside.root == comfyui / "output" and inside.loras == comfyui / "models" / "loras" / "lora_foundry"
    assert locations.outputs(tmp_path / "o", pack_file=pack_file).loras == inside.loras  # still listed by ComfyUI
    outside = REPO / "lora_foundry" / "cli" / "locations.py"
    if locations.comfyui_root(outside) is None:
        with pytest.raises(locations.NoOutputFolder, match="give --out"):
            locations.outputs(None, pack_file=outside)
    assert locations.outputs(tmp_path / "o", pack_file=outside).loras == (tmp_path / "o" / "loras").resolve()


# The commands that write workspaces, datasets or runs; the others (doctor, tokenizers) write no output root.
WRITERS = {"demo", "ingest", "ingest-many", "video-dataset", "train", "train-leco", "train-video"}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _shared_out_help() -> str:
    parser = argparse.ArgumentParser()
    locations.add_out_argument(parser)
    return _flat(parser.format_help()).rsplit("--out OUT", 1)[1].strip()


def test_every_command_that_writes_shows_the_one_out_option(tmp_path):
    listed = _cli(["--help"], tmp_path, REPO).communicate(timeout=120)[0]
    commands = re.search(r"\{([a-z,-]+)\}", listed).group(1).split(",")
    helps = {command: _flat(_cli([command, "--help"], tmp_path, REPO).communicate(timeout=120)[0])
             for command in commands}
    assert {command for command, text in helps.items() if "--out" in text} == WRITERS
    wording = _shared_out_help()
    assert "required otherwise" in wording
    assert [command for command in WRITERS if f"--out OUT {wording}" not in helps[command]] == []
    assert not list(tmp_path.iterdir())


def _data_commands(video: Path) -> dict[str, list[str]]:
    """A small real run of each command that writes no LoRA, on ``video``, with no ``--out``."""
    sampling = ["--mode", "interval", "--interval", "0.5", "--long-side", "64"]
    return {"demo": ["demo", str(video), *sampling],
            "ingest": ["ingest", str(video), "--workspace", "one", *sampling],
            "ingest-many": ["ingest-many", str(video), "--workspace", "many", "--workers", "1", *sampling],
            "video-dataset": ["video-dataset", str(video), "--name", "clips", "--trigger", "ohwx", "--min-s", "0.5",
                              "--max-s", "1.5", "--x264-preset", "ultrafast", "--min-motion", "0"]}


def test_outside_comfyui_every_data_command_without_out_is_refused_and_writes_nothing(tmp_path, media_dir):
    work = tmp_path / "shell"
    work.mkdir()
    for command, args in _data_commands(media_dir / "signer_help.mkv").items():
        proc = _cli(args, work, REPO)
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 1 and "give --out DIR" in out, (command, out)
    assert not list(work.iterdir())


def test_inside_comfyui_every_data_command_writes_to_comfyuis_output_folder(comfyui, tmp_path, media_dir):
    work = tmp_path / "shell"
    work.mkdir()
    printed = {}
    for command, args in _data_commands(media_dir / "signer_help.mkv").items():
        proc = _cli(args, work, comfyui / "custom_nodes" / "lora_foundry")
        printed[command] = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, (command, printed[command])
    ours = (comfyui / "output" / "lora_foundry").resolve()
    assert sorted(p.name for p in (ours / "workspaces").iterdir()) == ["demo", "many", "one", "video"]
    assert sorted(p.name for p in (ours / "datasets").iterdir()) == ["clips", "demo"]
    assert json.loads(printed["demo"].splitlines()[-1])["dataset"] == str(ours / "datasets" / "demo")
    assert (ours / "datasets" / "demo" / "dataset.toml").is_file() and (ours / "datasets" / "clips").is_dir()
    assert not list(work.iterdir())


def test_train_leco_inside_comfyui_publishes_where_comfyui_lists_loras(comfyui, operator_env, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "slider.toml").write_text(SLIDER)
    (work / "neutrals.txt").write_text("a photo\nstudio portrait\n")
    base = make_base_model(comfyui / "models" / "checkpoints")
    proc = _cli(["train-leco", "--prompts", "slider.toml", "--base-model", str(base), "--steps", "4",
                 "--name", "detail_slider"], work, comfyui / "custom_nodes" / "lora_foundry", operator_env)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert (comfyui / "models" / "loras" / "lora_foundry" / "detail_slider.safetensors").is_file()
    run_dir = comfyui / "output" / "lora_foundry" / "leco_training" / "detail_slider"
    assert (run_dir / "neutrals.txt").is_file() and (run_dir / "report.txt").read_text().startswith("success")
    assert not (work / "out").exists() and "step 4/4 loss" in out


def test_outside_comfyui_without_out_is_refused(operator_env, tmp_path):
    (tmp_path / "slider.toml").write_text(SLIDER)
    base = make_base_model(tmp_path / "models")
    proc = _cli(["train-leco", "--prompts", "slider.toml", "--base-model", str(base)], tmp_path, REPO, operator_env)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "give --out" in out and not (tmp_path / "out").exists()


def test_double_ctrl_c_still_writes_report_txt(comfyui, operator_env, tmp_path):
    (tmp_path / "slider.toml").write_text(SLIDER)
    (tmp_path / "neutrals.txt").write_text("a photo\n")
    base = make_base_model(comfyui / "models" / "checkpoints")
    proc = _cli(["train-leco", "--prompts", "slider.toml", "--base-model", str(base), "--steps", "40",
                 "--save-every", "1", "--name", "s"], tmp_path, comfyui / "custom_nodes" / "lora_foundry",
                operator_env | {"FAKE_MODE": "slow"})
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step 1/"):
            break
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(lines) + rest
    report = (comfyui / "output" / "lora_foundry" / "leco_training" / "s" / "report.txt").read_text()
    assert report.startswith("cancelled") and "s-step00000001.safetensors" in report
