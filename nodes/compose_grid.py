"""The composition grid: a weight sweep's images laid out with the weights on the axes; and the render
settings the rendering examples start from (quick on a CPU, full one choice away)."""

from __future__ import annotations

from typing import Any

from ..lora_foundry.bounded import parse_json
from ..lora_foundry.lora import grid
from ._declare import choice, integer, mappings, node, socket
from ._preview import content_name, show_pictures
from ._tensors import images_to_tensor, tensor_to_images


@node("LF_CompositionGrid", "LF Composition Grid", category="compose", function="grid", output_node=True,
      outputs=[("IMAGE", "grid")],
      inputs={
          "images": socket("IMAGE", "The sweep's images, one per stack, in sweep order."),
          "labels": socket("STRING", "Labels from LoRA Weight Sweep.", forceInput=True),
      },
      optional={
          "axes": socket("STRING", "Axes JSON from LoRA Weight Sweep: puts the weights on the grid's rows and "
                         "columns.", forceInput=True),
          "columns": integer("Columns when there are no axes; 0 = square-ish.", 0, 0, 64),
      })
class CompositionGrid:
    """Lays out the images of a weight sweep in a grid with the weights on the axes (or each image's
    label under it), and previews it."""
    INPUT_IS_LIST = True

    def grid(self, images: list, labels: list, axes: list | None = None, columns: list | None = None,
             unique_id: list[str] | None = None) -> dict[str, Any]:

        flat = [picture for batch in images for picture in tensor_to_images(batch)]
        names = list(labels)
        axes_dict = parse_json(axes[0], "axes") if axes and axes[0] else None
        if len(flat) != len(names):
            per = max(1, len(flat) // max(1, len(names)))
            names = [f"{names[i // per]} #{i % per + 1}" if i // per < len(names) else str(i + 1)
                     for i in range(len(flat))]
            axes_dict = None
        picture = grid.make_grid(flat, names, axes_dict, int(columns[0]) if columns else 0)
        shown = show_pictures([(content_name("lf_composition_grid", picture), picture)])
        result = images_to_tensor([picture])
        return {"ui": {"images": shown}, "result": (result,)}


# (steps, width, height) per setting; the label says what it costs. SD 1.5 is made for 512 px; 256 px
# and 8 steps is a recognisable preview at about a sixteenth of the work per image.
QUICK = "quick: 8 steps, 256 px (minutes on a CPU)"
RENDER_SETTINGS = {QUICK: (8, 256, 256), "full: 20 steps, 512 px (a GPU)": (20, 512, 512)}


@node("LF_RenderSettings", "LF Render Settings", category="compose", function="settings",
      outputs=[("INT", "steps"), ("INT", "width"), ("INT", "height")],
      inputs={"setting": choice(list(RENDER_SETTINGS), "quick for a first run on a CPU; full for the real "
                                "thing.", QUICK)})
class RenderSettings:
    """The steps and image size a rendering example uses, in one choice: quick (8 steps at 256 px,
    minutes on a CPU) or full (20 steps at 512 px). Its outputs feed KSampler's steps and Empty Latent
    Image's width and height (or LF Evaluate LoRA's); unplug a link to set that widget by hand."""

    def settings(self, setting: str, unique_id: str | None = None) -> tuple[int, int, int]:
        return RENDER_SETTINGS[setting]


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(CompositionGrid, RenderSettings)
