"""Understanding nodes, part 1: open_clip loader, embeddings, clustering, cluster selection.

Thin classes: model files are resolved through the registry (a missing file fails at once naming
the file and folder, before open_clip is imported), the work lives in ``lora_foundry/stages``,
ComfyUI's progress bar and cancel reach the engine through ``ComfyProgress``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..lora_foundry import names
from ..lora_foundry.media.images import to_pil
from ..lora_foundry.stages.clusters import cluster, cluster_stage, embed_stage, embedders, select, select_stage
from ..lora_foundry.workspace import Workspace
from . import _comfy
from ._changed import files_state
from ._declare import choice, integer, mappings, node, number, socket, text
from ._preview import show_pictures
from ._tensors import images_to_tensor, to_numpy, weight_bytes

FRAMES = socket("LF_FRAMES", "Frames in a LoRA Foundry workspace (from Load Video Frames, a filter, a split).")


@node("LF_EmbedFrames", "LF Embed Frames", category="understand", function="embed",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "frames": FRAMES,
          "method": choice(embedders.METHODS, "clip: open_clip image embeddings (needs clip_model); pixels: "
                           "colour/layout features, no weights (scenes, styles).", "clip"),
          "batch_size": integer("Images per model call.", 16, 1, 512),
      },
      optional={"clip_model": socket("LF_CLIP_MODEL", "From LF CLIP Loader; needed for method 'clip'.")})
class EmbedFrames:
    """Embed every frame (batched) with open_clip, or with weights-free pixel features (colour histogram
    + mirror-invariant layout). Embeddings are stored in the workspace and reused by later runs; a
    cancelled run resumes at the next batch."""

    def embed(self, frames: Any, method: str, batch_size: int, clip_model: Any = None,
              unique_id: str | None = None) -> tuple[Any, str]:
        with Workspace.from_handle(frames) as ws:
            out = embed_stage.embed_stage(ws, frames, method, clip_model, batch_size, _comfy.ComfyProgress(unique_id),
                                          runner=_comfy.ray_runner())
            info = embed_stage.embedding_info(ws, out)
            report = f"{ws.count(out)} items embedded ({info[names.INFO_EMBEDDING_METHOD]}, " \
                     f"{info[names.INFO_EMBEDDING_DIM]}-d, {info[names.INFO_EMBEDDING_MODEL]})"
        return out, report


@node("LF_EmbedWithClipVision", "LF Embed Frames (CLIP Vision)", category="understand", function="embed",
      outputs=[("LF_FRAMES", "frames")],
      inputs={
          "frames": FRAMES,
          "clip_vision": socket("CLIP_VISION", "From ComfyUI's Load CLIP Vision node."),
          "batch_size": integer("Images per model call.", 16, 1, 512),
      })
class EmbedWithClipVision:
    """Embed every frame with ComfyUI's own CLIP_VISION model (Load CLIP Vision), as an alternative to
    open_clip. Select-by-text is not available with it (no text tower)."""

    def embed(self, frames: Any, clip_vision: Any, batch_size: int, unique_id: str | None = None) -> tuple[Any]:
        embedder = ClipVisionEmbedder(clip_vision)
        with Workspace.from_handle(frames) as ws:
            out = embed_stage.embed_stage(ws, frames, "clip_vision", None, batch_size,
                                    _comfy.ComfyProgress(unique_id), embedder=embedder)
        return (out,)


class ClipVisionEmbedder:
    """``models.clip_model.Embedder`` over ComfyUI's CLIP_VISION (no text tower): unit rows, in
    batches of 32; ComfyUI moves the model itself."""

    BATCH = 32

    def __init__(self, clip_vision: Any) -> None:
        self.clip_vision = clip_vision
        first = next(iter(clip_vision.model.state_dict().values()))
        fingerprint = hashlib.sha256(weight_bytes(first)).hexdigest()[:16]
        self.identity = f"clip_vision:{type(clip_vision.model).__name__}:{fingerprint}"

    def images(self, pictures: Sequence[Any]) -> Any:
        import numpy as np

        return np.concatenate([self._run([to_pil(p).resize((224, 224)) for p in pictures[i:i + self.BATCH]])
                               for i in range(0, len(pictures), self.BATCH)])

    def texts(self, texts: Sequence[str]) -> None:
        return None

    def _run(self, pictures: list[Any]) -> Any:
        import numpy as np

        batch = images_to_tensor([np.asarray(picture) for picture in pictures])
        rows = to_numpy(self.clip_vision.encode_image(batch)["image_embeds"])
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@node("LF_ClusterFrames", "LF Cluster Frames", category="understand", function="cluster", output_node=True,
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "frames": socket("LF_FRAMES", "Embedded frames (LF Embed Frames), or posed frames (LF Tag Pose) for "
                           "mode 'actions'."),
          "mode": choice(cluster_stage.MODES, "characters / scenes / style (drops outliers and transition "
                         "frames) / actions (pose keypoints).", "characters"),
          "min_cluster_size": integer("Smallest group HDBSCAN calls a cluster; fewer frames become noise.",
                                      5, 2, 10000),
          "scene_similarity": number("Scenes: clusters whose mean embeddings have at least this cosine "
                                     "similarity are one scene.", 0.9, 0.0, 1.0, 0.01),
          "style_min_share": number("Style: keep clusters holding at least this share of all frames.",
                                    0.1, 0.0, 1.0, 0.01),
          "style_min_probability": number("Style: drop weak members (transition frames) below this.",
                                          0.5, 0.0, 1.0, 0.05),
          "backend": choice(cluster.BACKENDS, "HDBSCAN implementation; auto picks the faster one measured by "
                            "bench/cluster.py.", "auto"),
      })
class ClusterFrames:
    """Group frames with HDBSCAN (PCA to 50 dims first): characters on cut-outs, scenes on backgrounds
    or whole frames (similar clusters merged), a style filter that keeps the dominant look, or actions
    on pose keypoints. Frames that resemble no group (title cards, crowd shots) are noise (-1): their
    own 'noise' contact sheet, never offered as a character by LF Select Clusters. Large sets are
    clustered from a 10,000-frame sample. Shows one contact sheet per cluster."""

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
        return {"ui": {"images": show_pictures(sheets), "text": [report]}, "result": (out, report)}


@node("LF_SelectClusters", "LF Select Clusters", category="understand", function="select", output_node=True,
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "frames": socket("LF_FRAMES", "Clustered frames (LF Cluster Frames)."),
          "by": choice(select.BY, "id / size_rank / text / reference.", "size_rank"),
          "cluster_ids": text("For 'id': comma-separated ids; 'noise' or -1 for the noise bucket.", "0"),
          "count": integer("How many clusters to keep for size_rank / text / reference (the largest, or the "
                           "nearest).", 1, 1, 1000),
          "text": text("For 'text': what the cluster shows; needs the CLIP model the frames were embedded with."),
          "reference_images": text("For 'reference': image paths, one per line, relative to ComfyUI's input "
                                   "folder (absolute paths only inside the folders workflows may read).", "", True),
      },
      optional={"clip_model": socket("LF_CLIP_MODEL", "The CLIP model used by LF Embed Frames (text/reference).")})
class SelectClusters:
    """Keep the frames of chosen clusters: by id ('0, 2'), the N largest, by text ('boy with brown
    hair', nearest cluster through CLIP text) or by reference images. Shows the chosen clusters' contact
    sheets."""

    @classmethod
    def IS_CHANGED(cls, by: str = "", reference_images: str = "", **_: Any) -> str:
        """The reference images on disk, when selecting by reference: a replaced picture re-runs the node."""
        if by != "reference":
            return ""
        return files_state(lambda: [_input_path(line) for line in reference_images.splitlines() if line.strip()],
                           reference_images)

    def select(self, frames: Any, by: str, cluster_ids: str, count: int, text: str, reference_images: str,
               clip_model: Any = None, unique_id: str | None = None) -> dict[str, Any]:
        references = [_input_path(line) for line in reference_images.splitlines() if line.strip()]
        with Workspace.from_handle(frames) as ws:
            out = select_stage.select_stage(ws, frames, by, cluster_ids, count, text, clip_model, references)
            chosen = ws.stage_info(out).get(names.INFO_SELECTED_CLUSTERS, [])
            report = f"selected clusters {chosen}: {ws.count(out)} of {ws.count(frames)} items"
            sheets = [(f"{out.stage_key[:16]}_c{label}", sheet)
                      for label, sheet in select_stage.cluster_sheets(ws, out)]
        return {"ui": {"images": show_pictures(sheets), "text": [report]}, "result": (out, report)}


def _input_path(text: str) -> Path:
    """A reference image inside the folders workflows may read (never anywhere on the server)."""
    return _comfy.read_roots().resolve(text, "reference_images", "file")


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(EmbedFrames, EmbedWithClipVision, ClusterFrames,
                                                           SelectClusters)
