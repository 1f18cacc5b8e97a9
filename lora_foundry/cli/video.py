"""``lora-foundry video-dataset`` and ``train-video``: video LoRAs from the command line.

``video-dataset`` runs the graph of ``video_lora_dataset_from_film.json`` without the clustering:
the video's shots, clips for a model, the clip filters, motion captions, a musubi-tuner dataset
under ``OUT/lora_foundry/datasets`` (where the node writes it). ``train-video`` trains that dataset
with the configured musubi-tuner (``MUSUBI_TUNER`` or ``musubi.json``, as for the node): the three
steps, one loss line per step, Ctrl-C cancels, and the LoRA goes where ``train`` puts LoRAs. Both
take the output folders of the other commands (``locations``); the dataset's files are read bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..kohya.dataset import datasets_root
from ..kohya.publish import published_path
from ..kohya.training import TRAINING_DIR
from ..musubi.dataset import VideoDatasetSpec, read_video_dataset, write_video_dataset
from ..musubi.install import PRESETS, load_musubi_install, preset_for
from ..musubi.launcher import MusubiRequest, check_clip_rate, describe, train_video_lora
from ..progress import PrintProgress
from ..stages.clips.caption_stage import caption_clips
from ..stages.clips.cut_stage import cut_clips_stage
from ..stages.clips.filter_stage import ClipFilterOptions, filter_clips
from ..stages.clips.rules import MODEL_RULES, X264_PRESETS, ClipOptions
from ..stages.frames.ingest_stage import VideoIngestOptions, ingest_video
from ..workspace import Workspace, workspace_path
from . import locations
from .training import _CtrlC, _print_loss, _reported


def run_video_dataset(args: argparse.Namespace) -> int:
    out = locations.output_root(args.out)
    ws = Workspace.open(workspace_path(out, args.workspace))
    frames = ingest_video(ws, args.video, VideoIngestOptions(mode="scene"), PrintProgress("shots"))
    options = ClipOptions(model=args.model, min_s=args.min_s, max_s=args.max_s, split_long=not args.no_split,
                          max_per_shot=args.max_per_shot, preset=args.x264_preset)
    clips = cut_clips_stage(ws, frames, options, PrintProgress("clips"))
    clips = filter_clips(ws, clips, ClipFilterOptions(min_motion=args.min_motion))
    clips = caption_clips(ws, clips, args.trigger, args.class_word, progress=PrintProgress("captions"))
    spec = VideoDatasetSpec(name=args.name, trigger=args.trigger, class_word=args.class_word)
    written = write_video_dataset(ws, clips, spec, datasets_root(out), progress=PrintProgress("dataset"))
    print(json.dumps({"dataset": str(written.path), "dataset_toml": str(written.toml_path), "clips": written.clips,
                      "fps": written.fps, "frame_counts": list(written.frame_counts)}, indent=1), flush=True)
    return 0


@_reported
def run_train_video(args: argparse.Namespace) -> int:
    dataset = read_video_dataset(args.dataset.expanduser().resolve())
    preset = preset_for(args.preset)
    check_clip_rate(preset, dataset.fps)
    where = locations.outputs(args.out, args.loras_dir)
    print(where.note(), file=sys.stderr, flush=True)
    request = MusubiRequest(args.preset, dataset.toml_path, args.name, dataset.clips,
                            network_dim=args.rank, learning_rate=args.lr, max_train_epochs=args.epochs, seed=args.seed)
    install = load_musubi_install(locations.user_dir(args.user_dir))
    with _CtrlC("musubi-tuner") as ctrl_c:
        outcome = train_video_lora(install, preset, request, where.root.joinpath(*TRAINING_DIR),
                                   PrintProgress("train-video"), _print_loss, lambda: ctrl_c.requested,
                                   published_path(where.loras, args.name))
    print(json.dumps(describe(outcome), indent=1), flush=True)
    return 130 if outcome.result is not None and outcome.result.status == "cancelled" else 0


def add_commands(commands: Any) -> None:
    """Register ``video-dataset`` and ``train-video`` on the main parser's subcommands."""
    build = commands.add_parser("video-dataset", help="video -> shot-true clips -> captions -> musubi-tuner dataset")
    build.add_argument("video", type=Path)
    build.add_argument("--model", default="wan", choices=sorted(MODEL_RULES))
    build.add_argument("--name", required=True, help="dataset folder name (plain name)")
    build.add_argument("--trigger", required=True)
    build.add_argument("--class-word", default="")
    build.add_argument("--min-s", type=float, default=2.0)
    build.add_argument("--max-s", type=float, default=5.0)
    build.add_argument("--max-per-shot", type=int, default=4)
    build.add_argument("--no-split", action="store_true", help="one clip per shot")
    build.add_argument("--x264-preset", default="medium", choices=X264_PRESETS, help="encoder speed")
    build.add_argument("--min-motion", type=float, default=0.4, help="static-clip threshold (0 keeps all)")
    build.add_argument("--workspace", default="video", help="workspace name under OUT/lora_foundry/workspaces")
    locations.add_out_argument(build)
    build.set_defaults(run=run_video_dataset)
    train = commands.add_parser("train-video", help="train a video LoRA with the configured musubi-tuner "
                                "(cache latents, cache text outputs, train; Ctrl-C cancels)")
    train.add_argument("dataset", type=Path, help="a folder written by video-dataset / LF Write Video Dataset")
    train.add_argument("--preset", default="wan21_t2v_1.3B", choices=list(PRESETS))
    train.add_argument("--name", required=True, help="LoRA file name (plain name)")
    train.add_argument("--rank", type=int, default=32)
    train.add_argument("--lr", type=float, default=2e-4)
    train.add_argument("--epochs", type=int, default=16)
    train.add_argument("--seed", type=int, default=42)
    locations.add_output_arguments(train)
    train.set_defaults(run=run_train_video)
