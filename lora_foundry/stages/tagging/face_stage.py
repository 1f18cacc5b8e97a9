"""Faces: boxes and landmarks per item, crops with a margin, expression tags, a per-cluster report.

An expression LoRA wants face crops tagged with one emotion. RetinaFace (facexlib) finds the
faces; each face at least ``min_size`` pixels wide becomes a crop item (kind "face", parent = the
frame or cut-out) enlarged by ``margin`` on every side. Expressions come from a classifier the
user supplies (an ONNX file in ``models/expression``) when one is given, else from CLIP
zero-shot over a vocabulary (``EXPRESSIONS`` or the user's own labels). Real-face detectors miss many anime and
3D faces, so the stage reports faces found per cluster and warns about clusters with none.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import names
from ...media import images
from ...models.handle import all_on_device
from ...progress import Progress
from ...workspace import Handle, NewItem, Workspace
from .faces import EXPRESSION_TEMPLATE, crop_box, parse_vocabulary
from .tags import merged


def faces_report(ws: Workspace, handle: Handle, face_counts: dict[int, int]) -> tuple[str, list[str]]:
    """"cluster 0: 12 of 40 items with a face" lines and warnings for clusters with no face."""
    clusters = ws.annotations(handle, names.CLUSTER)
    per: dict[str, list[int]] = {}
    for item_id, count in face_counts.items():
        key = str(clusters.get(item_id, "all")) if clusters else "all"
        per.setdefault(key, [0, 0])
        per[key][0] += 1
        per[key][1] += 1 if count else 0
    lines, warnings = [], []
    for key in sorted(per, key=lambda k: (k == "all", k)):
        total, with_face = per[key]
        name = "all items" if key == "all" else ("noise" if key == "-1" else f"cluster {key}")
        lines.append(f"{name}: {with_face} of {total} items with a face")
        if with_face == 0 and key != "-1":
            warnings.append(f"no face found in {name} ({total} items): real-face detectors miss many "
                            "anime and 3D faces; tag expressions another way for this cluster")
    return "\n".join(lines + [f"WARNING: {w}" for w in warnings]), warnings


def _detect_unit(st: Any, face_model: Any, item: Any, threshold: float, margin: float, min_size: int,
                 max_faces: int) -> tuple[list[NewItem], list[dict[str, Any]], list[np.ndarray]]:
    from ...models.face_model import detect

    rgb = images.load_rgb(item.path)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    found = detect(face_model, bgr, threshold)[: max(0, max_faces)]
    records, crops, new_items = [], [], []
    height, width = rgb.shape[:2]
    for index, face in enumerate(found):
        record = {"box": [round(v, 1) for v in face.box], "score": round(face.score, 4),
                  "landmarks": [[round(x, 1), round(y, 1)] for x, y in face.landmarks]}
        records.append(record)
        if face.box[2] - face.box[0] < min_size:
            continue
        x1, y1, x2, y2 = crop_box(face.box, margin, width, height)
        crop = rgb[y1:y2, x1:x2]
        rel = st.write_image(crop, f"{item.id:08d}_face{index}.png")
        crops.append(crop)
        new_items.append(NewItem(kind=names.KIND_FACE, relpath=rel, width=crop.shape[1], height=crop.shape[0],
                                 parent=item.id, source=item.source, frame_index=item.frame_index,
                                 time_s=item.time_s, shot=item.shot,
                                 meta={names.META_FACE_BOX: record["box"], names.META_CROP_BOX: [x1, y1, x2, y2]}))
    return new_items, records, crops


def faces_stage(ws: Workspace, handle: Handle, face_model: Any, clip: Any | None = None,
                threshold: float = 0.8, margin: float = 0.3, min_size: int = 64, vocabulary: str = "",
                progress: Progress | None = None, max_faces: int = 5,
                expression_model: Any | None = None) -> tuple[Handle, str]:
    """Detect faces in every item (the ``max_faces`` most confident); returns (handle to the
    face crops, per-cluster report). ``expression_model``, when given, tags the crops instead
    of CLIP. The detector and the tagger visit their compute device for the run."""
    if expression_model is not None:
        clip = None
    labels = list(expression_model.details.labels) if expression_model is not None else (
        parse_vocabulary(vocabulary) if clip is not None else [])
    params = {"threshold": float(threshold), "margin": float(margin), "min_size": int(min_size),
              "vocabulary": labels, "max_faces": int(max_faces)}
    tagger = expression_model if expression_model is not None else clip
    model = face_model.identity + (f"+{tagger.identity}" if tagger is not None else "")
    items = ws.items(handle)
    inherited = ws.tags(handle)
    with ws.stage("faces", 1, params, [handle], model, label=f"{handle.label or 'frames'} · faces") as st:
        if not st.complete:
            with all_on_device(face_model, tagger):
                for position, item in st.pending(items, progress):
                    new_items, records, crops = _detect_unit(st, face_model, item, threshold, margin, min_size,
                                                             max_faces)
                    expressions = _expressions(clip, crops, labels, expression_model)
                    for new, (label, probability) in zip(new_items, expressions, strict=True):
                        value = {"label": label, "probability": round(probability, 4)} if label else None
                        new.annotations.update({names.EXPRESSION: value,
                                                names.TAGS: merged(inherited, -1, [label], item.id)})
                    st.emit(str(item.id), position, new_items, {item.id: {names.FACES: records}})
        counts = {item.id: len(v or []) for item, v in
                  ((item, ws.annotations(st.handle, names.FACES).get(item.id)) for item in items)}
        report, _ = faces_report(ws, handle, counts)
        return st.handle, report


def _expressions(clip: Any | None, crops: list[np.ndarray], labels: list[str],
                 expression_model: Any | None = None) -> list[tuple[str, float]]:
    """(label, probability) per crop by the user's classifier, else CLIP zero-shot; ("", 0) per
    crop with neither."""
    if expression_model is not None and crops:
        from ...models.expression_model import classify

        return classify(expression_model, crops)
    if clip is None or not crops:
        return [("", 0.0)] * len(crops)
    from ...models.clip_model import zero_shot

    return zero_shot(clip, [images.to_pil(c) for c in crops], labels, EXPRESSION_TEMPLATE)
