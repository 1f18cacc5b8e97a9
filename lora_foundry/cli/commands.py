"""``lora-foundry demo`` and ``ingest``, and the parser every subcommand module adds to (``main``).

``lora-foundry demo`` turns the bundled example clip (lora_foundry/data/) (or a video you name) into a kohya dataset
under the output root (``--out``, or ComfyUI's output folder: ``locations``) with only what needs no model
weights, printing what each stage did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..data import EXAMPLE_VIDEO
from ..kohya import dataset
from ..kohya.launcher import TrainingFailed
from ..kohya.operator_config import TrainerNotConfigured
from ..progress import Cancelled, PrintProgress
from ..stages.frames import filter_stage as filters
from ..stages.frames import ingest_stage as ingest
from ..workspace import Workspace, workspace_path
from ..workspace.files import WorkspaceBusyError
from . import leco as cli_leco
from . import locations
from . import scale as cli_scale
from . import training as cli_training
from . import video as cli_video

BUNDLED_VIDEO = EXAMPLE_VIDEO  # ships in the package (lora_foundry/data/), never read from beside the checkout


def _ingest_options(args: argparse.Namespace) -> ingest.VideoIngestOptions:
    return ingest.VideoIngestOptions(mode=args.mode, interval_s=args.interval, per_shot=args.per_shot,
                                     start_s=args.start, end_s=args.end, max_frames=args.max_frames,
                                     long_side=args.long_side, frame_format=args.frame_format)


def _add_sampling_args(parser: argparse.ArgumentParser) -> None:
    locations.add_out_argument(parser)
    parser.add_argument("--workspace", default="demo", help="workspace name")
    parser.add_argument("--mode", default="scene", choices=["scene", "interval", "keyframes", "all"])
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between frames (interval mode)")
    parser.add_argument("--per-shot", type=int, default=3, help="frames per shot (scene mode)")
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--end", type=float, default=0.0)
    parser.add_argument("--max-frames", type=int, default=0)
    parser.add_argument("--long-side", type=int, default=0)
    parser.add_argument("--frame-format", default="jpg", choices=list(ingest.FRAME_FORMATS))


def _step(label: str, started: float, detail: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {label}: {detail}", flush=True)


def run_ingest(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with Workspace.open(workspace_path(locations.output_root(args.out), args.workspace)) as ws:
        handle = ingest.ingest_video(ws, args.video, _ingest_options(args), PrintProgress("extract frames"),
                                     PrintProgress("find cuts"))
        summary = ingest.ingest_summary(ws, handle)
        _step("ingest", started, f"{ws.count(handle)} frames, {len(summary.cuts)} cuts in {ws.root}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    video_path = args.video or BUNDLED_VIDEO
    if not video_path.is_file():
        print(f"no video at {video_path}: give one, e.g. lora-foundry demo my_clip.mp4 --out out", file=sys.stderr)
        return 2
    out = locations.output_root(args.out)
    with Workspace.open(workspace_path(out, args.workspace)) as ws:
        frames = ingest.ingest_video(ws, video_path, _ingest_options(args), PrintProgress("extract frames"),
                                     PrintProgress("find cuts"))
        summary = ingest.ingest_summary(ws, frames)
        _step("frames", started, f"{ws.count(frames)} frames from {video_path.name}; cuts at {summary.cut_times()} s "
              f"({summary.shots} shots)")
        kept, report = filters.filter_frames(ws, frames, filters.FilterOptions(), PrintProgress("measure"))
        _step("filter", started, f"kept {report['kept']}, dropped {report['dropped']} {report['dropped_by_reason']}")
        spec = dataset.DatasetSpec(name=args.dataset_name, trigger=args.trigger, class_word=args.class_word,
                                   repeats=args.repeats, if_exists="new_version")
        written = dataset.write_kohya_dataset(ws, kept, spec, dataset.datasets_root(out), PrintProgress("write"))
    _step("dataset", started, f"{written.image_count} images + captions in {written.subset_dir}")
    _step("dataset", started, f"sd-scripts config: {written.toml_path}")
    print(json.dumps({"dataset": str(written.path), "images": written.image_count}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lora-foundry", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="video -> frames -> filter -> kohya dataset, no model weights")
    demo.add_argument("video", type=Path, nargs="?", help="a video (default: the bundled six-shot example clip)")
    demo.add_argument("--trigger", default="lfdemo")
    demo.add_argument("--class-word", default="")
    demo.add_argument("--dataset-name", default="demo")
    demo.add_argument("--repeats", type=int, default=10)
    _add_sampling_args(demo)
    demo.set_defaults(run=run_demo)
    ingest_cmd = commands.add_parser("ingest", help="sample a video into a workspace (resumable)")
    ingest_cmd.add_argument("video", type=Path)
    _add_sampling_args(ingest_cmd)
    ingest_cmd.set_defaults(run=run_ingest)
    cli_training.add_commands(commands)
    cli_scale.add_commands(commands, _add_sampling_args, _ingest_options)
    cli_leco.add_commands(commands)
    cli_video.add_commands(commands)
    return parser


# Errors a user can meet and fix (bad input, a busy workspace, a missing trainer or model, a
# cancel): one line and a non-zero exit, never a traceback. Anything else is a bug and keeps its
# traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, OSError, WorkspaceBusyError, TrainerNotConfigured, TrainingFailed, Cancelled)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("lora-foundry: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as error:
        print(f"lora-foundry: {' '.join(str(error).split()) or type(error).__name__}", file=sys.stderr)
        return 1


