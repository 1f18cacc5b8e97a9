"""Stand-ins for the evaluation tests: a renderer that behaves like a text-to-image model with a
LoRA, and a CLIP that reads colours, both on the CPU in milliseconds.

The renderer paints a prompt's words as vertical stripes (one colour per word, the trigger word
unknown to the base model), adds seed noise, and blends in a training image as the "LoRA": a
copying LoRA replaces the picture with a training frame, a null LoRA does nothing, a subject LoRA
paints the training frame's centre into the middle and leaves the rest to the prompt. The CLIP
embeds images with the pack's weights-free pixel features, and a text as the same features of the
noise-free stripes of its words, so "does the image follow the prompt" is measurable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lora_foundry.evaluate.matrix import RenderSettings
from lora_foundry.media.images import save_image
from lora_foundry.stages.clusters.embedders import pixel_features

SIZE = 64


def word_colour(word: str) -> np.ndarray:
    digest = hashlib.sha256(word.strip().encode()).digest()
    return np.frombuffer(digest[:3], np.uint8).astype(np.float64)


def stripes(words: list[str]) -> np.ndarray:
    image = np.zeros((SIZE, SIZE, 3))
    words = words or ["(empty)"]
    for index, word in enumerate(words):
        image[:, index * SIZE // len(words):(index + 1) * SIZE // len(words)] = word_colour(word)
    return image


def prompt_words(prompt: str, trigger: str) -> list[str]:
    return [w.strip() for w in prompt.split(",") if w.strip() and w.strip() != trigger]


class StandInRenderer:
    """``mode``: "copy" (the LoRA paints a training frame), "null" (no effect), "subject" (only the
    centre). ``calls`` counts renders, so tests can tell cached cells from new ones."""

    def __init__(self, training: list[np.ndarray], mode: str, trigger: str = "ohwx", name: str = "lora",
                 gain: float = 1.0) -> None:
        self.training, self.mode, self.trigger, self.gain = training, mode, trigger, gain
        self.model_identity = "standin-model-v1"
        self.lora_identity = f"{name}-{mode}"
        self.settings = RenderSettings(width=SIZE, height=SIZE, steps=4)
        self.calls = 0

    def base(self, prompt: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        image = stripes(prompt_words(prompt, self.trigger))
        return np.clip(image + rng.normal(0, 18, image.shape), 0, 255)

    def render(self, prompt: str, strength: float, seed: int) -> np.ndarray:
        self.calls += 1
        image = self.base(prompt, seed)
        if strength != 0 and self.mode != "null":
            triggered = self.trigger in [w.strip() for w in prompt.split(",")]
            amount = min(1.0, strength * self.gain) * (1.0 if triggered else 0.3)
            target = self.training[seed % len(self.training)].astype(np.float64)
            if self.mode == "copy":
                image = (1 - amount) * image + amount * target
            else:
                centre = slice(SIZE // 4, 3 * SIZE // 4)
                image[centre, centre] = (1 - amount) * image[centre, centre] + amount * target[centre, centre]
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)


class StandInClip:
    identity = "standin-clip-pixels-v1"

    def __init__(self) -> None:
        self.images_seen = 0

    def images(self, pixels) -> np.ndarray:
        self.images_seen += len(pixels)
        return np.stack([pixel_features(np.asarray(p)) for p in pixels])

    def texts(self, texts) -> np.ndarray:
        return np.stack([pixel_features(stripes(prompt_words(t, "")).astype(np.uint8)) for t in texts])


def training_frames(media_dir: Path, count: int = 4) -> list[np.ndarray]:
    """``count`` frames of a real clip (a person signing), resized to the stand-in's size."""
    import av
    import cv2

    frames = []
    with av.open(str(media_dir / "signer_book.mkv")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 15 == 0:
                frames.append(cv2.resize(frame.to_ndarray(format="rgb24"), (SIZE, SIZE), interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return frames


def write_training_set(folder: Path, frames: list[np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [save_image(frame, folder / f"{i:03d}.png") for i, frame in enumerate(frames)]
