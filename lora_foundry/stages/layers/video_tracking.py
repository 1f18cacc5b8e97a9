"""SAM 2 video tracking through one shot without holding the shot in memory.

sam2's ``init_state`` reads every frame of a video up front, resized to the model's input size as
float32: 12.6 MB a frame at 1024 px, so a 1,000-frame shot needs 12.6 GB before tracking starts
(``async_loading_frames`` only moves that load to a thread; it still keeps every frame). Its
per-frame outputs also pile up for the whole shot. Tracking needs neither:

- ``ShotFrames`` is a sequence that reads a frame from the workspace when sam2 asks for it and
  keeps only the last few (sam2 asks for each frame once per step; all objects share it);
- ``forget_unreachable`` drops per-frame outputs older than the farthest frame sam2's memory
  attention still reads (``memory_reach``), so the state stays the same size.

The result is exactly what sam2's own ``init_state`` + ``propagate_in_video`` give on the same
frames (a test compares the mask logits bit for bit).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...cache import BoundedCache
from ...media import images

SAM2_MEAN = (0.485, 0.456, 0.406)  # sam2's load_video_frames defaults
SAM2_STD = (0.229, 0.224, 0.225)
MINIMUM_SAM2 = (1, 1)  # per-object state layout ("output_dict_per_obj") came with sam2 1.1


class ShotFrames(Sequence):
    """A shot's frames as sam2 reads them (3 x S x S, normalised), loaded on demand.

    Preprocessing matches sam2's ``load_video_frames`` for image folders step for step (PIL
    resize to S x S, /255 in float64, cast to float32, then mean/std in float32) so tracking
    results equal sam2's own. Only the ``keep`` most recent frames stay in memory; ``loads`` and
    ``most_resident`` let tests and benchmarks see that.
    """

    def __init__(self, paths: Sequence[Path], image_size: int, keep: int = 2) -> None:
        if not paths:
            raise ValueError("a shot needs at least one frame")
        import torch

        self.paths = list(paths)
        self.image_size = image_size
        self.keep = max(keep, 1)
        self.most_resident = 0
        self._mean = torch.tensor(SAM2_MEAN, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(SAM2_STD, dtype=torch.float32)[:, None, None]
        self._recent: BoundedCache[Any] = BoundedCache(self.keep)
        self.height, self.width = _frame_size(self.paths[0])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        if not isinstance(index, int):
            raise TypeError("ShotFrames is indexed by one frame number")
        tensor = self._recent.get(index, lambda: self._load(index))
        self.most_resident = max(self.most_resident, len(self._recent))
        return tensor

    @property
    def loads(self) -> int:
        """How many frames were read from disk (a frame evicted and read again counts twice)."""
        return self._recent.loads

    def _load(self, index: int) -> Any:
        import torch

        path = self.paths[index]
        pixels = images.load_rgb(path)
        height, width = pixels.shape[:2]
        if (height, width) != (self.height, self.width):
            raise ValueError(f"{path.name} is {width}x{height}, but its shot's first frame is "
                             f"{self.width}x{self.height}: frames of one shot must share a size")
        resized = images.resize_like_pillow(pixels, (self.image_size, self.image_size))
        scaled = (resized / 255.0).astype(np.float32)
        return (torch.from_numpy(scaled).permute(2, 0, 1) - self._mean) / self._std


def _frame_size(path: Path) -> tuple[int, int]:
    return images.image_size(path)


def check_tracker(model: Any) -> None:
    """Refuse a model that cannot track, or a sam2 too old for the state built here, clearly."""
    from importlib.metadata import version

    if not hasattr(model, "propagate_in_video"):
        raise TypeError("tracking needs SAM 2 loaded by LF SAM2 Loader (sam2's video predictor class); "
                        f"got {type(model).__name__}")
    installed = tuple(int(part) for part in version("sam2").split(".")[:2] if part.isdigit())
    if installed < MINIMUM_SAM2:
        raise RuntimeError(f"tracking needs sam2 >= {'.'.join(map(str, MINIMUM_SAM2))}; installed: "
                           f"{version('sam2')} (SAM2_BUILD_CUDA=0 pip install --no-build-isolation -U sam2)")


def new_state(predictor: Any, frames: ShotFrames) -> dict[str, Any]:
    """The inference state sam2's ``init_state`` builds, with ``frames`` in place of a loaded video.

    The keys mirror sam2 1.1's ``init_state`` (a test checks they still do); frames and the
    state stay on the CPU when the model is there, otherwise the state lives on the model's device.
    """
    import torch

    device = predictor.device
    state: dict[str, Any] = {
        "images": frames, "num_frames": len(frames),
        "offload_video_to_cpu": True, "offload_state_to_cpu": False,
        "video_height": frames.height, "video_width": frames.width,
        "device": device, "storage_device": device,
        "point_inputs_per_obj": {}, "mask_inputs_per_obj": {}, "cached_features": {}, "constants": {},
        "obj_id_to_idx": OrderedDict(), "obj_idx_to_id": OrderedDict(), "obj_ids": [],
        "output_dict_per_obj": {}, "temp_output_dict_per_obj": {}, "frames_tracked_per_obj": {},
    }
    with torch.inference_mode():
        predictor._get_image_feature(state, frame_idx=0, batch_size=1)  # as init_state: warm frame 0
    return state


def memory_reach(predictor: Any) -> int:
    """How many frames back sam2 reads earlier outputs while tracking a frame (see
    ``SAM2Base._prepare_memory_conditioned_features``): mask memories reach ``(num_maskmem - 2) *
    stride + 1`` frames back (the last frame, then every stride-th), object pointers
    ``max_obj_ptrs_in_encoder - 1``."""
    stride = max(int(getattr(predictor, "memory_temporal_stride_for_eval", 1)), 1)
    masks_reach = max(int(predictor.num_maskmem) - 2, 0) * stride + 1
    pointers_reach = int(getattr(predictor, "max_obj_ptrs_in_encoder", 1)) - 1
    if not getattr(predictor, "use_obj_ptrs_in_encoder", True):
        pointers_reach = 0
    return max(masks_reach, pointers_reach)


def forget_unreachable(state: dict[str, Any], next_frame: int, reach: int) -> None:
    """Drop tracked (non-conditioning) outputs that frame ``next_frame`` and later can no longer
    read; conditioning frames (where the masks were given) are kept, as sam2 always reads them."""
    for outputs in state["output_dict_per_obj"].values():
        tracked = outputs["non_cond_frame_outputs"]
        for stale in [t for t in tracked if t < next_frame - reach]:
            del tracked[stale]


def track_logits(predictor: Any, state: dict[str, Any], keyframe_masks: Sequence[np.ndarray]
                 ) -> Iterator[tuple[int, Any]]:
    """Track each keyframe mask (object i = mask i, given on frame 0) forward through the state's frames.

    Yields ``(frame_idx, logits)`` with logits (objects x H x W, video resolution, >0 = object)
    as sam2's ``propagate_in_video`` does, dropping outputs sam2 can no longer read as it goes.
    """
    add_objects(predictor, state, 0, keyframe_masks, first_id=0)
    yield from _propagate(predictor, state, 0, memory_reach(predictor))


def add_objects(predictor: Any, state: dict[str, Any], frame_idx: int, masks: Sequence[np.ndarray],
                first_id: int) -> int:
    """Give sam2 each mask as a new object on ``frame_idx`` (ids ``first_id``, ``first_id + 1``, ...);
    returns how many were added."""
    for offset, mask in enumerate(masks):
        predictor.add_new_mask(state, frame_idx=frame_idx, obj_id=first_id + offset, mask=np.asarray(mask, bool))
    return len(masks)


def _propagate(predictor: Any, state: dict[str, Any], start: int, reach: int) -> Iterator[tuple[int, Any]]:
    for frame_idx, _ids, logits in predictor.propagate_in_video(state, start_frame_idx=start):
        yield frame_idx, logits[:, 0]
        forget_unreachable(state, frame_idx + 1, reach)


FindNew = Callable[[int, list[np.ndarray]], list[np.ndarray]]


def track_shot(predictor: Any, paths: Sequence[Path], keyframe_masks: Sequence[np.ndarray],
               find_new: FindNew | None = None, every: int = 0, keep_frames: int = 2
               ) -> Iterator[tuple[int, list[np.ndarray]]]:
    """For each frame of the shot after the first, the mask of every object so far (bool H x W,
    empty when the object is not in the frame), object i at position i, in frame order.

    Objects are the keyframe masks, plus, when ``find_new`` is given, what it returns on every
    ``every``-th frame: ``find_new(frame_idx, tracked_masks)`` gives the masks of characters not
    tracked yet; they join as new objects on that frame (their given mask is that frame's mask)
    and are tracked from the next frame on, with the objects already there. ``predictor`` has passed
    ``check_tracker`` (its callers check once per run, not once per shot).
    """
    if len(paths) < 2:
        return
    state = new_state(predictor, ShotFrames(paths, predictor.image_size, keep_frames))
    reach = memory_reach(predictor)
    count = add_objects(predictor, state, 0, keyframe_masks, first_id=0)
    frame = 1
    while frame < len(paths):
        if count == 0:  # nothing to track yet: look for characters, or pass the frame by
            found = find_new(frame, []) if _due(frame, every, find_new) else []
            count += add_objects(predictor, state, frame, found, first_id=0)
            yield frame, list(found)
            frame += 1
            continue
        for frame_idx, logits in _propagate(predictor, state, frame, reach):
            masks = [plane.cpu().numpy() > 0 for plane in logits]
            found = find_new(frame_idx, masks) if _due(frame_idx, every, find_new) else []
            frame = frame_idx + 1
            yield frame_idx, masks + list(found)
            if found:  # restart after this frame so sam2 tracks the new objects too
                count += add_objects(predictor, state, frame_idx, found, first_id=count)
                break


def _due(frame_idx: int, every: int, find_new: FindNew | None) -> bool:
    return find_new is not None and every > 0 and frame_idx % every == 0


def overlaps_any(mask: np.ndarray, others: Sequence[np.ndarray], limit: float = 0.5) -> bool:
    """Whether ``mask`` shares more than ``limit`` of the smaller of itself and some other mask
    (so a part of a tracked character, or a character inside a found region, is not new)."""
    area = int(mask.sum())
    for other in others:
        smaller = min(area, int(other.sum()))
        if smaller and np.logical_and(mask, other).sum() > limit * smaller:
            return True
    return False
