"""Peak memory of SAM 2 tracking through a short and a long shot: sam2's own loading vs ours.

sam2's ``init_state`` reads the whole shot as float32 at 1024 x 1024 (12.6 MB a frame) and keeps
every frame's outputs; ``lora_foundry.stages.video_tracking`` reads frames as tracking reaches them
and drops outputs sam2 can no longer read. Each run is a fresh child process that tracks one
object from the first frame of a long single shot (people walking, see long_shot_video) with the shrunk
random-weight stand-in of the tests (real memory layout: 7 mask memories, 16 object pointers);
we print each child's peak RSS and seconds per frame, and the ratios from this one run.

    python bench/track_memory.py [--frames 40 160]
"""

from __future__ import annotations

import argparse
import importlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
def long_shot_video(folder: Path) -> Path:
    """A long single shot with motion (1,394 frames at 10 fps) cut from the bundled clip into ``folder``."""
    sys.path.insert(0, str(REPO / "tests"))
    return importlib.import_module("media_clips").long_shot(folder)



def write_frames(video: Path, folder: Path, count: int) -> None:
    """The first ``count`` frames as 0.jpg, 1.jpg, ... (the folder layout sam2's loader reads)."""
    from PIL import Image

    from lora_foundry.media.video import iter_frames

    folder.mkdir(parents=True, exist_ok=True)
    for frame in iter_frames(video, wanted=lambda index: index < count):
        Image.fromarray(frame.rgb).save(folder / f"{frame.index}.jpg", quality=95)


def save_standin(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    import torch
    from sam2.build_sam import build_sam2_video_predictor
    from test_sam2_standin import SHRINK, STANDIN_CONFIG

    torch.manual_seed(0)
    model = build_sam2_video_predictor(STANDIN_CONFIG, None, device="cpu", hydra_overrides_extra=list(SHRINK))
    with torch.no_grad():  # "object present", so random weights keep tracking something
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    path = folder / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


def child(method: str, folder: Path, count: int, checkpoint: Path) -> None:
    """Track one object through ``count`` frames; print peak RSS (kB) and seconds per frame."""
    sys.path.insert(0, str(REPO / "tests"))
    import numpy as np
    from test_sam2_standin import SHRINK

    from lora_foundry.models.sam2_model import load_sam2
    from lora_foundry.stages.layers import video_tracking

    predictor = load_sam2(checkpoint, "cpu", hydra_overrides=SHRINK)
    paths = [folder / f"{index}.jpg" for index in range(count)]
    frames = video_tracking.ShotFrames(paths, predictor.image_size)
    mask = np.zeros((frames.height, frames.width), bool)
    mask[frames.height // 4: frames.height * 3 // 4, frames.width // 3: frames.width * 2 // 3] = True
    started = time.monotonic()
    if method == "sam2":
        state = predictor.init_state(str(folder))  # the folder holds exactly ``count`` frames
        predictor.add_new_mask(state, frame_idx=0, obj_id=0, mask=mask)
        tracked = sum(int((logits > 0).any()) for _, _, logits in predictor.propagate_in_video(state))
    else:
        state = video_tracking.new_state(predictor, frames)
        tracked = sum(int((logits > 0).any()) for _, logits in video_tracking.track_logits(predictor, state, [mask]))
    per_frame = (time.monotonic() - started) / count
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, per_frame, tracked, file=sys.stderr)


def measure(method: str, folder: Path, count: int, checkpoint: Path) -> tuple[float, float]:
    command = [sys.executable, __file__, "--child", method, str(folder), str(count), str(checkpoint)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    peak_kb, per_frame, tracked = done.stderr.strip().splitlines()[-1].split()
    if int(tracked) != count:
        raise RuntimeError(f"{method}: only {tracked} of {count} frames had a mask")
    return int(peak_kb) / 1024, float(per_frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs=2, default=[40, 160])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, folder, count, checkpoint = args.child
        child(method, Path(folder), int(count), Path(checkpoint))
        return 0
    small, large = args.frames
    with tempfile.TemporaryDirectory(prefix="lf-bench-track-") as tmp:
        root = Path(tmp)
        checkpoint = save_standin(root)
        video = long_shot_video(root / "media")
        results = {}
        for count in (small, large):
            write_frames(video, root / f"f{count}", count)
            for method in ("sam2", "ours"):
                results[method, count] = measure(method, root / f"f{count}", count, checkpoint)
                peak, per_frame = results[method, count]
                print(f"{method:5s} {count:4d} frames: peak RSS {peak:7.1f} MB, {per_frame:.3f} s/frame")
    growth = {method: results[method, large][0] / results[method, small][0] for method in ("sam2", "ours")}
    print(f"peak RSS {large} / {small} frames: sam2 {growth['sam2']:.2f}, ours {growth['ours']:.2f}")
    print(f"ours / sam2 at {large} frames: peak RSS {results['ours', large][0] / results['sam2', large][0]:.2f}, "
          f"time per frame {results['ours', large][1] / results['sam2', large][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
