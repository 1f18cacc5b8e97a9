"""``lora-foundry train`` / ``doctor`` / ``tokenizers``: the launcher from a terminal, with the
node's presets, dry run, progress and cancel (Ctrl-C), and an install check an operator can act on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from fixtures_fake_trainer import ctrl_c_at, make_base_model, make_dataset, make_fake_install

from lora_foundry import cli
from lora_foundry.kohya.tokenizer_cache import build_clip_l

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def operator(tmp_path, monkeypatch):
    """A fake sd-scripts configured through the environment, as an operator would."""
    install = make_fake_install(tmp_path / "kohya", tokenizers=())
    build_clip_l(install.tokenizer_cache_dir)
    env = {"KOHYA_SD_SCRIPTS": str(install.sd_scripts_dir), "KOHYA_PYTHON": sys.executable,
           "KOHYA_TOKENIZER_CACHE": str(install.tokenizer_cache_dir)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("FAKE_MODE", raising=False)
    return install, env


def cli_process(args: list[str], env: dict[str, str], cwd: Path, **extra_env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, **env, **extra_env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "lora_foundry.cli", *args], cwd=cwd, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def train_args(tmp_path: Path, *more: str) -> list[str]:
    dataset = make_dataset(tmp_path / "dataset")
    base = make_base_model(tmp_path / "models")
    return ["train", str(dataset), "--base-model", str(base), "--name", "hero", "--resolution", "64",
            "--out", str(tmp_path / "out"), *more]


def test_train_prints_one_loss_line_per_step_and_publishes(operator, tmp_path):
    _, env = operator
    proc = cli_process(train_args(tmp_path, "--steps", "5"), env, tmp_path)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    losses = [line for line in output.splitlines() if line.startswith("step ")]
    assert losses == [f"step {n}/5 avr_loss {float(f'{1 / n:.3g}'):.4g}" for n in range(1, 6)]
    assert (tmp_path / "out" / "loras" / "hero.safetensors").is_file() and "success: 5/5 steps" in output


def test_train_dry_run_writes_the_command_and_launches_nothing(operator, tmp_path, capsys):
    assert cli.main(train_args(tmp_path, "--dry-run", "--option", "gradient_checkpointing = true")) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run") and "train_network.py --config_file" in out
    assert not (tmp_path / "out" / "loras" / "hero.safetensors").exists()


def test_ctrl_c_cancels_and_lists_the_kept_checkpoints(operator, tmp_path):
    _, env = operator
    proc = cli_process(train_args(tmp_path, "--steps", "40", "--save-every", "1"), env, tmp_path, FAKE_STEP_S="0.2")
    output = ctrl_c_at(proc, "step 2/40")
    assert proc.returncode == 130, output
    assert "cancelled: " in output and "kept checkpoints (" in output
    kept = output.split("kept checkpoints (")[1].split(": ", 1)[1].splitlines()[0].split(", ")
    assert kept and all(Path(p).is_file() for p in kept)
    trainer_pid = int((tmp_path / "out" / "lora_foundry" / "training" / "hero" / "trainer.pid").read_text())
    assert not Path(f"/proc/{trainer_pid}").exists() or "Z" in Path(f"/proc/{trainer_pid}/stat").read_text().split()[2]


def test_a_failed_preflight_is_one_clear_line(operator, tmp_path, capsys):
    assert cli.main(train_args(tmp_path, "--resolution", "32")) == 1
    assert "lora-foundry: resolution 32" in capsys.readouterr().err


def test_doctor_reports_commit_python_packages_scripts_and_tokenizers(operator, capsys):
    install, _ = operator
    git = install.sd_scripts_dir / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text("# pack-refs\n48d368fa0123456789abcdef0123456789abcdef refs/heads/main\n")
    code = cli.main(["doctor", "--probe-timeout", "0"])  # the real probe, however long a busy machine takes
    lines = capsys.readouterr().out.splitlines()
    commit = next(line for line in lines if "sd-scripts commit" in line)  # HEAD names no object of the repo
    assert commit.startswith("FIX") and "48d368fa0123456789abcdef0123456789abcdef" in commit
    assert any(line.startswith(f"OK   python: {sys.executable}") for line in lines)
    assert f"OK   torch: {metadata.version('torch')}" in lines
    assert "OK   train_network.py: present" in lines and "OK   flux_train_network.py: present" in lines
    assert any(line.startswith("--   train_leco.py: missing") for line in lines)
    assert "OK   tokenizer openai/clip-vit-large-patch14: " + str(install.tokenizer_cache_dir
                                                              / "openai_clip-vit-large-patch14") in lines
    t5 = next(line for line in lines if "google/t5-v1_1-xxl" in line)
    assert t5.startswith("--") and "T5TokenizerFast.from_pretrained('google/t5-v1_1-xxl')" in t5
    assert code == (1 if any(line.startswith("FIX") for line in lines) else 0)


def test_doctor_names_a_lycoris_that_breaks_sd15(operator, capsys, monkeypatch):
    from lora_foundry.kohya import doctor

    monkeypatch.setattr(doctor, "probe_python", lambda install, timeout_s: {"python": "3.10.12", "packages": {
        "torch": "2.4.1", "torchvision": "0.19.1", "accelerate": "1.6.0", "transformers": "4.54.1",
        "diffusers": "0.32.1", "safetensors": "0.4.5", "lycoris-lora": "4.1.3"}})
    assert cli.main(["doctor"]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if "lycoris-lora" in x)
    assert line.startswith("FIX") and "4.1.3" in line and "--no-deps lycoris-lora==3.4.0" in line


def test_doctor_flags_a_torchvision_that_does_not_import(operator, capsys, monkeypatch):
    """Seen here: PyPI's CUDA torchvision next to a CPU torch is 'installed' but fails to import."""
    from lora_foundry.kohya import doctor

    monkeypatch.setattr(doctor, "probe_python", lambda install, timeout_s: {"python": "3.11.7", "packages": {
        "torch": "2.13.0+cpu", "torchvision": "0.28.0", "accelerate": "1.6.0", "transformers": "4.54.1",
        "diffusers": "0.32.1", "safetensors": "0.4.5", "lycoris-lora": "3.4.0"},
        "broken": {"torchvision": "RuntimeError: operator torchvision::nms does not exist"}})
    assert cli.main(["doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "OK   torch: 2.13.0+cpu" in lines and "OK   lycoris-lora: 3.4.0" in lines
    line = next(x for x in lines if x.startswith("FIX  torchvision"))
    assert "does not import" in line and "torchvision::nms" in line


def test_tokenizers_builds_clip_l_and_says_what_the_others_need(tmp_path, capsys):
    assert cli.main(["tokenizers", "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    vocab = (tmp_path / "cache" / "openai_clip-vit-large-patch14" / "vocab.json").read_text(encoding="utf-8")
    assert len(json.loads(vocab)) == 49408 and "OK   openai/clip-vit-large-patch14" in out
    assert "--   stabilityai/stable-diffusion-2" in out and "subfolder='tokenizer'" in out
    assert "stabilityai_stable-diffusion-2')" in out  # saved into the folder sd-scripts reads directly
