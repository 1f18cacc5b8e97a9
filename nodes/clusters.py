"""Understanding nodes, part 1: embeddings, clustering, cluster selection (the open_clip loader is
in ``loaders.py``).

Thin classes: model files are resolved through the registry (a missing file fails at once naming
the file and folder, before open_clip is imported), the work lives in ``lora_foundry/stages``,
ComfyUI's progress bar and cancel reach the engine through ``ComfyProgress``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..lora_foundry.stages.clusters import cluster, cluster_stage, embed_stage, embedders, select, select_stage
from ..lora_foundry.workspace import Workspace
from . import _comfy

CATEGORY = f"{_comfy.CATEGORY}/understand"
FRAMES = ("LF_FRAMES", {"tooltip": "Frames in a LoRA Foundry workspace (from Load Video Frames, a filter, a split)."})
HIDDEN = {"unique_id": "UNIQUE_ID"}


def save_previews(sheets: list[tuple[str, Any]]) -> list[dict[str, str]]:
    """Write RGB arrays to ComfyUI's temp folder; the ``ui.images`` entries that show them."""
    from PIL import Image

    folder = _comfy.temp_root() / "lora_foundry_previews"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, pixels in sheets:
        target = folder / f"{name}.png"
        if not target.exists():
            temp = target.with_suffix(".tmp.png")
            Image.fromarray(pixels).save(temp)
            temp.replace(target)
        entries.append({"filename": target.name, "subfolder": "lora_foundry_previews", "type": "temp"})
    return entries


class EmbedFrames:
    DESCRIPTION = ("Embed every frame (batched) with open_clip, or with weights-free pixel features (colour "
                   "histogram + mirror-invariant layout). Embeddings are stored in the workspace and reused by "
                   "later runs; a cancelled run resumes at the next batch.")
    CATEGORY = CATEGORY
    FUNCTION = "embed"
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": FRAMES,
            "method": (list(embedders.METHODS), {"default": "clip", "tooltip": "clip: open_clip image embeddings "
                       "(needs clip_model); pixels: colour/layout features, no weights (scenes, styles)."}),
            "batch_size": ("INT", {"default": 16, "min": 1, "max": 512, "tooltip": "Images per model call."}),
        }, "optional": {
            "clip_model": ("LF_CLIP_MODEL", {"tooltip": "From LF CLIP Loader; needed for method 'clip'."}),
        }, "hidden": HIDDEN}

    def embed(self, frames: Any, method: str, batch_size: int, clip_model: Any = None,
              unique_id: str | None = None) -> tuple[Any, str]:
        with Workspace.from_handle(frames) as ws:
            out = embed_stage.embed_stage(ws, frames, method, clip_model, batch_size, _comfy.ComfyProgress(unique_id))
            info = embed_stage.embedding_info(ws, out)
            report = f"{ws.count(out)} items embedded ({info['embedding_method']}, {info['embedding_dim']}-d, " \
                     f"{info['embedding_model']})"
        return out, report


class EmbedWithClipVision:
    DESCRIPTION = ("Embed every frame with ComfyUI's own CLIP_VISION model (Load CLIP Vision), as an alternative "
                   "to open_clip. Select-by-text is not available with it (no text tower).")
    CATEGORY = CATEGORY
    FUNCTION = "embed"
    RETURN_TYPES = ("LF_FRAMES",)
    RETURN_NAMES = ("frames",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": FRAMES,
            "clip_vision": ("CLIP_VISION", {"tooltip": "From ComfyUI's Load CLIP Vision node."}),
            "batch_size": ("INT", {"default": 16, "min": 1, "max": 512, "tooltip": "Images per model call."}),
        }, "hidden": HIDDEN}

    def embed(self, frames: Any, clip_vision: Any, batch_size: int, unique_id: str | None = None) -> tuple[Any]:
        embedder = clip_vision_embedder(clip_vision)
        with Workspace.from_handle(frames) as ws:
            out = embed_stage.embed_stage(ws, frames, "clip_vision", None, batch_size,
                                    _comfy.ComfyProgress(unique_id), embedder=embedder)
        return (out,)


def clip_vision_embedder(clip_vision: Any) -> tuple[Any, str]:
    """(PIL images -> unit rows, identity) for a ComfyUI CLIP_VISION object."""
    import numpy as np
    import torch

    first = next(iter(clip_vision.model.state_dict().values()))
    fingerprint = hashlib.sha256(first.detach().float().cpu().numpy().tobytes()[:65536]).hexdigest()[:16]

    def run(images: list[Any]) -> Any:
        batch = torch.from_numpy(np.stack([np.asarray(img, np.float32) / 255.0 for img in
                                           [i.resize((224, 224)) for i in images]]))
        out = clip_vision.encode_image(batch)
        rows = out["image_embeds"].float().cpu().numpy()
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    return run, f"clip_vision:{type(clip_vision.model).__name__}:{fingerprint}"


class ClusterFrames:
    DESCRIPTION = ("Group frames with HDBSCAN (PCA to 50 dims first): characters on cut-outs, scenes on "
                   "backgrounds or whole frames (similar clusters merged), a style filter that keeps the "
                   "dominant look, or actions on pose keypoints. Noise is its own bucket (-1). Shows one "
                   "contact sheet per cluster.")
    CATEGORY = CATEGORY
    FUNCTION = "cluster"
    OUTPUT_NODE = True
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": ("LF_FRAMES", {"tooltip": "Embedded frames (LF Embed Frames), or posed frames (LF Tag "
                       "Pose) for mode 'actions'."}),
            "mode": (list(cluster_stage.MODES), {"default": "characters", "tooltip": "characters / scenes / "
                     "style (drops outliers and transition frames) / actions (pose keypoints)."}),
            "min_cluster_size": ("INT", {"default": 5, "min": 2, "max": 10000, "tooltip": "Smallest group "
                                 "HDBSCAN calls a cluster; fewer frames become noise."}),
            "scene_similarity": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                 "Scenes: clusters whose mean embeddings have at least this cosine similarity "
                                 "are one scene."}),
            "style_min_share": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                                "Style: keep clusters holding at least this share of all frames."}),
            "style_min_probability": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                      "tooltip": "Style: drop weak members (transition frames) below this."}),
            "backend": (list(cluster.BACKENDS), {"default": "auto", "tooltip": "HDBSCAN implementation; auto picks "
                        "the faster one measured by bench/cluster.py."}),
        }, "hidden": HIDDEN}

    def cluster(self, frames: Any, mode: str, min_cluster_size: int, scene_similarity: float,
                style_min_share: float, style_min_probability: float, backend: str,
                unique_id: str | None = None) -> dict[str, Any]:
        with Workspace.from_handle(frames) as ws:
            out = cluster_stage.cluster_stage(ws, frames, mode, min_cluster_size, scene_similarity,
                                              style_min_share, style_min_probability, backend,
                                              _comfy.ComfyProgress(unique_id))
            report = cluster_stage.cluster_summary(ws, out)
            sheets = [(f"{out.stage_key[:16]}_c{label}", sheet)
                      for label, sheet in select_stage.cluster_sheets(ws, out)]
        return {"ui": {"images": save_previews(sheets), "text": [report]}, "result": (out, report)}


class SelectClusters:
    DESCRIPTION = ("Keep the frames of chosen clusters: by id ('0, 2'), the N largest, by text ('boy with "
                   "brown hair', nearest cluster through CLIP text) or by reference images. Shows the chosen "
                   "clusters' contact sheets.")
    CATEGORY = CATEGORY
    FUNCTION = "select"
    OUTPUT_NODE = True
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": ("LF_FRAMES", {"tooltip": "Clustered frames (LF Cluster Frames)."}),
            "by": (list(select.BY), {"default": "size_rank", "tooltip": "id / size_rank / text / reference."}),
            "cluster_ids": ("STRING", {"default": "0", "tooltip": "For 'id': comma-separated ids; 'noise' or -1 "
                            "for the noise bucket."}),
            "count": ("INT", {"default": 1, "min": 1, "max": 1000, "tooltip": "How many clusters to keep for "
                      "size_rank / text / reference (the largest, or the nearest)."}),
            "text": ("STRING", {"default": "", "multiline": False, "tooltip": "For 'text': what the cluster "
                     "shows; needs the CLIP model the frames were embedded with."}),
            "reference_images": ("STRING", {"default": "", "multiline": True, "tooltip": "For 'reference': image "
                                 "paths, one per line (absolute or relative to ComfyUI's input folder)."}),
        }, "optional": {
            "clip_model": ("LF_CLIP_MODEL", {"tooltip": "The CLIP model used by LF Embed Frames (text/reference)."}),
        }, "hidden": HIDDEN}

    def select(self, frames: Any, by: str, cluster_ids: str, count: int, text: str, reference_images: str,
               clip_model: Any = None, unique_id: str | None = None) -> dict[str, Any]:
        references = [_input_path(line) for line in reference_images.splitlines() if line.strip()]
        with Workspace.from_handle(frames) as ws:
            out = select_stage.select_stage(ws, frames, by, cluster_ids, count, text, clip_model, references)
            chosen = ws.stage_info(out).get("selected_clusters", [])
            report = f"selected clusters {chosen}: {ws.count(out)} of {ws.count(frames)} items"
            sheets = [(f"{out.stage_key[:16]}_c{label}", sheet)
                      for label, sheet in select_stage.cluster_sheets(ws, out)]
        return {"ui": {"images": save_previews(sheets), "text": [report]}, "result": (out, report)}


def _input_path(text: str) -> Path:
    raw = Path(text.strip().strip('"')).expanduser()
    if not raw.is_absolute():
        raw = (_comfy.input_root() or Path.cwd()) / raw
    if not raw.is_file():
        raise FileNotFoundError(f"reference image {raw} does not exist")
    return raw


NODE_CLASS_MAPPINGS = {
    "LF_EmbedFrames": EmbedFrames,
    "LF_EmbedWithClipVision": EmbedWithClipVision,
    "LF_ClusterFrames": ClusterFrames,
    "LF_SelectClusters": SelectClusters,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LF_EmbedFrames": "LF Embed Frames",
    "LF_EmbedWithClipVision": "LF Embed Frames (CLIP Vision)",
    "LF_ClusterFrames": "LF Cluster Frames",
    "LF_SelectClusters": "LF Select Clusters",
}
