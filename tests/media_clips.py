"""Real footage for the tests, made from the bundled clip so a bare clone needs nothing beside it.

``lora_foundry/data/lf_example_montage.mp4`` is six real shots (hard cuts at 4, 8, 12, 15 and 18 s,
640x360, 25 fps, keyframe every 50 frames). ``make_media(folder)`` cuts it into the clips the tests
name, each keeping the property its tests rely on:

| file | made from | property a test needs |
|---|---|---|
| montage_6_shots.mp4 | the bundled clip's packets, remuxed | five planted cuts (truth in montage_6_shots.json), index at the end |
| signer_book.mkv | shot 4 (a signer), 640x480, 30 fps, Matroska | a face and hands; no frame count in the header |
| signer_help.mkv | shot 4 mirrored, first 60 frames | another short clip of the same person |
| big_buck_bunny_clip.mp4 | shot 1, H.264 GOP 250, silent AAC track | one shot of animation, a long GOP, an audio stream |
| city_street_cc0.mpg | shot 3, MPEG-2 in an MPEG-PS file | another codec and container, no frame count |
| people_walking.mp4 | shot 2 played forward and back, 10 fps, 1,394 frames | a long single shot with motion, index first |

Plain module (no pytest): ray_scenarios.py runs outside pytest and reads the folder the test made.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"
SHOTS = [  # as in the source footage's montage_6_shots.json: "source" names the original clip
    {"start_s": 0.0, "end_s": 4.0, "source": "big_buck_bunny_clip.mp4 0-4 s", "scene": "meadow", "character": "bunny"},
    {"start_s": 4.0, "end_s": 8.0, "source": "people_walking.mp4 20-24 s", "scene": "office", "character": "person"},
    {"start_s": 8.0, "end_s": 12.0, "source": "city_street_cc0.mpg 0-4 s", "scene": "street", "character": None},
    {"start_s": 12.0, "end_s": 15.0, "source": "signer_book.mkv 0-3 s (stretched to 16:9)", "scene": "studio", "character": "signer"},
    {"start_s": 15.0, "end_s": 18.0, "source": "big_buck_bunny_clip.mp4 1-4 s, mirrored", "scene": "meadow", "character": "bunny"},
    {"start_s": 18.0, "end_s": 21.0, "source": "people_walking.mp4 70-73 s", "scene": "office", "character": "person"},
]
MONTAGE = {"file": "montage_6_shots.mp4", "fps": 25, "frames": 525, "size": [640, 360],
           "keyframes": [0, 50, 100, 150, 200, 250, 300, 350, 375, 425, 450, 500],  # as ffprobe lists them
           "shots": SHOTS, "cuts_s": [4.0, 8.0, 12.0, 15.0, 18.0]}
MPEG_SIZE = (640, 360)
PEOPLE_FRAMES = 1394


class _Clip:
    """One output file: an encoder fed RGB frames, closed (and so complete) by ``close``."""

    def __init__(self, path: Path, codec: str, rate: int, size: tuple[int, int], fmt: str | None = None,
                 options: dict | None = None, container_options: dict | None = None) -> None:
        import av

        self.container = av.open(str(path), "w", format=fmt, options=container_options or {})
        self.stream = self.container.add_stream(codec, rate=rate, options=options or {})
        self.stream.width, self.stream.height, self.stream.pix_fmt = *size, "yuv420p"
        self.size = size

    def add(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(*self.size)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode())
        self.container.close()


def _silence(clip: _Clip, seconds: float) -> None:
    """A silent AAC track, so the clip has an audio stream as real footage does."""
    import av

    stream = clip.container.add_stream("aac", rate=44100)
    stream.layout = "mono"
    samples = int(44100 * seconds)
    for start in range(0, samples, 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
        clip.container.mux(stream.encode(frame))
    clip.container.mux(stream.encode())


def _shot_frames() -> dict[int, list[np.ndarray]]:
    """The frames of shots 1 to 4 of the bundled clip (only the first five seconds of each)."""
    import av

    wanted = {index: shot for shot in range(4)
              for index in range(int(SHOTS[shot]["start_s"] * 25), int(SHOTS[shot]["end_s"] * 25))}
    frames: dict[int, list[np.ndarray]] = {shot: [] for shot in range(4)}
    with av.open(str(BUNDLED)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[wanted[index]].append(frame.to_ndarray(format="rgb24"))
            elif index > max(wanted):
                break
    return frames


def _remux(source: Path, target: Path) -> None:
    """The same packets in a new MP4 whose index (moov) comes last, as most encoders write it."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


def _write(path: Path, frames, **clip_args) -> None:
    clip = _Clip(path, **clip_args)
    for rgb in frames:
        clip.add(rgb)
    clip.close()


def _ping_pong(frames: list[np.ndarray], count: int):
    cycle = frames + frames[-2:0:-1]
    return (cycle[i % len(cycle)] for i in range(count))


def make_media(folder: Path) -> Path:
    """Write every clip into ``folder`` (made if missing); a folder already complete is kept."""
    done = folder / "complete.json"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    _remux(BUNDLED, folder / MONTAGE["file"])
    (folder / "montage_6_shots.json").write_text(json.dumps(MONTAGE, indent=1))
    shots = _shot_frames()
    h264 = {"codec": "libx264", "options": {"preset": "veryfast", "crf": "26"}}
    _write(folder / "signer_book.mkv", shots[3], rate=30, size=(640, 480), **h264)
    _write(folder / "signer_help.mkv", (rgb[:, ::-1] for rgb in shots[3][:60]), rate=30, size=(640, 480), **h264)
    bunny = _Clip(folder / "big_buck_bunny_clip.mp4", rate=25, size=(640, 360), codec="libx264",
                  options={"preset": "veryfast", "crf": "26", "g": "250", "keyint_min": "250"})
    _silence(bunny, len(shots[0]) / 25)
    for rgb in shots[0]:
        bunny.add(rgb)
    bunny.close()
    _write(folder / "city_street_cc0.mpg", shots[2], rate=25, size=MPEG_SIZE, codec="mpeg2video", fmt="mpeg",
           options={"g": "12", "b": "2000000"})
    small = [np.ascontiguousarray(rgb[::2, ::2]) for rgb in shots[1]]
    _write(folder / "people_walking.mp4", _ping_pong(small, PEOPLE_FRAMES), rate=10, size=(320, 180),
           container_options={"movflags": "faststart"}, **h264)
    done.write_text(json.dumps(sorted(p.name for p in folder.iterdir())))
    return folder


def long_shot(folder: Path) -> Path:
    """``people_walking.mp4`` of ``make_media(folder)``: a long single shot with motion (for benches)."""
    return make_media(folder) / "people_walking.mp4"


if __name__ == "__main__":
    import sys

    print(make_media(Path(sys.argv[1])))
