"""Video probing and decoding: every container a user drops in, and every way a file can be bad."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from media_clips import MPEG_SIZE
from PIL import Image

from lora_foundry.media.video import (
    MediaError,
    frame_times,
    iter_frames,
    keyframe_times,
    probe_video,
)

W, H, FPS, N = 160, 96, 12, 24


def _pattern(i: int) -> np.ndarray:
    """Frame i: a grey level that rises with i, and a white bar whose position encodes i."""
    frame = np.full((H, W, 3), 10 * i % 250, np.uint8)
    frame[:, 5 * i : 5 * i + 4] = 255
    return frame


def _write_av(path: Path, codec: str, pix_fmt: str = "yuv420p") -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(_pattern(i), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _write_pillow(path: Path) -> Path:
    frames = [Image.fromarray(_pattern(i)) for i in range(N)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 // FPS, loop=0,
                   **({"lossless": True} if path.suffix == ".webp" else {}))
    return path


FORMATS = {
    "mp4": ("libx264", "yuv420p"),
    "mkv": ("libx264", "yuv420p"),
    "mov": ("libx264", "yuv420p"),
    "avi": ("mpeg4", "yuv420p"),
    "mpg": ("mpeg2video", "yuv420p"),
    "webm": ("libvpx", "yuv420p"),
    "gif": None,
    "webp": None,
}


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_container_decodes_all_frames_in_order(tmp_path, suffix):
    path = tmp_path / f"clip.{suffix}"
    spec = FORMATS[suffix]
    _write_av(path, *spec) if spec else _write_pillow(path)

    info = probe_video(path)
    frames = list(iter_frames(path))

    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(FPS, rel=0.1)
    assert [f.index for f in frames] == list(range(N))
    assert frames[5].time_s == pytest.approx(5 / FPS, abs=0.02)
    assert frames[0].rgb.shape == (H, W, 3) and frames[0].rgb.dtype == np.uint8
    # The bar of frame 7 is where frame 7 drew it: the right frame, not a neighbour.
    column_brightness = frames[7].rgb.mean(axis=(0, 2))
    assert abs(int(np.argmax(column_brightness)) - 36) <= 3


def test_wanted_long_side_and_thumbnails(tmp_path):
    path = _write_av(tmp_path / "clip.mp4", "libx264")
    picked = list(iter_frames(path, wanted=lambda i: i % 10 == 0, long_side=80))
    assert [f.index for f in picked] == [0, 10, 20]
    assert picked[0].rgb.shape == (48, 80, 3)  # aspect kept
    assert next(iter_frames(path, long_side=1000)).rgb.shape == (H, W, 3)  # never upscaled
    assert next(iter_frames(path, thumb_size=(32, 18))).rgb.shape == (18, 32, 3)


@pytest.mark.parametrize("name", ["big_buck_bunny_clip.mp4", "city_street_cc0.mpg"])
def test_time_range_keeps_indices_from_file_start(media_dir, name):
    """A seek into the middle numbers frames exactly as a decode from the start does."""
    path = media_dir / name
    full = {f.index: f.time_s for f in iter_frames(path, thumb_size=(16, 9))}
    part = list(iter_frames(path, start_s=2.5, end_s=3.0, thumb_size=(16, 9)))
    expected = [i for i, t in full.items() if 2.5 - 0.01 <= t < 3.0]
    assert [f.index for f in part] == expected and len(expected) == 12
    assert all(full[f.index] == pytest.approx(f.time_s) for f in part)


def test_real_footage_probe(media_dir):
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    info = probe_video(media_dir / "montage_6_shots.mp4")
    assert (info.width, info.height, info.frame_count, info.codec) == (*truth["size"], truth["frames"], "h264")
    assert info.duration_s == pytest.approx(21.0)
    mpg = probe_video(media_dir / "city_street_cc0.mpg")
    assert (mpg.width, mpg.height, mpg.codec) == (*MPEG_SIZE, "mpeg2video")


def test_keyframes_only_pass(media_dir):
    keys = keyframe_times(media_dir / "montage_6_shots.mp4")
    assert keys[0] == (0, 0.0)
    assert [i for i, _ in keys] == json.loads((media_dir / "montage_6_shots.json").read_text())["keyframes"]
    frames = list(iter_frames(media_dir / "montage_6_shots.mp4", keyframes_only=True,
                              thumb_size=(32, 18)))
    assert [f.index for f in frames] == [i for i, _ in keys]


def _assert_names_file(excinfo, path: Path):
    assert str(path) in str(excinfo.value)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty") as excinfo:
        probe_video(path)
    _assert_names_file(excinfo, path)
    with pytest.raises(MediaError):
        next(iter_frames(path))


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video, just some notes\n" * 20)
    with pytest.raises(MediaError, match="not a readable video") as excinfo:
        list(iter_frames(path))
    _assert_names_file(excinfo, path)


def test_text_file_named_gif(tmp_path):
    path = tmp_path / "notes.gif"
    path.write_text("GIF? no.\n")
    with pytest.raises(MediaError) as excinfo:
        probe_video(path)
    _assert_names_file(excinfo, path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(MediaError, match="no video stream") as excinfo:
        probe_video(path)
    _assert_names_file(excinfo, path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        probe_video(tmp_path / "nope.mkv")


def test_truncated_mp4_with_index_at_the_end(media_dir, tmp_path):
    """montage_6_shots.mp4 keeps its index (moov) at the end: half the file cannot be opened."""
    data = (media_dir / "montage_6_shots.mp4").read_bytes()
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as excinfo:
        list(iter_frames(path))
    _assert_names_file(excinfo, path)


def test_truncated_mp4_yields_what_decodes_then_warns(media_dir, tmp_path, caplog):
    """people_walking.mp4 has its index first: a cut copy gives its first frames, then a warning."""
    source = media_dir / "people_walking.mp4"
    path = tmp_path / "cut.mp4"
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        frames = list(iter_frames(path, thumb_size=(32, 18)))
    assert 100 < len(frames) < 1394
    assert [f.index for f in frames] == list(range(len(frames)))
    assert any(str(path) in record.getMessage() for record in caplog.records)


def test_truncated_gif_yields_first_frames(tmp_path, caplog):
    good = _write_pillow(tmp_path / "good.gif")
    path = tmp_path / "cut.gif"
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        frames = list(iter_frames(path))
    assert 0 < len(frames) < N


def test_unicode_and_space_in_path(tmp_path):
    folder = tmp_path / "my clips ü"
    folder.mkdir()
    path = _write_av(folder / "clip é.mkv", "libx264")
    assert len(list(iter_frames(path, thumb_size=(8, 8)))) == N
    copy = folder / "COPY.MKV"
    shutil.copy(path, copy)
    assert probe_video(copy).width == W


def test_phone_rotation_is_applied_like_ffmpeg(tmp_path):
    """A display-matrix rotation (phone footage) turns the frames, as ffmpeg's autorotate does."""
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise
        picture = np.zeros((32, 64, 3), np.uint8)
        picture[:, :16] = 255  # white band on the left of the stored frame
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    info = probe_video(path)
    assert (info.width, info.height) == (32, 64)
    frame = next(iter_frames(path)).rgb
    assert frame.shape == (64, 32, 3)
    assert frame[-16:].mean() > 200 and frame[:16].mean() < 50  # the band turned to the bottom
    assert next(iter_frames(path, thumb_size=(16, 32))).rgb.shape == (32, 16, 3)


@pytest.mark.parametrize("suffix", ["avi", "mkv"])
def test_b_frames_keep_times_in_order_and_seeks_agree(tmp_path, suffix):
    """AVI stores no presentation times: with B-frames PyAV's guesses come out of order, so
    frames are counted there; timed containers are numbered by timestamp. Both must agree."""
    path = tmp_path / f"bframes.{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.max_b_frames = 2
        stream.codec_context.gop_size = 6
        for i in range(N):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_pattern(i), format="rgb24")))
        container.mux(stream.encode())
    frames = list(iter_frames(path))
    times = [f.time_s for f in frames]
    assert [f.index for f in frames] == list(range(N)) and times == sorted(times)
    assert times[0] == 0.0 and times[12] == pytest.approx(1.0, abs=0.01)
    assert abs(int(np.argmax(frames[7].rgb.mean(axis=(0, 2)))) - 36) <= 3  # frame 7 is frame 7
    later = list(iter_frames(path, start_s=1.0))
    assert later[0].index == 12 and np.array_equal(later[0].rgb, frames[12].rgb)


def test_avi_times_follow_the_container_when_its_first_timestamp_is_not_zero(tmp_path):
    """An AVI written from frames timed 1, 2, ... at 23.976 fps: its container presents frame 0 at 0
    and every later frame one frame later than its count (a skipped chunk). Frame times are the
    container's (what ffprobe reports), not count / fps, which was one frame (42 ms) early."""
    from fractions import Fraction

    rate = Fraction(24000, 1001)
    path = tmp_path / "late_start.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(_pattern(i), format="rgb24")
            frame.pts = i + 1
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(N))
    assert frames[0].time_s == 0.0
    assert frames[1].time_s == pytest.approx(2 / rate, abs=1e-6)  # count / fps said 1 / rate: 42 ms early
    assert frames[10].time_s == pytest.approx(11 / rate, abs=1e-6)
    probed = _ffprobe_frame_times(path)
    if probed:  # the same times ffprobe reports, where ffprobe is installed
        assert [round(f.time_s, 4) for f in frames] == [round(t, 4) for t in probed]
    assert abs(int(np.argmax(frames[7].rgb.mean(axis=(0, 2)))) - 36) <= 3  # frame 7 is still frame 7
    later = list(iter_frames(path, start_s=float(11 / rate)))
    assert later[0].index == 10 and np.array_equal(later[0].rgb, frames[10].rgb)


def test_frame_times_open_the_file_once(tmp_path, monkeypatch):
    """A clip cutter's frame times come from one open of the file (its checks and the demux share
    it), counted on PyAV's own ``av.open``, and are the times the frames were written at."""
    path = _write_av(tmp_path / "timed.mp4", "libx264")
    opened, real_open = [], av.open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    times = frame_times(path)
    assert opened == [str(path)]
    assert times == pytest.approx([i / FPS for i in range(N)])


def _ffprobe_frame_times(path) -> list[float]:
    """ffprobe's presentation time of each decoded frame, or [] without ffprobe."""
    import shutil
    import subprocess

    if shutil.which("ffprobe") is None:
        return []
    done = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True, timeout=60, check=False)
    return [float(line) for line in done.stdout.split() if line not in ("", "N/A")]


STOP_EARLY_WITH_LOG_CALLBACK = r'''
import sys, av
from pathlib import Path
av.logging.set_level(av.logging.ERROR)  # what torchvision does at import, so inside ComfyUI it is set
from lora_foundry.media.video import decode_raw
clip = Path(sys.argv[1])
frames = 0
for round_ in range(40):
    for raw in decode_raw(clip, end_s=0.5 + (round_ % 7) * 0.37):  # stop early: frames still in flight
        frames += 1
print(frames)
'''


def test_stopping_early_with_a_python_log_callback_does_not_freeze_the_process(tmp_path):
    """Inside ComfyUI, PyAV has a Python log callback (torchvision installs it). Freeing a decoder
    that stopped early used to wait for its frame threads while holding the GIL, and a thread that
    logged waited for the GIL: the ComfyUI server froze for good (seen in the integration suite).
    Run in a child process with a deadline, so a regression fails instead of hanging the suite."""
    import subprocess
    import sys

    clip = Path(__file__).resolve().parents[1] / "lora_foundry" / "data" / "lf_example_montage.mp4"
    script = tmp_path / "stop_early.py"
    script.write_text(STOP_EARLY_WITH_LOG_CALLBACK, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), str(clip)], capture_output=True, text=True, timeout=180,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 40
