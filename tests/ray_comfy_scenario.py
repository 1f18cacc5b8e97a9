"""The pack's nodes on a Ray cluster, imported as ComfyUI imports them: under a path-derived name.

Started by ray_scenarios.py (inside its private network namespace) as ``python
tests/ray_comfy_scenario.py ADDRESS TMP``, without PYTHONPATH: the pack folder is loaded as
its own path, as ComfyUI names it (so its engine is ``/…/<pack>.lora_foundry``, a name no Ray
worker can import), then LF Load Video Frames and LF Embed Frames (pixels, and a tiny
random-weight open_clip model) run twice: on this machine, and with ``LF_RAY_ADDRESS`` set (the
operator's configuration). Prints one JSON line: both workspaces' roots and the node reports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

from clip_standin import save_tiny_local_dir

REPO = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ["LF_TEST_MEDIA"])  # the clips tests/media_clips.py made for this run
PACK = str(REPO).replace(".", "_x_")
"""The name ComfyUI 0.3's ``load_custom_node`` gives a pack folder: its path, dots replaced."""



def import_pack() -> types.ModuleType:
    """The pack folder imported as ComfyUI imports it (nodes.py ``load_custom_node``)."""
    spec = importlib.util.spec_from_file_location(PACK, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


def run_nodes(pack: types.ModuleType, out: Path, clip_dir: Path) -> dict:
    os.environ["LORA_FOUNDRY_OUTPUT"] = str(out)
    nodes = pack.NODE_CLASS_MAPPINGS
    frames, report = nodes["LF_LoadVideoFrames"]().load(
        video="montage_6_shots.mp4", workspace="ws", mode="scene", interval_s=1.0, per_shot=2, start_s=0.0, end_s=0.0,
        max_frames=0, long_side=160, frame_format="jpg")
    _, pixels = nodes["LF_EmbedFrames"]().embed(frames, "pixels", 2)
    clip = pack.lora_foundry.models.clip_model.load_clip(clip_dir, "auto", "cpu")
    _, clip_report = nodes["LF_EmbedFrames"]().embed(frames, "clip", 3, clip)
    return {"root": str(out / "lora_foundry" / "workspaces" / "ws"), "reports": [json.loads(report), pixels,
                                                                                  clip_report]}


def main(address: str, temp: Path) -> dict:
    os.environ["LORA_FOUNDRY_INPUT"] = str(MEDIA)
    os.environ.pop("LF_RAY_ADDRESS", None)
    pack = import_pack()
    clip_dir = temp / "models" / "tiny-clip"
    save_tiny_local_dir(clip_dir)
    local = run_nodes(pack, temp / "local", clip_dir)
    top_before = "lora_foundry" in sys.modules
    os.environ["LF_RAY_ADDRESS"] = address
    ray = run_nodes(pack, temp / "ray", clip_dir)
    import ray as ray_module

    return {"local": local, "ray": ray, "top_level_before_ray": top_before,
            "top_level_file": getattr(sys.modules.get("lora_foundry"), "__file__", None),
            "ray_connected": ray_module.is_initialized()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
