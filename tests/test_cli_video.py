"""``lora-foundry video-dataset`` and ``train-video`` on the bundled montage and the musubi stand-in."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest
from fixtures_fake_musubi import make_fake_musubi

from lora_foundry.cli import main

MONTAGE = "lora_foundry/data/lf_example_montage.mp4"


def test_video_dataset_then_train_video_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MUSUBI_TUNER", raising=False)
    monkeypatch.delenv("MUSUBI_PYTHON", raising=False)
    monkeypatch.delenv("FAKE_MUSUBI_MODE", raising=False)
    out = tmp_path / "out"
    assert main(["video-dataset", MONTAGE, "--name", "film", "--trigger", "ohwx", "--class-word", "woman",
                 "--model", "hunyuan_video", "--x264-preset", "ultrafast", "--out", str(out)]) == 0
    written = json.loads(_last_json(capsys))
    assert written["fps"] == 24.0 and written["clips"] >= 1 and all((n - 1) % 4 == 0 for n in written["frame_counts"])
    user = _musubi_user(tmp_path)
    assert main(["train-video", written["dataset"], "--preset", "wan21_t2v_1.3B", "--name", "x", "--epochs", "1",
                 "--out", str(out), "--user-dir", str(user)]) == 1, "Wan refuses clips cut at 24 fps"
    assert "at 24 fps but wan21_t2v_1.3B trains at 16 fps" in capsys.readouterr().err
    assert main(["train-video", written["dataset"], "--preset", "hunyuan_video", "--name", "film_hv", "--epochs", "1",
                 "--out", str(out), "--user-dir", str(user)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.index("{"):])
    assert "step 1/" in printed and summary["status"] == "success"
    assert written["dataset"].startswith(str(out / "lora_foundry" / "datasets")), "where LF Write Video Dataset writes"
    assert summary["published"] == str(out / "loras" / "film_hv.safetensors") and Path(summary["published"]).is_file()


HOSTILE = {
    "deep": ("[" * 5000 + "]" * 5000, "nested more than 64 levels deep"),
    "huge": ('{"clips": ["' + "x" * (2 << 20) + '"]}', "longer than"),
    "not_json": ("{clips: 1", "not valid JSON"),
    "clips_a_number": ('{"clips": 5}', "lists no clips"),
    "no_fps": ('{"clips": ["videos/a.mp4"], "fps": "16", "frame_counts": [33], "images": 0}', "lacks the clips' fps"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_train_video_refuses_a_hostile_dataset_record_by_name(tmp_path, capsys, case):
    """The dataset folder lies in the output folder, where any client can upload files: a record
    nested to blow the parser's stack, too big to read, or of the wrong shape is refused naming the
    file, with no server path in the message and no traceback."""
    text, expected = HOSTILE[case]
    folder = tmp_path / "output" / "lora_foundry" / "datasets" / "evil"
    folder.mkdir(parents=True)
    (folder / "lora_foundry_video_dataset.json").write_text(text)
    code = main(["train-video", str(folder), "--name", "x", "--out", str(tmp_path / "output")])
    err = capsys.readouterr().err
    assert code == 1 and "video dataset evil/lora_foundry_video_dataset.json" in err and expected in err
    assert str(tmp_path) not in err and "Traceback" not in err


def test_train_video_parses_the_dataset_toml_once(tmp_path, capsys, monkeypatch):
    """One ``train-video`` run parses the dataset TOML once (counted on the real ``tomllib.loads``;
    the launcher parsed it before and after each caching step); a dataset written by hand for the
    musubi stand-in, its record as LF Write Video Dataset writes it."""
    for name in ("MUSUBI_TUNER", "MUSUBI_PYTHON", "FAKE_MUSUBI_MODE"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "out" / "lora_foundry" / "datasets" / "set"
    (folder / "videos").mkdir(parents=True)
    for i in range(2):
        (folder / "videos" / f"shot{i:04d}_00.mp4").write_bytes(b"not decoded by the stand-in")
        (folder / "videos" / f"shot{i:04d}_00.txt").write_text("ohwx woman, walking\n")
    toml = (f'[general]\nresolution = [640, 352]\ncaption_extension = ".txt"\n\n[[datasets]]\n'
            f'video_directory = "{folder / "videos"}"\ncache_directory = "{folder / "cache"}"\n'
            'frame_extraction = "full"\nmax_frames = 33\nsource_fps = 16.0\n')
    (folder / "dataset.toml").write_text(toml)
    (folder / "lora_foundry_video_dataset.json").write_text(json.dumps(
        {"clips": ["videos/shot0000_00.mp4", "videos/shot0001_00.mp4"], "fps": 16.0, "frame_counts": [33, 33],
         "images": 0}))
    user = _musubi_user(tmp_path)
    parsed, real_loads = [], tomllib.loads
    monkeypatch.setattr(tomllib, "loads", lambda source, **more: parsed.append(source) or real_loads(source, **more))
    assert main(["train-video", str(folder), "--preset", "wan21_t2v_1.3B", "--name", "once", "--epochs", "1",
                 "--out", str(tmp_path / "out"), "--user-dir", str(user)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["steps"] == {"cache_latents": "done", "cache_text": "done",
                                                                 "train": "done"}
    assert parsed.count(toml) == 1


def _musubi_user(tmp_path: Path) -> Path:
    """A ComfyUI user folder whose musubi.json points at the musubi stand-in."""
    fake = make_fake_musubi(tmp_path / "ext")
    user = tmp_path / "user"
    (user / "lora_foundry").mkdir(parents=True)
    (user / "lora_foundry" / "musubi.json").write_text(json.dumps({
        "musubi_tuner": str(fake.root), "python": sys.executable, "accelerate": False,
        "models": {p: {r: str(f) for r, f in roles.items()} for p, roles in fake.models.items()}}))
    return user


def _last_json(capsys) -> str:
    text = capsys.readouterr().out
    return text[text.rindex("\n{") + 1:] if "\n{" in text else text[text.index("{"):]
