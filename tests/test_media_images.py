"""Image folders as users have them: odd modes, rotated photos, broken files, huge files."""

from __future__ import annotations

import resource
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lora_foundry import fileio
from lora_foundry.media.images import (
    ImageError,
    decodes_plainly,
    list_image_files,
    load_image,
    resize_long_side,
    save_image,
)


def _gradient(width: int = 48, height: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 5 % 256, y * 7 % 256, (x + y) * 3 % 256], axis=2).astype(np.uint8)


def test_rgb_and_rgba_round_trip(tmp_path):
    rgb = _gradient()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), rgb)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "b.png")
    assert np.array_equal(load_image(tmp_path / "b.png"), rgba)


def test_grey_and_palette_modes(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (8, 8, 3) and (grey == 77).all()

    palette = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (32, 48, 3)
    palette.save(tmp_path / "p_alpha.png", transparency=0)
    with_alpha = load_image(tmp_path / "p_alpha.png")
    assert with_alpha.shape == (32, 48, 4)
    assert (with_alpha[..., 3] == 0).any() and (with_alpha[..., 3] == 255).any()

    la = Image.fromarray(np.dstack([np.full((4, 4), 9, np.uint8), np.full((4, 4), 200, np.uint8)]),
                         mode="LA")
    la.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png")[0, 0].tolist() == [9, 9, 9, 200]


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    loaded = load_image(tmp_path / "deep.png")
    assert loaded[0, :, 0].tolist() == [0, 1, 128, 255]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    cyan.save(tmp_path / "cmyk.jpg", quality=95)
    pixel = load_image(tmp_path / "cmyk.jpg")[8, 8]
    assert load_image(tmp_path / "cmyk.jpg").shape == (16, 16, 3)
    assert pixel[0] < 40 and pixel[1] > 200 and pixel[2] > 200


def test_exif_orientation_is_applied(tmp_path):
    picture = np.zeros((20, 40, 3), np.uint8)
    picture[:, :10] = 255  # white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(picture).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50  # left band is now on top
    Image.fromarray(picture).save(tmp_path / "plain.jpg", quality=95)
    assert decodes_plainly(tmp_path / "plain.jpg"), "a plain decoder sees what load_image sees"
    plain = np.asarray(Image.open(tmp_path / "phone.jpg").convert("RGB"))
    assert not decodes_plainly(tmp_path / "phone.jpg") and plain.shape != upright.shape, "a plain decoder sees it sideways"


def test_list_image_files_natural_order_case_and_recursion(tmp_path):
    for name in ["frame10.png", "frame2.JPG", "frame1.jpeg", "b.WebP", "c.bmp", "d.tif",
                 "notes.txt", ".hidden.png", "._frame3.png"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.png").write_bytes(b"x")
    names = [p.name for p in list_image_files(tmp_path)]
    assert names == ["b.WebP", "c.bmp", "d.tif", "frame1.jpeg", "frame2.JPG", "frame10.png"]
    deep = [p.relative_to(tmp_path).as_posix() for p in list_image_files(tmp_path, recursive=True)]
    assert "sub/inner.png" in deep and len(deep) == 7


def test_one_broken_png_among_good_ones_gives_one_clear_error(tmp_path):
    for i in range(3):
        Image.fromarray(_gradient()).save(tmp_path / f"good{i}.png")
    good = (tmp_path / "good0.png").read_bytes()
    (tmp_path / "good1_broken.png").write_bytes(good[: len(good) // 2])
    loaded, errors = [], []
    for path in list_image_files(tmp_path):
        try:
            loaded.append(load_image(path))
        except ImageError as error:
            errors.append(str(error))
    assert len(loaded) == 3 and len(errors) == 1
    assert str(tmp_path / "good1_broken.png") in errors[0]
    assert "damaged or truncated" in errors[0]


@pytest.mark.parametrize("content", [b"", b"hello, not an image"])
def test_empty_or_text_file_named_png(tmp_path, content):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert str(path) in str(excinfo.value)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG header for a ``width`` x ``height`` 1-bit picture, with a tiny (short) payload."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    payload = zlib.compress(b"\x00" * 4096)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", payload) + _png_chunk(b"IEND", b""))
    return path


def test_huge_png_is_refused_from_its_header(tmp_path):
    path = _huge_png(tmp_path / "huge.png", 30000, 30000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    message = str(excinfo.value)
    assert str(path) in message and "30000x30000" in message
    assert grown_mb < 100  # decoding it would take about 900 MB


def test_our_own_pixel_limit_below_pillows(tmp_path):
    path = _huge_png(tmp_path / "big.png", 12000, 9000)  # 108 MP: under Pillow's bomb limit
    with pytest.raises(ImageError, match="12000x9000"):
        load_image(path)
    with pytest.raises(ImageError, match="0 MP allowed|1 MP allowed"):
        load_image(_huge_png(tmp_path / "small.png", 2000, 2000), max_pixels=1_000_000)


def test_resize_long_side_shrinks_only():
    picture = _gradient(400, 200)
    assert resize_long_side(picture, 100).shape == (50, 100, 3)
    assert resize_long_side(picture, 1000) is picture
    rgba = np.zeros((300, 600, 4), np.uint8)
    assert resize_long_side(rgba, 60).shape == (30, 60, 4)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".bmp", ".tif"])
def test_save_is_deterministic_and_readable(tmp_path, suffix):
    picture = _gradient(64, 40)
    first = save_image(picture, tmp_path / f"a{suffix}")
    second = save_image(picture.copy(), tmp_path / f"b{suffix}")
    assert first.read_bytes() == second.read_bytes()
    back = load_image(first)
    assert back.shape == picture.shape
    if suffix in (".png", ".bmp", ".tif"):
        assert np.array_equal(back, picture)
    else:  # lossy, on a picture full of sharp edges
        assert np.abs(back.astype(int) - picture).mean() < 8
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rgba_to_jpeg_goes_on_white(tmp_path):
    clear = np.zeros((8, 8, 4), np.uint8)
    path = save_image(clear, tmp_path / "clear.jpg")
    assert load_image(path).min() > 245


def test_interrupted_then_resumed_writes_equal_an_uninterrupted_run(tmp_path, monkeypatch):
    frames = [np.roll(_gradient(96, 54), shift, axis=1) for shift in range(8)]
    straight = tmp_path / "straight"
    for i, frame in enumerate(frames):
        save_image(frame, straight / f"{i:03d}.jpg")

    resumed = tmp_path / "resumed"
    real_replace, calls = fileio.os.replace, []

    def crash_on_fifth(src, dst):
        calls.append(dst)
        if len(calls) == 5:
            raise KeyboardInterrupt("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        for i, frame in enumerate(frames):
            save_image(frame, resumed / f"{i:03d}.jpg")
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    assert sorted(p.name for p in resumed.iterdir()) == ["000.jpg", "001.jpg", "002.jpg", "003.jpg"]

    for i, frame in enumerate(frames):  # the resumed run skips what exists
        if not (resumed / f"{i:03d}.jpg").exists():
            save_image(frame, resumed / f"{i:03d}.jpg")
    for i in range(len(frames)):
        name = f"{i:03d}.jpg"
        assert (resumed / name).read_bytes() == (straight / name).read_bytes()
    assert len(list(resumed.iterdir())) == len(frames)


def test_save_refuses_bad_arrays_and_suffixes(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_image(np.zeros((4, 4, 3), np.float32), tmp_path / "f.png")
    with pytest.raises(ValueError, match="cannot save"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "f.gifx")


def test_masks_and_grey_arrays_save_as_grey_png(tmp_path):
    mask = np.zeros((6, 9), bool)
    mask[2:4, 3:6] = True
    path = save_image(mask, tmp_path / "mask.png")
    assert Image.open(path).mode == "L"
    assert np.array_equal(np.asarray(Image.open(path)), mask.astype(np.uint8) * 255)
