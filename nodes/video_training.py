"""Video LoRAs: write clips as a musubi-tuner dataset, train it with musubi-tuner."""

from __future__ import annotations

import json
from typing import Any

from ..lora_foundry.kohya.dataset import datasets_root
from ..lora_foundry.kohya.publish import published_path
from ..lora_foundry.kohya.training import TRAINING_DIR
from ..lora_foundry.musubi import dataset as video_dataset
from ..lora_foundry.musubi.install import PRESETS, load_musubi_install, preset_for
from ..lora_foundry.musubi.launcher import MusubiRequest, check_clip_rate, describe, train_video_lora
from ..lora_foundry.workspace import Handle, Workspace
from . import _comfy
from ._declare import choice, integer, mappings, node, number, socket, text
from .training import LORAS_SUBDIR, EventForwarder, interrupted, loras_dir, show_cancel_report


@node("LF_WriteVideoDataset", "LF Write Video Dataset", category="dataset", function="write", output_node=True,
      outputs=[("LF_VIDEO_DATASET", "video_dataset"), ("STRING", "dataset_toml"), ("STRING", "report")],
      inputs={
          "clips": socket("LF_CLIPS", "Clips (captioned by LF Caption Clips, or not)."),
          "dataset_name": text("Folder name under <output>/lora_foundry/datasets/ (plain name).", "my_video_lora"),
          "trigger": text("Trigger word for clips without a caption.", "ohwx"),
          "class_word": text("Class word for clips without a caption.", "person"),
          "video_repeats": integer("musubi num_repeats of the clips.", 1, 1, 100),
      },
      optional={
          "images": socket("LF_FRAMES", "Images to mix in as an image dataset (musubi trains on both)."),
          "image_repeats": integer("musubi num_repeats of the images.", 1, 1, 100),
      })
class WriteVideoDataset:
    """Writes clips and their captions as a musubi-tuner dataset under
    <output>/lora_foundry/datasets/<name>/: videos/ (MP4 + .txt per clip), images/ when frames are
    connected (an image dataset mixed in), one cache folder per dataset and dataset.toml for every
    musubi-tuner script (--dataset_config; frame_extraction full: one training item per clip at its own
    length). Clips without a caption get 'trigger class'. The same clips and settings again give the
    dataset already written (and musubi's cached latents in it); other clips or settings under a taken
    name are written as <name>_v2, _v3, ... (kohya's rule), never over an existing dataset."""

    def write(self, clips: Handle, dataset_name: str, trigger: str, class_word: str, video_repeats: int,
              images: Handle | None = None, image_repeats: int = 1, unique_id: str | None = None) -> dict[str, Any]:
        spec = video_dataset.VideoDatasetSpec(name=dataset_name, trigger=trigger.strip(),
                                              class_word=class_word.strip(), video_repeats=video_repeats,
                                              image_repeats=image_repeats)
        with Workspace.from_handle(clips) as ws:
            written = video_dataset.write_video_dataset(ws, clips, spec, datasets_root(_comfy.output_root()),
                                                        image_frames=images,
                                                        progress=_comfy.ComfyProgress(unique_id))
        report = _comfy.shown_paths(json.dumps(  # every client reads it (history): no server paths
            {"path": str(written.path), "clips": written.clips, "images": written.images, "fps": written.fps,
             "frame_counts": list(written.frame_counts)}, indent=1))
        return {"ui": {"text": [report]}, "result": (written, str(written.toml_path), report)}


@node("LF_MusubiTrain", "LF Musubi Train", category="training", function="train", output_node=True,
      outputs=[("STRING", "lora_name"), ("STRING", "lora_path"), ("STRING", "report")],
      inputs={
          "video_dataset": socket("LF_VIDEO_DATASET", "The dataset from LF Write Video Dataset."),
          "preset": choice(list(PRESETS), "Model and task: Wan 2.1/2.2 text- or image-to-video, HunyuanVideo. "
                           "The clips must have been cut for that model.", "wan21_t2v_1.3B"),
          "output_name": text("LoRA file name (plain name).", "my_video_lora"),
          "network_dim": integer("LoRA rank.", 32, 1, 256),
          "learning_rate": number("Learning rate.", 2e-4, 1e-6, 1e-2, 1e-5),
          "epochs": integer("max_train_epochs.", 16, 1, 1000),
          "train_seed": integer("Training seed.", 42, 0, 2**31 - 1),
      })
class MusubiTrain:
    """Trains a video LoRA with musubi-tuner (installed by the server operator: MUSUBI_TUNER /
    MUSUBI_PYTHON or <user>/lora_foundry/musubi.json, which also names the model files of each preset).
    Runs musubi's three steps, each checked: cache latents, cache text-encoder outputs (one cache file
    per clip, or the step fails by name), then training (exit 0 and a LoRA with the right network
    module). Live loss in the node; cancel stops the whole process group. The LoRA is copied to
    models/loras/lora_foundry/."""

    def train(self, video_dataset: video_dataset.VideoDataset, preset: str, output_name: str, network_dim: int,
              learning_rate: float, epochs: int, train_seed: int, unique_id: str | None = None) -> dict[str, Any]:
        chosen = preset_for(preset)
        check_clip_rate(chosen, video_dataset.fps)
        install = load_musubi_install(_comfy.user_root())
        request = MusubiRequest(preset, video_dataset.toml_path, output_name, video_dataset.clips,
                                network_dim=network_dim, learning_rate=learning_rate, max_train_epochs=epochs,
                                seed=train_seed)
        progress = _comfy.ComfyProgress(unique_id)
        outcome = train_video_lora(install, chosen, request, _comfy.output_root().joinpath(*TRAINING_DIR),
                                   progress=progress, on_event=EventForwarder(unique_id, progress),
                                   should_stop=interrupted, published=published_path(loras_dir(), output_name))
        report = json.dumps(describe(outcome), indent=1)
        if outcome.result is not None and outcome.result.status == "cancelled":
            show_cancel_report(unique_id, report)
            raise outcome.result.cancel_cause or RuntimeError(report)
        published = outcome.published
        return {"ui": {"text": [report]}, "result": (f"{LORAS_SUBDIR}/{published.name}", str(published), report)}


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(WriteVideoDataset, MusubiTrain)
