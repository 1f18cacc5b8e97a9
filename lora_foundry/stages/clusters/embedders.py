"""Image embedders for clustering and selection: open_clip, or pixel features with no weights.

An embedder is a ``models.clip_model.Embedder``: pictures to L2-normalised rows, plus an identity
that goes into stage keys. Pixel features ("pixels") are weights-free: an HSV colour histogram plus a layout
thumbnail averaged with its mirror image, so a flipped shot embeds like the original
(tests/test_scene_grouping.py shows it groups the montage's repeated scenes). Cut-outs (RGBA) are
flattened on neutral grey before they get here (``images.load_rgb``), so the background a
character was cut from does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...choices import one_of
from ...models.clip_model import ClipEmbedder, Embedder

METHODS = ("clip", "pixels")


PIXEL_IDENTITY = "pixels-hsv12x4x4-sym16x9-v1"


def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """Mirror-invariant colour + layout vector (L2-normalised) of an RGB uint8 image."""
    import cv2

    rgb = np.ascontiguousarray(rgb[..., :3])
    small = cv2.resize(rgb, (128, 72), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    hist = np.sqrt(hist / max(float(hist.sum()), 1.0))
    layout = cv2.resize(small, (16, 9), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    symmetric = (layout + layout[:, ::-1]) / 2.0
    vector = np.concatenate([hist, 0.3 * symmetric.ravel()]).astype(np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


class PixelEmbedder:
    """``Embedder`` of pixel features: no weights, no text tower."""

    identity = PIXEL_IDENTITY

    def images(self, pictures: Sequence[Any]) -> np.ndarray:
        return np.stack([pixel_features(np.asarray(picture)) for picture in pictures])

    def texts(self, texts: Sequence[str]) -> None:
        return None


def make_embedder(method: str, clip: Any | None) -> Embedder:
    """The embedder of ``method``: "clip" (needs ``clip``, an open_clip ``ModelHandle``) or "pixels"."""
    one_of(method, METHODS, "embedding method")
    if method == "clip":
        if clip is None:
            raise ValueError("method 'clip' needs a CLIP model (LF CLIP Loader); or choose 'pixels'")
        return ClipEmbedder(clip)
    return PixelEmbedder()
