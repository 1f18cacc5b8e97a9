"""LF Tune Training's node wiring without ComfyUI: the study it opens in the workspace, trials of the
real launcher (the fake trainer), judged with the evaluate node's stand-ins, and what its report and
UI text tell the user."""

from __future__ import annotations

import json
import sys

import pytest

optuna = pytest.importorskip("optuna")

from evaluate_standins import StandInClip, StandInRenderer, training_frames  # noqa: E402
from fixtures_fake_trainer import configure_operator, make_base_model, make_dataset, make_fake_install  # noqa: E402

from lora_foundry.evaluate import tune  # noqa: E402
from lora_foundry.workspace import workspace_path  # noqa: E402


def test_a_study_an_earlier_version_started_says_why_in_the_node_report_once(pack, output_root, media_dir,
                                                                             monkeypatch, tmp_path):
    """The study ``hero`` has a trial and no record of its cell keys, as an earlier version left it:
    the node's first run says why its LoRAs' cells are rendered again, in the report's ``notes`` and
    the UI text; the second run of the same study says nothing more."""
    tune_module = sys.modules[f"{pack.__name__}.nodes.tune"]
    frames = training_frames(media_dir)
    folders = {"loras": [tmp_path / "loras"], "checkpoints": [tmp_path / "checkpoints"]}
    make_base_model(tmp_path / "checkpoints")
    make_dataset(output_root / "lora_foundry" / "datasets" / "hero")
    configure_operator(make_fake_install(tmp_path / "kohya"), tune_module._comfy.user_root())
    monkeypatch.setenv("FAKE_STEP_S", "0")
    monkeypatch.setattr(tune_module._comfy, "model_folder_paths", lambda folder: folders.get(folder, []))
    monkeypatch.setattr(tune_module._comfy_sampling, "ComfyRenderer",
                        lambda model, clip, vae, parts, settings, model_id, lora_id:
                        StandInRenderer(frames, "subject", name=lora_id))
    monkeypatch.setattr(tune_module, "make_embedder", lambda clip_model, clip_vision: StandInClip())
    monkeypatch.setattr(tune_module, "fingerprint", lambda *objects: "standin-model")
    study_dir = workspace_path(output_root, "tune_ws") / "tuning" / "hero"
    tune.open_study(study_dir, "hero").enqueue_trial({"rank": 8})  # trials, no cell_keys

    def run() -> tuple[dict, list[str]]:
        out = pack.NODE_CLASS_MAPPINGS["LF_TuneTraining"]().tune(
            None, None, None, "character", "ohwx", "tune_ws", 64, 64, 4, 5.0, "euler", "normal", "sd15",
            "base.safetensors", "hero", 1, 0, 0.4, 0.4, 0.2, 42, dataset_path="hero",
            matrix_json='{"strengths": [0, 1], "seeds": [1]}',
            search_space_json='{"steps": 20, "network_variant": "lora"}')
        return json.loads(out["result"][1]), out["ui"]["text"]

    report, text = run()
    (note,) = report["notes"]
    assert "started by an earlier LoRA Foundry" in note and "not reused" in note
    assert text[0].startswith("best: lora_foundry/hero_best.safetensors") and text[1:] == [note]
    assert [t["params"]["rank"] for t in report["trials"]] == [8]  # the earlier trial ran, in the node's study
    report, text = run()
    assert report["notes"] == [] and len(text) == 1
