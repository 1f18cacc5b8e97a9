"""A WD14-layout ONNX tagger built for the tests, scripted to emit chosen tags.

Same contract as SmilingWolf's files: one float32 input ``[batch, 448, 448, 3]`` (NHWC, BGR,
0..255) named ``input`` (v3) or ``input_1:0`` (v1-4 v2), one output ``[batch, N]`` of sigmoid scores
named ``output`` (v3) or ``predictions_sigmoid`` (v2), and a ``selected_tags.csv`` (``tag_id, name,
category, count``; 0 general, 4 character, 9 rating) naming the N outputs in order.

Its "network" is the mean of each input channel (B, G, R on 0..1) times a weight per tag plus a
bias, through a sigmoid: a tag with a big bias is always emitted, one with weights on a channel
follows the image's colour. So a test knows which tags each real frame must get, and one that was
fed RGB instead of BGR, or 0..1 instead of 0..255, gets different tags.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

SIZE = 448
LAYOUTS = {"v3": ("input", "output"), "v2": ("input_1:0", "predictions_sigmoid")}


@dataclass(frozen=True)
class Row:
    """One output: its CSV name and category, and its score rule: sigmoid(b*B + g*G + r*R + bias)
    with B, G, R the image's channel means on 0..1."""

    name: str
    category: int = 0
    blue: float = 0.0
    green: float = 0.0
    red: float = 0.0
    bias: float = 0.0


ALWAYS, NEVER = 8.0, -8.0
RATINGS = (Row("general", 9, bias=1.0), Row("sensitive", 9), Row("questionable", 9, bias=-2.0),
           Row("explicit", 9, bias=-4.0))
# The character cluster: the same look in every frame, clothes and setting follow the frame's colour
# (shots of montage_6_shots: mean brightness 0.67-0.69 or 0.73-0.75 once padded; the street shot is
# the only one bluer than red).
CHARACTER_ROWS = (
    Row("brown_hair", bias=ALWAYS), Row("blue_eyes", bias=ALWAYS), Row("cat_ears", bias=ALWAYS),
    Row("jacket", blue=80 / 3, green=80 / 3, red=80 / 3, bias=-80 * 0.71),
    Row("white_shirt", blue=-80 / 3, green=-80 / 3, red=-80 / 3, bias=80 * 0.71),
    Row("outdoors", blue=60.0, red=-60.0), Row("indoors", blue=-60.0, red=60.0),
    Row("solo", bias=3.0), Row("long_hair", bias=NEVER), Row("^_^", bias=ALWAYS),
    Row("hatsune_miku", 4, bias=NEVER), Row("ganyu_(genshin_impact)", 4, bias=2.5), *RATINGS,
)


def save_wd14_standin(model_path: Path, rows: tuple[Row, ...] = CHARACTER_ROWS, layout: str = "v3",
                      batch: int | None = None, size: int | tuple[int, int] = SIZE, csv_path: Path | None = None,
                      channels_first: bool = False) -> Path:
    """Write the ONNX file (and its CSV: ``selected_tags.csv`` beside a ``model.onnx``, else
    ``<stem>.csv``); ``batch`` fixes the batch dimension as some exports do. ``size`` (or a
    (height, width) pair) and ``channels_first`` make layouts the loader must refuse."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    input_name, output_name = LAYOUTS[layout]
    weights = np.array([[row.blue, row.green, row.red] for row in rows], np.float32).T / 255.0
    bias = np.array([row.bias for row in rows], np.float32)
    batch_dim = batch if batch else "batch_size"
    height, width = (size, size) if isinstance(size, int) else size
    shape = [batch_dim, 3, height, width] if channels_first else [batch_dim, height, width, 3]
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["means"], axes=[2, 3] if channels_first else [1, 2],
                         keepdims=0),
        helper.make_node("MatMul", ["means", "weights"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes, "wd14_standin",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch_dim, len(rows)])],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="lf-wd14-standin")
    model.ir_version = 8
    onnx.checker.check_model(model)
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(model_path))
    csv_path = csv_path or (model_path.with_name("selected_tags.csv") if model_path.name == "model.onnx"
                            else model_path.with_suffix(".csv"))
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, row in enumerate(rows):
            writer.writerow([index, row.name, row.category, 1000 - index])
    return model_path


def expected_scores(bgr_means: tuple[float, float, float], rows: tuple[Row, ...] = CHARACTER_ROWS) -> dict[str, float]:
    """The stand-in's score per raw tag name for an input whose B, G, R means (0..1) are given."""
    import math

    blue, green, red = bgr_means
    return {row.name: 1 / (1 + math.exp(-(row.blue * blue + row.green * green + row.red * red + row.bias)))
            for row in rows}
