"""LF Evaluate LoRA's engine with a stand-in renderer and a stand-in CLIP (CPU, no ComfyUI): the
numbers come from the rendered images, the cells are cached in the workspace, the sheet and plot
are real PNGs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from evaluate_standins import StandInClip, StandInRenderer, training_frames, write_training_set

from lora_foundry.evaluate import evaluation, matrix
from lora_foundry.media.images import load_image, load_rgb
from lora_foundry.progress import CallbackProgress, Cancelled
from lora_foundry.workspace import Workspace


@pytest.fixture(scope="module")
def frames(media_dir):
    return training_frames(media_dir)


@pytest.fixture()
def setup(tmp_path, frames):
    ws = Workspace.open(tmp_path / "ws")
    clip = StandInClip()
    train = evaluation.embed_training_set(clip, write_training_set(tmp_path / "train", frames))
    yield ws, clip, train
    ws.close()


def small_preset(strengths=(0.0, 0.5, 1.0)):
    return matrix.load_preset("character", {"strengths": list(strengths), "seeds": [1, 2]})


def run(ws, renderer, clip, train, preset, **kwargs):
    return evaluation.evaluate(ws, renderer, clip, train, "ohwx", preset, **kwargs)


def test_copying_lora_has_higher_fidelity_and_lower_generalisation_than_the_base(setup, frames):
    ws, clip, train = setup
    clip.images_seen = 0
    copy = run(ws, StandInRenderer(frames, "copy"), clip, train, small_preset(), name="copy").report
    null = run(ws, StandInRenderer(frames, "null"), clip, train, small_preset(), name="null").report
    assert clip.images_seen == 2 * len(matrix.build_matrix("ohwx", small_preset()))  # embedded what was rendered
    assert copy["fidelity"]["best"] > null["fidelity"]["best"] + 0.05
    assert copy["fidelity"]["score"] > null["fidelity"]["score"]
    general = copy["generalisation"]
    assert general["context_kept"]["image"] < 0.5 and general["verdict"] == "over-fit"
    assert general["context_kept"]["text_lora"] < general["context_kept"]["text_base"]
    assert "context is replaced" in general["why"]
    # A do-nothing LoRA does not generalise: there is nothing to carry into new contexts.
    assert [null[k]["verdict"] for k in ("fidelity", "ease", "generalisation")] == ["under-fit"] * 3
    assert copy["overall"]["verdict"] == "over-fit"
    # Same floor: the base images are the same cells for both LoRAs.
    assert copy["fidelity"]["base_floor"] == null["fidelity"]["base_floor"]


def test_subject_lora_ranks_above_the_copy_and_the_do_nothing(setup, frames):
    """The issue's check: the tuner's number put the copy (0.570) above the subject LoRA (0.428)."""
    ws, clip, train = setup
    reports = {mode: run(ws, StandInRenderer(frames, mode), clip, train, small_preset()).report
               for mode in ("copy", "subject", "null")}
    score = {mode: r["overall"]["score"] for mode, r in reports.items()}
    fid = {mode: r["fidelity"]["best"] for mode, r in reports.items()}
    assert score["subject"] > score["copy"] > score["null"]
    assert fid["null"] < fid["subject"] < fid["copy"]


def test_strength_zero_cells_are_the_base_images_bit_for_bit(setup, frames):
    ws, clip, train = setup
    copy = run(ws, StandInRenderer(frames, "copy"), clip, train, small_preset())
    base_renderer = StandInRenderer(frames, "null", name="base")
    for cell, path in zip(copy.cells, copy.paths, strict=True):
        if cell.strength == 0:
            assert np.array_equal(load_rgb(path), base_renderer.render(cell.prompt, 0.0, cell.seed))
    later = run(ws, StandInRenderer(frames, "subject"), clip, train, small_preset())
    zero = {c: p for c, p in zip(later.cells, later.paths, strict=True) if c.strength == 0}
    assert zero and all(zero[c] == p for c, p in zip(copy.cells, copy.paths, strict=True) if c in zero)


def test_rerun_with_one_more_strength_renders_only_the_new_cells(setup, frames):
    ws, clip, train = setup
    renderer = StandInRenderer(frames, "subject")
    first = run(ws, renderer, clip, train, small_preset((0, 0.5, 1)))
    assert first.rendered == renderer.calls == len(matrix.build_matrix("ohwx", small_preset((0, 0.5, 1))))
    again = StandInRenderer(frames, "subject")
    second = run(ws, again, clip, train, small_preset((0, 0.5, 0.75, 1)))
    assert again.calls == second.rendered == 3 * 2  # three invocation prompts x two seeds at 0.75
    assert second.report["matrix"]["rendered_now"] == 6
    assert len(second.report["fidelity"]["curve"]["full"]["strengths"]) == 4


def test_cancel_keeps_finished_cells(setup, frames):
    ws, clip, train = setup
    renderer = StandInRenderer(frames, "copy")
    seen = []
    with pytest.raises(Cancelled):
        run(ws, renderer, clip, train, small_preset(),
            progress=CallbackProgress(lambda d, t: seen.append(d),
                                      should_stop=lambda: len(seen) > 5))
    done = renderer.calls
    assert 0 < done < len(matrix.build_matrix("ohwx", small_preset()))
    again = StandInRenderer(frames, "copy")
    run(ws, again, clip, train, small_preset())
    assert again.calls == len(matrix.build_matrix("ohwx", small_preset())) - done


def test_contact_sheet_labels_each_cell_and_the_plot_is_a_png(setup, frames, keep_for_review):
    ws, clip, train = setup
    result = run(ws, StandInRenderer(frames, "subject"), clip, train, small_preset(), name="subject")
    folder = result.report_path.parent
    sheet, plot = load_image(folder / "sheet.png"), load_image(folder / "plot.png")
    assert (folder / "sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preset = small_preset()
    columns = max(len(preset.strengths), 4 * len(preset.seeds))
    pitch_x, pitch_y, cell = 164, 180, 160
    labelled = 0
    for row in range(sheet.shape[0] // pitch_y):
        for column in range(columns):
            picture = sheet[row * pitch_y + 2: row * pitch_y + 2 + cell, column * pitch_x + 2: column * pitch_x + 2 + cell]
            label = sheet[row * pitch_y + cell + 4: (row + 1) * pitch_y, column * pitch_x: (column + 1) * pitch_x]
            if picture.std() > 1:  # a rendered cell (blank padding is flat)
                assert (label > 200).any(), f"cell at row {row}, column {column} has no label"
                labelled += 1
    assert labelled == len(result.cells)
    assert plot.shape[0] >= 300 and plot.shape[1] >= 900 and plot.std() > 10
    report = json.loads(result.report_path.read_text())
    assert report["overall"]["verdict"] in ("over-fit", "under-fit", "balanced")
    keep_for_review(folder / "sheet.png", "evaluate_sheet.png")
    keep_for_review(folder / "plot.png", "evaluate_plot.png")


def test_preset_json_overrides_and_refuses_unknown_fields():
    preset = matrix.load_preset("style", '{"strengths": [1, 0, 0.5], "held_out": ["a red car"]}')
    assert preset.strengths == (0.0, 0.5, 1.0) and preset.held_out == ("a red car",)
    with pytest.raises(ValueError, match="unknown fields"):
        matrix.load_preset("character", '{"strenghts": [0, 1]}')
    with pytest.raises(ValueError, match="include 0"):
        matrix.load_preset("character", {"strengths": [0.5, 1]})
    with pytest.raises(ValueError, match="^evaluation preset 'vehicle' is not one of background, character, pose, style$"):
        matrix.load_preset("vehicle")


def node_with_a_lora(pack, output_root, frames, monkeypatch, tmp_path):
    """The evaluate node's module, a LoRA file ``hero`` (trigger in its metadata) in a loras folder
    the node lists, and its training set as the dataset folder ``hero``."""
    from lora_foundry.lora.synthetic import SD15_MODULES, write_kohya_lora

    node_module = sys.modules[f"{pack.__name__}.nodes.evaluate"]
    loras = tmp_path / "loras"
    write_kohya_lora(loras / "hero.safetensors", SD15_MODULES, metadata={"lora_foundry.trigger": "ohwx"})
    write_training_set(output_root / "lora_foundry" / "datasets" / "hero" / "10_ohwx person", frames)
    monkeypatch.setattr(node_module._comfy, "model_folder_paths", lambda folder: [loras] if folder == "loras" else [])
    return node_module, loras


def test_evaluate_node_judges_a_lora_file_against_a_dataset_folder(pack, output_root, frames, monkeypatch, tmp_path):
    """The node's wiring without ComfyUI: the LoRA picked by name, the training set from a dataset
    folder, the trigger from the LoRA's metadata; ComfyUI's sampler replaced by the stand-in."""
    node_module, loras = node_with_a_lora(pack, output_root, frames, monkeypatch, tmp_path)
    made = []

    def renderer(model, clip, vae, parts, settings, model_id, lora_id):
        made.append((parts, lora_id))
        return StandInRenderer(frames, "copy", name=lora_id)

    monkeypatch.setattr(node_module._comfy_sampling, "ComfyRenderer", renderer)
    monkeypatch.setattr(node_module, "make_embedder", lambda clip_model, clip_vision: StandInClip())
    monkeypatch.setattr(node_module, "fingerprint", lambda *objects: "standin-model")
    node = pack.NODE_CLASS_MAPPINGS["LF_EvaluateLoRA"]()
    out = node.evaluate(None, None, None, "character", "", "eval_ws", 64, 64, 4, 5.0, "euler", "normal",
                        lora="hero.safetensors", matrix_json='{"strengths": [0, 1], "seeds": [1]}',
                        dataset_path="hero")
    report_json, sheet, plot, score = out["result"]
    report = json.loads(report_json)
    assert made[0][0][0].path == loras / "hero.safetensors" and report["matrix"]["trigger"] == "ohwx"
    assert report["overall"]["verdict"] == "over-fit" and score == report["overall"]["score"]
    assert tuple(sheet.shape[-1:]) == (3,) and plot.shape[0] == 1
    assert "overall: over-fit" in out["ui"]["text"][0]
    ws_dir = output_root / "lora_foundry" / "workspaces" / "eval_ws"
    assert (ws_dir / "evaluations" / "hero" / "report.json").is_file()


def test_tuning_reuses_the_cells_the_evaluate_node_rendered_for_the_same_lora(pack, output_root, frames,
                                                                               monkeypatch, tmp_path):
    """LF Tune Training judges a LoRA as LF Evaluate LoRA does, under the same identity: after the node
    judged ``hero``, the tuner's judge of that file renders nothing (it kept a second identity of its
    own, the file's path and time, and rendered every LoRA cell again)."""
    from lora_foundry.workspace import workspace_path

    node_module, loras = node_with_a_lora(pack, output_root, frames, monkeypatch, tmp_path)
    tune_module = sys.modules[f"{pack.__name__}.nodes.tune"]
    renderers = []

    def renderer(model, clip, vae, parts, settings, model_id, lora_id):
        renderers.append(StandInRenderer(frames, "copy", name=lora_id))
        return renderers[-1]

    monkeypatch.setattr(node_module._comfy_sampling, "ComfyRenderer", renderer)
    monkeypatch.setattr(node_module, "make_embedder", lambda clip_model, clip_vision: StandInClip())
    monkeypatch.setattr(node_module, "fingerprint", lambda *objects: "standin-model")
    grid = '{"strengths": [0, 1], "seeds": [1]}'
    out = pack.NODE_CLASS_MAPPINGS["LF_EvaluateLoRA"]().evaluate(
        None, None, None, "character", "", "eval_ws", 64, 64, 4, 5.0, "euler", "normal", lora="hero.safetensors",
        matrix_json=grid, dataset_path="hero")
    assert json.loads(out["result"][0])["matrix"]["rendered_now"] > 0
    paths = node_module.training_paths(None, "hero", None)
    embedder = StandInClip()
    with Workspace.open(workspace_path(output_root, "eval_ws")) as ws:
        judge = tune_module.TrialJudge(ws, (None, None, None), node_module.settings_of(64, 64, 4, 5.0, "euler",
                                                                                       "normal", ""),
                                       "standin-model", embedder, evaluation.embed_training_set(embedder, paths), "",
                                       matrix.load_preset("character", grid),
                                       tuple(evaluation.training_captions(paths)), ())
        report = judge(loras / "hero.safetensors", "hero_t000")
    assert report["matrix"]["rendered_now"] == 0 and renderers[-1].calls == 0
    assert report["matrix"]["lora"] == renderers[0].lora_identity


def test_held_out_contexts_the_captions_show_are_replaced_or_refused(setup, frames, tmp_path):
    """A context the training captions already show cannot test generalisation."""
    ws, clip, train = setup
    paths = write_training_set(tmp_path / "captioned", frames)
    paths[0].with_suffix(".txt").write_text("ohwx, person, snowy forest, smiling", encoding="utf-8")
    captions = evaluation.training_captions(paths)
    assert captions == ["ohwx, person, snowy forest, smiling"]
    preset = matrix.load_preset("character", {"strengths": [0, 1], "seeds": [1],
                                              "held_out": ["in a snowy forest", "on the moon"],
                                              "spare_held_out": ["in the snowy mountains", "at a busy market"]})
    result = run(ws, StandInRenderer(frames, "subject"), clip, train, preset, captions=captions)
    assert result.report["matrix"]["held_out"] == ["at a busy market", "on the moon"]  # the first spare overlaps too
    assert result.report["matrix"]["held_out_replaced"] == {"in a snowy forest": "at a busy market"}
    assert not any("snowy" in cell.prompt for cell in result.cells)
    with pytest.raises(ValueError, match="appears in the training captions"):
        run(ws, StandInRenderer(frames, "subject"), clip, train,
            matrix.load_preset("character", {"held_out": ["in a snowy forest"], "spare_held_out": []}),
            captions=captions)


class _Named:
    """A stand-in MODEL or CLIP: the socket checks want ComfyUI's methods, the test wants a name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def clone(self):
        return self

    def tokenize(self, text: str) -> list:
        return []

    def __eq__(self, other: object) -> bool:
        return other == self.name if isinstance(other, str) else other is self

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__


def test_evaluate_node_tests_the_lora_on_an_extra_checkpoint(pack, output_root, frames, monkeypatch, tmp_path):
    """An extra MODEL (with the base CLIP) is rendered with its own identity and reported apart."""
    node_module, loras = node_with_a_lora(pack, output_root, frames, monkeypatch, tmp_path)
    made = []

    def renderer(model, clip, vae, parts, settings, model_id, lora_id):
        made.append((model, clip, model_id))
        standin = StandInRenderer(frames, "copy" if model == "other" else "subject", name=lora_id)
        standin.model_identity = model_id
        return standin

    monkeypatch.setattr(node_module._comfy_sampling, "ComfyRenderer", renderer)
    monkeypatch.setattr(node_module, "make_embedder", lambda clip_model, clip_vision: StandInClip())
    monkeypatch.setattr(node_module, "fingerprint", lambda *objects: f"standin-{objects[0]}")
    node = pack.NODE_CLASS_MAPPINGS["LF_EvaluateLoRA"]()
    out = node.evaluate(_Named("base"), _Named("clip"), None, "character", "", "eval_ws", 64, 64, 4, 5.0, "euler",
                        "normal", lora="hero.safetensors", matrix_json='{"strengths": [0, 1], "seeds": [1]}',
                        dataset_path="hero", model_2=_Named("other"))
    report = json.loads(out["result"][0])
    assert made == [("base", "clip", "standin-base"), ("other", "clip", "standin-other")]
    assert set(report["checkpoints"]) == {"base", "checkpoint_2"}
    assert report["checkpoints"]["checkpoint_2"]["generalisation"]["verdict"] == "over-fit"
    assert report["generalisation"]["verdict"] == "over-fit" and report["generalisation"]["why"].startswith(
        "checkpoint_2:")
