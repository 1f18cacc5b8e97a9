"""A cancelled training run tells the user what it did and where the kept checkpoints are: the
node shows the report (event to its chart area, server log) and the run folder keeps report.txt."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_fake_trainer import configure_operator, make_base_model, make_dataset, make_fake_install

from lora_foundry.kohya import operator_config


class Stop(Exception):
    """Stands in for ComfyUI's InterruptProcessingException."""


@pytest.fixture()
def node(tmp_path, output_root, monkeypatch, pack):
    install = make_fake_install(tmp_path / "kohya")
    configure_operator(install, output_root / ".user")
    monkeypatch.delenv(operator_config.SD_SCRIPTS_ENV, raising=False)
    monkeypatch.delenv("FAKE_MODE", raising=False)
    monkeypatch.setenv("FAKE_STEP_S", "0.15")
    checkpoints = tmp_path / "models" / "checkpoints"
    make_base_model(checkpoints)
    training = pack.nodes.training
    monkeypatch.setattr(training._comfy, "model_folder_paths",
                        lambda folder: [checkpoints] if folder == "checkpoints" else [])
    make_dataset(output_root / "lora_foundry" / "datasets" / "hero")
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(training._comfy, "send_event", lambda event, data: sent.append((event, data)))
    return training, sent


def test_cancel_shows_steps_done_and_the_kept_checkpoints(node, monkeypatch, output_root):
    training, sent = node
    def interrupted() -> bool:
        if any(data["step"] >= 3 for event, data in sent if event == training.LOSS_EVENT):
            raise Stop("interrupted")
        return False

    monkeypatch.setattr(training, "interrupted", interrupted)
    with pytest.raises(Stop):
        training.KohyaTrainLoRA().train(
            architecture="sd15", lora_type="character", base_model="base.safetensors", output_name="hero",
            network_variant="lora", steps=40, learning_rate=0.0, rank=0, alpha=0.0, resolution=64, train_seed=1,
            dry_run=False, resume=False, dataset_path="hero", save_every_n_steps=1, unique_id="7")
    reports = [data for event, data in sent if event == training.REPORT_EVENT]
    assert len(reports) == 1 and reports[0]["node"] == "7"
    text = reports[0]["text"]
    assert text.startswith("cancelled: ") and "/40 steps" in text
    done = int(text.split("cancelled: ")[1].split("/")[0])
    assert 3 <= done < 40
    kept = text.split("kept checkpoints (")[1]
    count = int(kept.split(")")[0])
    paths = [p.strip() for p in kept.split(": ", 1)[1].splitlines()[0].split(", ")]
    assert count == len(paths) >= 3 and all(p.endswith(".safetensors") and "hero-step" in p for p in paths)
    assert all(Path(p).is_file() for p in paths)
    run_report = next((output_root / "lora_foundry" / "training" / "hero").glob("report.txt"))
    assert run_report.read_text().strip() == text
    assert not list(output_root.rglob("loras/lora_foundry/hero.safetensors"))
