"""The six holes a stranger found on a shared server (issue 23), each as the attack was made, and the
forged-state cases: files a client rewrote through ComfyUI's upload before the run. Each hole test
fails on the previous main (49b5ec0) and passes now; every case also runs under the oracle's audit
hook and asserts the private folder was never opened or listed.
"""

from __future__ import annotations

import sqlite3

import pytest
import torch
from fixtures_fake_trainer import make_base_model
from hostile import oracle
from hostile.hostile_fixtures import operator_trainer

from lora_foundry.choices import quoted

LOADERS = {  # node id -> (module, class, extra VALIDATE_INPUTS values)
    "sam2": ("loaders", "SAM2Loader", {}), "lama": ("loaders", "LaMaLoader", {"if_missing": "error"}),
    "open_clip": ("loaders", "CLIPLoader", {}), "rtmpose": ("loaders", "PoseLoader", {}),
    "facedetection": ("loaders", "FaceLoader", {}), "expression": ("loaders", "ExpressionClassifierLoader", {}),
    "wd14": ("wd14", "TaggerLoader", {}),
}
SLASH_HOME_USER = oracle.slash_home_user()


@pytest.fixture()
def models(server, monkeypatch):
    """ComfyUI's model folders under ``tmp/models``."""
    root = server.tmp / "models"
    for folder in (*LOADERS, "checkpoints", "loras", "diffusion_models"):
        (root / folder).mkdir(parents=True)
    comfy = server.nodes._comfy
    monkeypatch.setattr(comfy, "model_folder_paths", lambda folder: [root / folder])
    monkeypatch.setattr(comfy, "list_models", lambda folder: sorted(
        p.name for p in (root / folder).iterdir()) if (root / folder).is_dir() else [])
    monkeypatch.delenv("LORA_FOUNDRY_MODELS", raising=False)
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    monkeypatch.chdir(server.tmp)
    return root


def _never_touched(touches, server):
    private = str(server.private)
    assert [t for t in touches if t[1].startswith(private)] == []


def _tilde(path) -> str:
    return f"~{SLASH_HOME_USER}/{str(path).lstrip('/')}"


class _Lama(torch.nn.Module):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image * 0 + 0.5  # an uploaded "model" runs whatever its author wrote here


@pytest.mark.skipif(SLASH_HOME_USER is None, reason="no system user whose home is /")
def test_hole_1_an_uploaded_torchscript_named_by_tilde_user_is_never_loaded(server, models):
    uploaded = server.input / "x.pt"  # what POST /upload/image stores
    torch.jit.save(torch.jit.script(_Lama()), str(uploaded))
    name = _tilde(uploaded)
    loader = server.nodes.loaders.LaMaLoader
    with oracle.recording() as touches:
        answer = server.nodes._checks.refusal(loader.VALIDATE_INPUTS, model_name=name, if_missing="error")
        with pytest.raises(OSError, match=r"model_name .* is not one of the files in models/lama$"):
            loader().load(name, "error", "cpu")
    # the tilde path's length follows pytest's tmp folder: quoted whole or cut, the one way refusals quote
    assert answer == f"model_name {quoted(name)} is not one of the files in models/lama"
    assert [t for t in touches if t[1] == str(uploaded)] == []


@pytest.mark.skipif(SLASH_HOME_USER is None, reason="no system user whose home is /")
@pytest.mark.parametrize("folder", list(LOADERS))
def test_hole_2_no_loader_tells_an_existing_file_from_a_missing_one(server, models, folder):
    module, name, extra = LOADERS[folder]
    loader = getattr(getattr(server.nodes, module), name)
    existing, missing = server.private / "secret.png", server.private / "absent.png"
    answers = [server.nodes._checks.refusal(loader.VALIDATE_INPUTS, model_name=_tilde(target), **extra)
               for target in (existing, missing)]
    assert answers[0].replace("secret", "absent") == answers[1]
    assert answers[0].startswith("model_name '~") and answers[0].endswith(f"is not one of the files in models/{folder}")


def test_hole_3_clip_loader_takes_no_absolute_path_nor_outside_folder(server, models):
    outside = server.made / "clipdir"  # anywhere outside the models folders
    outside.mkdir(parents=True)
    (outside / "open_clip_config.json").write_text("{}")
    (server.made / "ViT-B-32__x.safetensors").write_bytes(b"x")
    loader = server.nodes.loaders.CLIPLoader
    with oracle.recording() as touches:
        for name in (f"{outside}/", str(server.made / "ViT-B-32__x.safetensors"), "../../made/clipdir/"):
            answer = loader.VALIDATE_INPUTS(model_name=name)
            assert answer == f"model_name {name!r} is not one of the files in models/open_clip"
    assert [t for t in touches if t[1].startswith(str(server.made))] == []


def _frames(server, workspace="victim"):
    for index in range(2):
        server.picture(server.input / "pics" / f"{index}.png", (60 + 40 * index, 90, 120))
    frames, _ = server.nodes.frames.LoadImageFolder().load("pics", workspace, 0, False)
    return frames


@pytest.mark.parametrize("forged", ["absolute", "traversal"])
def test_hole_4_a_rewritten_manifest_never_serves_a_private_picture(server, forged):
    frames = _frames(server)
    manifest = server.output / "lora_foundry" / "workspaces" / "victim" / "manifest.sqlite"
    path = str(server.secret_picture) if forged == "absolute" else "../../../../private/secret.png"
    with sqlite3.connect(manifest) as conn:  # downloaded through /view, edited, uploaded back
        conn.execute("UPDATE items SET relpath=? WHERE id=(SELECT MIN(id) FROM items)", (path,))
    with oracle.recording() as touches:
        with pytest.raises(ValueError, match=r"workspace 'victim' manifest.sqlite items.relpath of item \d+: .* is not "
                                             "a path inside the workspace"):
            server.nodes.frames.FramesToImages().convert(frames, "batch", 0, 0, 0)
    _never_touched(touches, server)


@pytest.fixture()
def trainer(server, models, monkeypatch):
    operator_trainer(server, monkeypatch)
    make_base_model(models / "checkpoints")


def test_hole_5_an_uploaded_dataset_toml_never_reads_a_private_folder(server, trainer):
    evil = server.output / "lora_foundry" / "datasets" / "evil"
    evil.mkdir(parents=True)
    (evil / "dataset.toml").write_text(
        f'[[datasets]]\nresolution = 64\n[[datasets.subsets]]\nimage_dir = "{server.private / "photos"}"\n'
        'num_repeats = 1\n', encoding="utf-8")
    with oracle.recording() as touches:
        with pytest.raises(ValueError, match=r"dataset config dataset.toml: datasets\[0\].subsets\[0\].image_dir .* is "
                                             "outside the folders workflows may read"):
            server.nodes.training.KohyaTrainLoRA().train(
                architecture="sd15", lora_type="character", base_model="base.safetensors", output_name="evil",
                network_variant="lora", steps=4, learning_rate=0.0, rank=0, alpha=0.0, resolution=64, train_seed=1,
                dry_run=True, resume=False, dataset_path="evil")
    _never_touched(touches, server)


def test_hole_6_a_format_spec_in_the_caption_template_is_refused_before_writing(server):
    frames = _frames(server)
    with pytest.raises(ValueError, match=r"caption_template '\{trigger:x>3000000\}': only \{trigger\} and "
                                         r"\{class_word\} can be filled in"):
        server.nodes.dataset.WriteKohyaDataset().write(
            frames, dataset_name="wide", trigger="sks", class_word="", repeats=1, image_format="png", resolution=64,
            if_exists="error", caption_template="{trigger:x>3000000}")
    assert max([p.stat().st_size for p in server.output.rglob("*.txt")] or [0]) < 4096


# -- forged state: what else a client may rewrite before the run ----------------------------------------


def test_forged_stage_info_nested_deep_is_refused_naming_the_field(server):
    _frames(server)
    manifest = server.output / "lora_foundry" / "workspaces" / "victim" / "manifest.sqlite"
    with sqlite3.connect(manifest) as conn:
        conn.execute("UPDATE stages SET info=?", ("[" * 100_000 + "]" * 100_000,))
    with pytest.raises(ValueError, match=r"manifest.sqlite stages.info is nested more than 64 levels deep"):
        server.nodes.frames.LoadImageFolder().load("pics", "victim", 0, False)


def test_forged_manifest_with_a_trigger_is_refused(server):
    _frames(server)
    manifest = server.output / "lora_foundry" / "workspaces" / "victim" / "manifest.sqlite"
    with sqlite3.connect(manifest) as conn:
        conn.execute("CREATE TRIGGER spoil AFTER INSERT ON items BEGIN DELETE FROM items; END")
    with pytest.raises(ValueError, match="manifest.sqlite: holds trigger 'spoil', which LoRA Foundry never writes"):
        server.nodes.frames.LoadImageFolder().load("pics", "victim", 0, False)


def test_forged_preset_nested_deep_is_a_clear_error(server):
    folder = server.output / ".user" / "lora_foundry" / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    presets = server.pack.lora_foundry.lora.presets
    with pytest.raises(presets.PresetError, match="preset 'deep' is nested more than 64 levels deep"):
        presets.load_preset(server.output / ".user", "deep")


def test_forged_lora_header_metadata_nested_deep_is_ignored(server, models):
    from lora_foundry.lora.synthetic import SD15_MODULES, write_kohya_lora

    write_kohya_lora(models / "loras" / "deep.safetensors", SD15_MODULES, seed=1,
                     metadata={"ss_tag_frequency": "[" * 100_000 + "]" * 100_000})
    metadata = server.pack.lora_foundry.lora.metadata
    assert metadata.tag_frequency({"ss_tag_frequency": "[" * 100_000}) == {}
    with oracle.recording() as touches:
        server.nodes.compose.LoRAInfo().info("deep.safetensors")
    _never_touched(touches, server)


def test_forged_study_db_trial_path_outside_the_study_is_refused(server, tmp_path):
    optuna = pytest.importorskip("optuna")
    tune_report = server.pack.lora_foundry.evaluate.tune_report
    study_dir = server.output / "study"
    study_dir.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{study_dir / 'study.sqlite3'}", study_name="s",
                                direction="maximize")
    trial = study.ask()
    trial.set_user_attr("lora_path", str(server.private / "secret.png"))  # rewritten by a client
    study.tell(trial, 1.0)
    with oracle.recording() as touches:
        with pytest.raises(ValueError, match=r"trial 0's user_attrs.lora_path is outside the study's folder"):
            tune_report.publish_best(study, server.output / "best.safetensors", within=study_dir)
    _never_touched(touches, server)
