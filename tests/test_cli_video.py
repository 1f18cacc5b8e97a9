"""``lora-foundry video-dataset`` and ``train-video`` on the bundled montage and the musubi stand-in."""

from __future__ import annotations

import json
import sys

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
    fake = make_fake_musubi(tmp_path / "ext")
    user = tmp_path / "user"
    (user / "lora_foundry").mkdir(parents=True)
    (user / "lora_foundry" / "musubi.json").write_text(json.dumps({
        "musubi_tuner": str(fake.root), "python": sys.executable, "accelerate": False,
        "models": {p: {r: str(f) for r, f in roles.items()} for p, roles in fake.models.items()}}))
    assert main(["train-video", written["dataset"], "--preset", "wan21_t2v_1.3B", "--name", "x", "--epochs", "1",
                 "--out", str(out), "--user-dir", str(user)]) == 1, "Wan refuses clips cut at 24 fps"
    assert "at 24 fps but wan21_t2v_1.3B trains at 16 fps" in capsys.readouterr().err
    assert main(["train-video", written["dataset"], "--preset", "hunyuan_video", "--name", "film_hv", "--epochs", "1",
                 "--out", str(out), "--user-dir", str(user)]) == 0
    printed = capsys.readouterr().out
    assert "step 1/" in printed and json.loads(printed[printed.index("{"):])["status"] == "success"


def _last_json(capsys) -> str:
    text = capsys.readouterr().out
    return text[text.rindex("\n{") + 1:] if "\n{" in text else text[text.index("{"):]
