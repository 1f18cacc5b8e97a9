"""The kohya LECO route against what sd-scripts' train_leco.py really prints and reads.

tests/data/sd_scripts_leco_output.json holds upstream's own output (063ef100's calls rendered by the
tqdm and rich its requirements pin): the bar's ``loss=`` postfix, and ``saved model to:`` Rich
records folded at 80 columns and glued to the bar. The parser is fed that stream; the fake trainer
is checked to print the same lines, then carries the route through success and cancel.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fixtures_fake_trainer import FAKE_LECO, add_leco_scripts, make_base_model, make_fake_install

from lora_foundry.kohya import launcher
from lora_foundry.kohya.leco_route import LecoRequest, plan_leco, run_leco
from lora_foundry.kohya.log_parse import CheckpointEvent, LineSplitter, LossPoint, parse_events
from lora_foundry.kohya.train_config import PreflightError
from lora_foundry.leco.prompts import PromptFileError
from lora_foundry.leco.train import LecoConfig
from lora_foundry.read_roots import ReadRoots

UPSTREAM = json.loads((Path(__file__).parent / "data" / "sd_scripts_leco_output.json").read_text("utf-8"))
# docs/train_leco.md (sd-scripts 9562588), section 2.3: neutral prompts from a text file.
DOCS_TOML = ('neutral_prompt_file = "neutrals.txt"\n\n[[targets]]\ntarget_class = ""\npositive = "high detail"\n'
             'negative = "low detail"\n')


def _lines(stream: str) -> list[str]:
    splitter = LineSplitter()
    return splitter.feed(stream.encode()) + splitter.flush()


def _normalized(stream: str, run_dir: str) -> list[str]:
    """The stream without what differs between runs: clock, tqdm timing, folding, source lines."""
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "", stream)
    text = re.sub(r"\[\d\d:\d\d<[^\],]*,\s*[\d.?]+\s*(?:it/s|s/it)", "[T", text)
    text = re.sub(r"[\w.]+\.py:\d+", "", text)  # Rich names the calling file; its width moves the folds
    text = re.sub(r"[ \n]", "", text).replace(re.sub(r"\s", "", run_dir), "<run>")
    return text.split("\r")


def test_upstream_stream_gives_each_steps_loss_and_no_false_checkpoint():
    run = launcher._Run()
    events = [e for line in _lines(UPSTREAM["stderr"]) for e in parse_events(line)]
    finals = [p for p in (run.apply(e) for e in events) if p] + [run.finish_step()]
    assert [(p.step, p.loss) for p in finals] == list(enumerate(UPSTREAM["losses"], start=1))
    assert run.done == run.total == UPSTREAM["steps"]
    # Rich folds the path onto further lines: the record names no usable path, so none is invented
    assert not [e for e in events if isinstance(e, CheckpointEvent) and Path(e.path).name.endswith(".safetensors")]


def test_a_record_on_one_line_is_a_checkpoint_even_after_a_bar():
    line = ("steps:  67%|██████▋   | 2/3 [00:00<00:00, 87.30it/s, loss=0.2500]                    INFO     "
            "saved model to: /r/x-step00000002.safetensors          leco_train_util.py:91")
    step, checkpoint = parse_events(line)
    assert step.loss == 0.25 and checkpoint == CheckpointEvent("/r/x-step00000002.safetensors")


def test_the_fake_trainer_prints_upstreams_lines(tmp_path):
    run_dir = tmp_path / "runs" / UPSTREAM["output_name"]
    run_dir.mkdir(parents=True)
    (run_dir / "prompts.toml").write_text('[[prompts]]\ntarget = "x"\n', encoding="utf-8")
    (tmp_path / "tok").mkdir()
    config = (f'[training]\noutput_dir = "{run_dir}"\noutput_name = "{UPSTREAM["output_name"]}"\n'
              f'max_train_steps = {UPSTREAM["steps"]}\nsave_every_n_steps = {UPSTREAM["save_every_n_steps"]}\n'
              f'prompts_file = "{run_dir / "prompts.toml"}"\ntokenizer_cache_dir = "{tmp_path / "tok"}"\n'
              'network_module = "networks.lora"\nnetwork_dim = 4\nnetwork_alpha = 1.0\n')
    (tmp_path / "run.toml").write_text(config, encoding="utf-8")
    (tmp_path / "train_leco.py").write_text(FAKE_LECO, encoding="utf-8")
    done = subprocess.run([sys.executable, "train_leco.py", "--config_file", "run.toml", "--prompts_file",
                           str(run_dir / "prompts.toml")], cwd=tmp_path,
                          capture_output=True, timeout=60, check=True)
    stderr = done.stderr.decode()  # bytes: text mode would turn tqdm's \r into \n
    fake = _normalized(stderr, str(run_dir))
    real = _normalized(UPSTREAM["stderr"], UPSTREAM["run_dir"])
    # the first record names our 1-item file (1 setting) where the capture loaded 4
    assert fake[1:] == real[1:] and fake[0].replace("loaded1", "loaded4") == real[0]
    assert _record_widths(stderr) == _record_widths(UPSTREAM["stderr"]) == {80}


def _record_widths(stream: str) -> set[int]:
    """Widths of the Rich record rows (the part after a bar they are glued to)."""
    rows = [row.split("]", 1)[1] if row.startswith("steps:") else row for row in re.split(r"[\r\n]", stream)]
    return {len(row) for row in rows if "INFO" in row or row.startswith(" " * 29)}


@pytest.fixture
def install(tmp_path):
    return add_leco_scripts(make_fake_install(tmp_path / "kohya"))


def _docs_request(tmp_path: Path, save_every: int = 0, min_snr_gamma: float = 0.0, noise_offset: float = 0.0,
                  **more) -> LecoRequest:
    folder = tmp_path / "input"
    folder.mkdir(exist_ok=True)
    (folder / "neutrals.txt").write_text("a photo\n\nstudio portrait\n", encoding="utf-8")
    training = LecoConfig(steps=6, save_every=save_every, min_snr_gamma=min_snr_gamma, noise_offset=noise_offset)
    return LecoRequest("sd15", make_base_model(tmp_path / "checkpoints"), DOCS_TOML, "detail_slider",
                       training=training, prompts_dir=folder, **more)


def test_upstream_docs_toml_with_a_neutral_file_trains_through_the_route(tmp_path, install):
    request = _docs_request(tmp_path, mixed_precision="bf16", attention="xformers", gradient_checkpointing=True,
                            min_snr_gamma=5.0, noise_offset=0.05, save_every=2)
    result = run_leco(request, install, tmp_path / "runs", tmp_path / "loras")
    run_dir = tmp_path / "runs" / "detail_slider"
    assert result.status == "success" and result.lora_path == tmp_path / "loras" / "detail_slider.safetensors"
    assert [loss for _, loss in result.loss_curve] == pytest.approx([0.5 / s for s in range(1, 7)], abs=1e-4)
    assert (run_dir / "neutrals.txt").read_text() == "a photo\n\nstudio portrait\n"  # beside prompts.toml
    config = tomllib.loads((run_dir / "run.toml").read_text())
    assert config["model"]["tokenizer_cache_dir"] == str(install.tokenizer_cache_dir)
    assert {k: config["training"][k] for k in ("mixed_precision", "xformers", "gradient_checkpointing",
                                               "min_snr_gamma", "noise_offset")} == {
        "mixed_precision": "bf16", "xformers": True, "gradient_checkpointing": True, "min_snr_gamma": 5.0,
        "noise_offset": 0.05}
    assert "sdpa" not in config["training"]
    assert "success: 6/6 steps" in (run_dir / "report.txt").read_text()


def test_cancel_lists_the_checkpoints_upstream_saved(tmp_path, install, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "slow")
    finals: list[int] = []

    def on_event(event):
        if isinstance(event, LossPoint):
            finals.append(event.step)

    request = _docs_request(tmp_path, save_every=1)
    result = run_leco(request, install, tmp_path / "runs", tmp_path / "loras", on_event=on_event,
                      should_stop=lambda: bool(finals) and finals[-1] >= 2)
    run_dir = tmp_path / "runs" / "detail_slider"
    assert result.status == "cancelled"
    names = [p.name for p in result.checkpoints]
    assert names[:2] == ["detail_slider-step00000001.safetensors", "detail_slider-step00000002.safetensors"]
    assert not (tmp_path / "loras" / "detail_slider.safetensors").exists()
    report = (run_dir / "report.txt").read_text()
    assert "kept checkpoints" in report and "set save_every" not in report


def test_cancel_before_the_first_save_says_when_it_was_due(tmp_path, install, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "slow")
    request = _docs_request(tmp_path, save_every=5)
    result = run_leco(request, install, tmp_path / "runs", tmp_path / "loras",
                      on_event=lambda e: None, should_stop=lambda: launcher_step(tmp_path) >= 1)
    assert result.status == "cancelled" and not result.checkpoints
    report = (tmp_path / "runs" / "detail_slider" / "report.txt").read_text()
    assert "first was due at step 5" in report and "set save_every" not in report


def launcher_step(tmp_path: Path) -> int:
    """Steps the trainer's log shows so far (what the launcher read)."""
    log = tmp_path / "runs" / "detail_slider" / "detail_slider.log"
    found = re.findall(r"\| (\d+)/\d+ \[", log.read_text("utf-8")) if log.is_file() else []
    return int(found[-1]) if found else 0


def test_neutral_file_outside_the_read_roots_is_refused(tmp_path, install):
    secret = tmp_path / "secret.txt"
    secret.write_text("x\n")
    toml = DOCS_TOML.replace("neutrals.txt", str(secret))
    request = LecoRequest("sd15", make_base_model(tmp_path / "c"), toml, "n", prompts_dir=None,
                          read_roots=ReadRoots.of([tmp_path / "input"]))
    (tmp_path / "input").mkdir()
    with pytest.raises(PromptFileError, match="neutral_prompt_file.*outside the folders"):
        plan_leco(request, install, tmp_path / "runs", tmp_path / "loras")


def test_no_tokenizer_cache_is_refused_before_launch(tmp_path):
    install = add_leco_scripts(make_fake_install(tmp_path / "kohya", tokenizers=()))
    with pytest.raises(PreflightError, match="tokenizer"):
        plan_leco(_docs_request(tmp_path), install, tmp_path / "runs", tmp_path / "loras")


def test_a_real_train_leco_log_gives_each_steps_last_loss():
    """tests/data/sd_scripts_real_leco.log: upstream's train_leco.py (063ef100 files in a 48d368f copy,
    tiny UNet, upstream's docs TOML with a 2-line neutral file: 8 settings) run through this route, 3
    steps, save_every 2. The oracle is the last ``loss=`` the log shows for each step."""
    log = (Path(__file__).parent / "data" / "sd_scripts_real_leco.log").read_text("utf-8")
    last: dict[int, float] = {}
    for step, value in re.findall(r"\| (\d+)/3 \[[^\]]*loss=([\d.]+)\]", log):
        last[int(step)] = float(value)
    run = launcher._Run()
    for line in log.splitlines():
        for event in parse_events(line):
            run.apply(event)
    run.finish_step()
    assert run.loss_curve == sorted(last.items()) and len(last) == 3
    assert "loaded 8 LECO prompt settings" in log and "saved model to:" in log
