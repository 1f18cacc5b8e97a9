"""Layer nodes: SAM 2 / LaMa loaders, layer split (characters vs background), inpainting, and
IMAGE/MASK interop so other packs' masks come in and ours go out.

The work lives in ``lora_foundry/stages``; these classes declare inputs, resolve model files (a
missing file fails at once naming file and folder, before any backend is imported) and pass
ComfyUI's progress bar and interrupt into the engine.
"""

from __future__ import annotations

from typing import Any

from ..lora_foundry.media.images import letterbox, load_rgb
from ..lora_foundry.stages.layers import inpaint_stage, split, split_stage, track_stage
from ..lora_foundry.stages.layers.inpaint import OPENCV_METHOD, InpaintSettings, lama_filler, opencv_filler
from ..lora_foundry.stages.layers.segment import CharacterRules, parse_color
from ..lora_foundry.workspace import Workspace
from . import _comfy
from ._declare import boolean, choice, integer, mappings, node, number, socket, text
from ._tensors import images_to_tensor, masks_to_tensor, tensor_to_masks

FRAMES = socket("LF_FRAMES", "Frames in a LoRA Foundry workspace (from Load Video Frames or a filter).")


@node("LF_SAM2LayerSplit", "LF SAM2 Layer Split", category="layers", function="split",
      outputs=[("LF_FRAMES", "cutouts"), ("LF_FRAMES", "backgrounds"), ("IMAGE", "preview")],
      inputs={
          "frames": FRAMES,
          "sam2_model": socket("LF_SAM2_MODEL", "From LF SAM2 Loader."),
          "mode": choice(split.MODES, "prompts: only your boxes/points; automatic: SAM 2 finds instances and the "
                         "rules below pick characters; auto: prompts if given.", "auto"),
          "prompts": text('JSON, one object per character: [{"box": [x0,y0,x1,y1]}, {"points": [[x,y]], '
                          '"labels": [1]}] in pixels, or {"relative": true, "objects": [...]} with 0..1 fractions '
                          'of the frame.', "", True),
          "points_per_side": integer("Automatic mode: grid of points per side (cost grows with its square).",
                                     16, 1, 64),
          "min_area": number("Automatic: smallest character, as a share of the frame.", 0.01, 0.0, 1.0, 0.005),
          "max_area": number("Automatic: largest character share (bigger regions are floor, sky, walls).",
                             0.6, 0.0, 1.0, 0.01),
          "max_border_sides": integer("Automatic: masks touching more frame edges than this are scenery.",
                                      2, 0, 4),
          "max_characters": integer("Keep at most this many characters per frame (largest area x score first).",
                                    8, 1, 64),
          "margin": integer("Pixels kept around each cut-out's box.", 16, 0, 512),
          "plain_color": text("Colour under the transparent pixels of cut-outs (what a tool that ignores alpha "
                              "sees): #RRGGBB or r,g,b.", "#FFFFFF"),
      },
      optional={
          # Text-prompt settings are sockets, not widgets, so workflows saved before they existed keep their
          # widget positions (a UI workflow stores widget values by position).
          "clip_model": socket("LF_CLIP_MODEL", "From LF CLIP Loader: lets text_prompt say which automatic "
                               "instances are characters (needed only with a text prompt)."),
          "text_prompt": text("What the characters are, comma-separated (e.g. 'a rabbit, a person'); connect a "
                              "String node. Used with clip_model when no boxes/points are given; empty = "
                              "area/border rules only."),
          "text_margin": number("Text (default 0.02): keep an instance whose CLIP similarity to a phrase is within "
                                "this of the frame's best instance for that phrase (0 = only the best; larger "
                                "keeps near-ties).", 0.02, 0.0, 2.0, 0.005),
          "text_min_similarity": number("Text (default 0.15): never keep an instance whose CLIP similarity to its "
                                        "phrase is below this (a frame without the character gives none).",
                                        0.15, -1.0, 1.0, 0.01),
      })
class SAM2LayerSplit:
    """Split each frame into characters and background with SAM 2: one mask per instance (never one
    merged mask). Characters are the prompted objects, or in automatic mode the instances that pass the
    area and border rules. With a CLIP model and a text prompt ("a rabbit, a person") and no
    boxes/points, the automatic instances that pass those rules are scored by CLIP against each phrase:
    an instance is kept for a phrase when its similarity is at least text_min_similarity and within
    text_margin of the frame's best instance for that phrase; its phrase and similarity are recorded on
    the cut-out and added to its tags. Gives RGBA cut-outs (alpha = mask, for kohya alpha_mask) and
    backgrounds whose transparent pixels are the hole to inpaint. Resumes per frame."""

    def split(self, frames: Any, sam2_model: Any, mode: str, prompts: str, points_per_side: int,
              min_area: float, max_area: float, max_border_sides: int, max_characters: int, margin: int,
              plain_color: str, clip_model: Any | None = None, text_prompt: str = "", text_margin: float = 0.02,
              text_min_similarity: float = 0.15, unique_id: str | None = None, **more: Any) -> tuple[Any, Any, Any]:
        rules = CharacterRules(min_area=min_area, max_area=max_area, max_border_sides=max_border_sides,
                               max_characters=max_characters)
        options = split.SplitOptions(prompts=prompts, mode=mode, points_per_side=points_per_side, rules=rules,
                                      margin=margin, plain_color=plain_color, text_prompt=text_prompt,
                                      text_margin=text_margin, text_min_similarity=text_min_similarity)
        with Workspace.from_handle(frames) as ws:
            everything = self._run(ws, frames, sam2_model, options, _comfy.ComfyProgress(unique_id), clip_model,
                                   **more)
            cutouts, backgrounds = split_stage.cutouts_and_backgrounds(ws, everything)
            preview = _preview(ws.items(cutouts)[:8], parse_color(plain_color))
        return cutouts, backgrounds, preview

    def _run(self, ws: Workspace, frames: Any, sam2_model: Any, options: Any, progress: Any, clip: Any) -> Any:
        """The engine call; subclasses change it (and take their own extra inputs)."""
        return split_stage.split_layers(ws, frames, sam2_model, options, progress, clip=clip)


@node("LF_SAM2TrackShots", "LF SAM2 Track Through Shots", category="layers", function="split",
      outputs=[("LF_FRAMES", "cutouts"), ("LF_FRAMES", "backgrounds"), ("IMAGE", "preview")],
      inputs=SAM2LayerSplit.INPUTS.required,
      optional={
          **SAM2LayerSplit.INPUTS.optional,
          "redetect_every": integer(
              "0 = find characters on each shot's first frame only. N = also look every N frames of the shot (the "
              "same way) and track the characters found there that overlap none already tracked, up to "
              "max_characters per shot (each tracked character costs time on every frame).", 0, 0, 10_000),
      })
class SAM2TrackShots(SAM2LayerSplit):
    """Like LF SAM2 Layer Split, but each character is found once, on the first frame of its shot (by
    your boxes/points, the automatic rules or a text prompt, with the same settings), and SAM 2's video
    tracking follows it through the rest of the shot. Every cut-out carries 'track', the same number for
    the same character throughout the shot, and a character the per-frame rules would miss in some frame
    is still cut out. Frames are read as tracking reaches them, never the whole shot at once. Prompts
    apply to each shot's first frame; with redetect_every, characters entering later are found and
    tracked too. Resumes per shot: a cancelled run keeps finished shots."""

    def _run(self, ws: Workspace, frames: Any, sam2_model: Any, options: Any, progress: Any, clip: Any,
             redetect_every: int = 0) -> Any:
        return track_stage.track_layers(ws, frames, sam2_model, options, progress, clip=clip,
                                        redetect_every=redetect_every, runner=_comfy.ray_runner())


def _preview(items: list[Any], color: tuple[int, int, int]) -> Any:
    """Up to 8 cut-outs on their plain colour, 256 px squares; one plain square when there are none."""
    import numpy as np

    tiles = [letterbox(load_rgb(item.path), 256, color) for item in items]
    return images_to_tensor(tiles or [np.full((256, 256, 3), color, np.uint8)])


@node("LF_InpaintBackgrounds", "LF Inpaint Backgrounds", category="layers", function="inpaint",
      outputs=[("LF_FRAMES", "clean_backgrounds")],
      inputs={
          "backgrounds": socket("LF_FRAMES", "Background layers from LF SAM2 Layer Split or LF Masks To Layers "
                                "(other kinds are passed over)."),
          "inpaint_model": socket("LF_LAMA_MODEL", "From LF LaMa Loader."),
          "dilate_px": integer("Grow each hole by this many pixels first (SAM edges leave a halo of the "
                               "character).", 8, 0, 128),
          "context": number("Context around a hole, as a share of its size (at least 32 px).", 0.5, 0.0, 4.0, 0.05),
          "max_side": integer("Windows larger than this are filled downscaled (memory); only the hole pixels are "
                              "pasted back.", 1024, 64, 8192),
      })
class InpaintBackgrounds:
    """Fill the holes of background layers (their transparent pixels) with LaMa, working on a window
    around each hole at full resolution; pixels outside the dilated hole stay exactly as they were.
    Resumes per frame."""

    def inpaint(self, backgrounds: Any, inpaint_model: Any, dilate_px: int, context: float, max_side: int,
                unique_id: str | None = None) -> tuple[Any]:
        settings = InpaintSettings(dilate_px=dilate_px, context=context, max_side=max_side)
        if inpaint_model.kind == "lama":
            filler, method = lama_filler(inpaint_model.model, inpaint_model.compute_device), "lama"
        else:
            filler, method = opencv_filler(), OPENCV_METHOD
        with Workspace.from_handle(backgrounds) as ws:
            clean = inpaint_stage.inpaint_backgrounds(ws, backgrounds, filler, method, inpaint_model.identity, settings,
                                               _comfy.ComfyProgress(unique_id), model=inpaint_model)
        return (clean,)


@node("LF_LayersToMasks", "LF Layers To IMAGE/MASK", category="layers", function="export",
      outputs=[("IMAGE", "images"), ("MASK", "masks"), ("INT", "total")],
      inputs={
          "layers": socket("LF_FRAMES", "Cut-outs, backgrounds, or any frames (frames give empty masks)."),
          "start": integer("First item of the slice.", 0, 0, 1_000_000),
          "count": integer("How many items (at most).", 16, 1, 4096),
      })
class LayersToMasks:
    """Take layers out as IMAGE + MASK for other packs: a cut-out's mask is its character (alpha), a
    background's mask is its hole (1 = fill here, ComfyUI's inpaint convention). Loads a slice (start,
    count) so long runs never fill RAM; all are resized to the first one's size."""

    def export(self, layers: Any, start: int, count: int, unique_id: str | None = None) -> tuple[Any, Any, int]:
        with Workspace.from_handle(layers) as ws:
            items = ws.items(layers)
        chosen = items[start:start + count]
        if not chosen:
            raise ValueError(f"no items from {start}: this selection has {len(items)}")
        progress = _comfy.ComfyProgress(unique_id)
        pixels, masks = [], []
        for done, item in enumerate(chosen, 1):
            rgb, mask = split.read_layer(item.path, item.kind)
            pixels.append(rgb)
            masks.append(mask)
            progress.update(done, len(chosen))
        size = pixels[0].shape[:2]
        return images_to_tensor(pixels, size), masks_to_tensor(masks, size), len(items)


@node("LF_MasksToLayers", "LF Masks To Layers", category="layers", function="convert",
      outputs=[("LF_FRAMES", "cutouts"), ("LF_FRAMES", "backgrounds")],
      inputs={
          "frames": FRAMES,
          "masks": socket("MASK", "A MASK batch in frame order (1 = character), or a single mask."),
          "separate_regions": boolean("Each connected region is its own character (off: the whole mask is one "
                                      "character).", True),
          "margin": integer("Pixels kept around each cut-out.", 16, 0, 512),
          "plain_color": text("Colour under cut-outs' transparent pixels: #RRGGBB or r,g,b.", "#FFFFFF"),
      })
class MasksToLayers:
    """Bring masks from other packs in: one MASK per frame (or one for all frames), resized to each
    frame, becomes cut-outs and backgrounds exactly like LF SAM2 Layer Split's, ready for inpainting and
    datasets."""

    def convert(self, frames: Any, masks: Any, separate_regions: bool, margin: int, plain_color: str,
                unique_id: str | None = None) -> tuple[Any, Any]:
        arrays = tensor_to_masks(masks)
        with Workspace.from_handle(frames) as ws:
            everything = split_stage.layers_from_masks(ws, frames, arrays, separate_regions, margin, plain_color,
                                                  _comfy.ComfyProgress(unique_id))
            cutouts, backgrounds = split_stage.cutouts_and_backgrounds(ws, everything)
        return cutouts, backgrounds


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(SAM2LayerSplit, SAM2TrackShots, InpaintBackgrounds,
                                                           LayersToMasks, MasksToLayers)
