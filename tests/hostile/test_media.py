"""Broken and unusual pictures and videos, through the frames nodes.

Pictures: one good picture plus one hostile file in a folder; the unusual-but-valid ones (CMYK,
16-bit, palette with transparency, EXIF-rotated) must load right, the broken ones (decompression
bomb, zero bytes, truncated, text named .jpg, a video named .png) must be skipped with a reason
that names the file while the good picture still loads. Videos are built here with PyAV: zero
bytes, truncated, mislabelled, audio-only, text; each fails with one error naming the file.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb(path: Path) -> None:
    """A 60000 x 60000 PNG header with a few bytes of data (3.6 gigapixels if decoded)."""
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def cmyk(path: Path) -> None:
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(path.with_suffix(".jpg"))


def sixteen_bit(path: Path) -> None:
    Image.fromarray((np.arange(200, dtype=np.uint16).reshape(10, 20) * 300)).save(path)


def palette_alpha(path: Path) -> None:
    image = Image.new("P", (20, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.info["transparency"] = 0
    image.paste(0, (0, 0, 10, 10))
    image.save(path, transparency=0)


def exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (0, 128, 0)).save(path.with_suffix(".jpg"), exif=exif)


def truncated(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


VALID = {  # builder -> (width, height, channels) after loading
    cmyk: (20, 10, 3), sixteen_bit: (20, 10, 3), palette_alpha: (20, 10, 4), exif_rotated: (20, 40, 3)}
BROKEN = {
    "bomb": bomb,
    "zero_bytes": lambda p: p.write_bytes(b""),
    "truncated": truncated,
    "text_named_jpg": lambda p: p.with_suffix(".jpg").write_text("not a picture\n" * 10),
    "video_named_png": lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200),
}


def _load(server, folder: str):
    frames, report = server.nodes.frames.LoadImageFolder().load(folder, "media", 0, False)
    return frames, json.loads(report)


@pytest.mark.parametrize("build", list(VALID), ids=lambda b: b.__name__)
def test_unusual_pictures_load_right(server, build):
    folder = server.input / "pics"
    folder.mkdir()
    build(folder / "odd.png")
    frames, report = _load(server, "pics")
    assert report["images"] == 1 and report["skipped"] == []
    Workspace = server.pack.lora_foundry.workspace.Workspace
    with Workspace.from_handle(frames) as ws:
        (item,) = ws.items(frames)
        pixels = server.pack.lora_foundry.media.images.load_image(item.path)
    assert (pixels.shape[1], pixels.shape[0], pixels.shape[2]) == VALID[build]


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_pictures_are_skipped_naming_the_file(server, name):
    folder = server.input / "pics"
    server.picture(folder / "good.png")
    BROKEN[name](folder / f"{name}.png")
    _, report = _load(server, "pics")
    assert report["images"] == 1
    (skipped,) = report["skipped"]
    assert Path(skipped["file"]).stem == name and skipped["error"], skipped
    assert name in skipped["error"]


def _video(path: Path, frames: int = 12, audio_only: bool = False) -> Path:
    import av

    with av.open(str(path), "w") as container:
        if audio_only:
            stream = container.add_stream("aac", rate=16000)
            stream.layout = "mono"
            for index in range(10):
                frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, index * 1024, Fraction(1, 16000)
                for packet in stream.encode(frame):
                    container.mux(packet)
        else:
            stream = container.add_stream("mpeg4", rate=12)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for index in range(frames):
                picture = np.full((48, 64, 3), index * 5 % 256, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _bad_video(kind: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{kind}.mp4"
    if kind == "zero_bytes":
        target.write_bytes(b"")
    elif kind == "truncated":
        whole = _video(folder / "whole.mp4", frames=48).read_bytes()
        target.write_bytes(whole[: len(whole) // 2])
    elif kind == "picture_named_mp4":
        Image.new("RGB", (8, 8)).save(target, "PNG")
    elif kind == "audio_only":
        _video(target, audio_only=True)
    elif kind == "random_bytes":
        target.write_bytes(np.random.default_rng(1).integers(0, 255, 4096, np.uint8).tobytes())
    elif kind == "text":
        target.write_text("#EXTM3U\nhttp://example.invalid/stream\n")
    return target


@pytest.mark.parametrize("kind", ["zero_bytes", "truncated", "random_bytes", "audio_only", "text"])
def test_broken_videos_fail_naming_the_file(server, kind):
    video = _bad_video(kind, server.input / "videos")
    MediaError = server.pack.lora_foundry.media.video_types.MediaError
    with pytest.raises(MediaError, match=f"{kind}.mp4"):
        server.nodes.frames.LoadVideoFrames().load(f"videos/{video.name}", "media", "interval", 1.0, 1, 0.0, 0.0,
                                                    4, 64, "jpg")


def test_a_picture_named_mp4_is_one_frame_not_a_crash(server):
    """FFmpeg reads a PNG named .mp4 as a one-frame video: harmless, and what the user gave."""
    _bad_video("picture_named_mp4", server.input / "videos")
    _, report = server.nodes.frames.LoadVideoFrames().load("videos/picture_named_mp4.mp4", "media", "interval", 1.0,
                                                           1, 0.0, 0.0, 4, 64, "jpg")
    assert json.loads(report)["frames"] == 1


def test_a_good_pyav_video_loads(server):
    """The control for the cases above: the same builder's complete file loads."""
    _video(server.input / "ok.mp4")
    _, report = server.nodes.frames.LoadVideoFrames().load("ok.mp4", "media", "interval", 0.25, 1, 0.0, 0.0, 4,
                                                           64, "jpg")
    assert json.loads(report)["frames"] == 4
