"""The pack inside a real ComfyUI: nodes load, example workflows run, results are cached.

Skipped unless ``COMFYUI_DIR`` points at a ComfyUI checkout whose
``custom_nodes/lora_foundry`` links to this repository (see docs/real_comfyui.md). The server is
started from that checkout (``$COMFYUI_PYTHON``, else ``$COMFYUI_DIR/venv/bin/python``) with
``--cpu`` on 127.0.0.1 (``$COMFYUI_PORT`` or a free port), with output, input, temp and user
folders under pytest's tmp dir: the checkout itself is never written to. Set ``LF_NODE_MODULES``
(a node_modules folder with playwright-core) to also run the workflow from the real front end in
headless Chromium and check the preview node shows thumbnails.

With ``LF_STANDINS=1`` the server also gets random-weight stand-ins for every model file the example
workflows name (``standins.py``: built into pytest's tmp dir, or ``$LF_STANDINS_DIR`` to keep them
between runs, and added with ``--extra-model-paths-config``) and a fake sd-scripts in its user
folder; then every example workflow must run to success, with no output left out.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_api import ComfyServer, PromptRejected, comfy_python, screenshot_folder, status_messages  # noqa: E402
from standins import shrink_for_standins  # noqa: E402
from timings import TIMING_LINES, WorkflowTimings  # noqa: E402
from ui_to_api import ui_to_api  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_workflows"
SPINE_WORKFLOW = "video_to_kohya_dataset.json"
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
STANDINS = os.environ.get("LF_STANDINS", "") not in ("", "0")

pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout to run")


def _link_media(input_dir: Path, media_dir: Path) -> None:
    """Example workflows name media relative to ComfyUI's input folder, as a user's would."""
    for media in media_dir.iterdir():
        (input_dir / media.name).symlink_to(media)


def _standin_args(comfy_dir: Path, tmp_path_factory) -> tuple[str, ...]:
    """Build the stand-in models (outside the checkout) and the ComfyUI option that adds them."""
    from standins import extra_model_paths_yaml, install_standins

    models = Path(os.environ.get("LF_STANDINS_DIR") or tmp_path_factory.mktemp("standin_models"))
    install_standins(models, comfy_dir=comfy_dir, comfy_python=comfy_python(comfy_dir), log=print)
    config = extra_model_paths_yaml(models, tmp_path_factory.mktemp("standin_config") / "extra_model_paths.yaml",
                                    new_loras=tmp_path_factory.mktemp("trained_loras"))
    return ("--extra-model-paths-config", str(config))


@pytest.fixture(scope="module")
def timing_lines(pytestconfig):
    """Lines for pytest's terminal summary (tests/conftest.py prints them)."""
    lines = pytestconfig.stash.setdefault(TIMING_LINES, [])
    return lines.append


@pytest.fixture(scope="module")
def server(tmp_path_factory, media_dir, timing_lines):
    comfy_dir = Path(COMFYUI_DIR).resolve()
    link = comfy_dir / "custom_nodes" / "lora_foundry"
    if not link.exists() or link.resolve() != REPO.resolve():
        pytest.fail(f"{link} must link to {REPO}: ln -s {REPO} {link}")
    comfy = ComfyServer(comfy_dir, comfy_python(comfy_dir), tmp_path_factory.mktemp("comfyui"),
                        extra_args=_standin_args(comfy_dir, tmp_path_factory) if STANDINS else ())
    comfy.standins = STANDINS
    comfy.dirs["input"].mkdir(parents=True, exist_ok=True)
    _link_media(comfy.dirs["input"], media_dir)
    if STANDINS:
        from standins import musubi_standin, trainer_standin

        trainer_standin(tmp_path_factory.mktemp("standin_trainer"), comfy.dirs["user"])
        musubi_standin(tmp_path_factory.mktemp("standin_musubi"), comfy.dirs["user"])
    comfy.models_before = _files_under(comfy_dir / "models")
    with comfy:
        comfy.startup_log = comfy.log()
        comfy.timings = WorkflowTimings(comfy.client, standins=STANDINS, path=os.environ.get("LF_TIMINGS"))
        yield comfy
        comfy.timings.report(print_to=timing_lines)


@pytest.fixture(scope="module")
def object_info(server):
    return server.client.object_info()


def _run_workflow(server, object_info, workflow_path: Path) -> tuple[dict, dict]:
    prompt = ui_to_api(json.loads(workflow_path.read_text(encoding="utf-8")), object_info)
    prompt_id = server.client.queue(prompt)
    return prompt, server.timings.wait(workflow_path.stem, prompt_id, timeout=900)


def _queue_whole_workflow(server, object_info, workflow_path: Path, new_lora_names: str = "") -> dict:
    """Queue a workflow and wait for it. ComfyUI runs the outputs that validate and only lists the
    others in ``node_errors``; a workflow left partly out is refused here like a rejected one.
    ``new_lora_names`` suffixes every ``output_name``: a training node refuses to publish over a LoRA
    an earlier queue published, which a re-queue meets once ComfyUI has dropped its cache."""
    prompt = ui_to_api(json.loads(workflow_path.read_text(encoding="utf-8")), object_info)
    if server.standins:
        shrink_for_standins(prompt)
    for node in prompt.values():
        if new_lora_names and isinstance(node["inputs"].get("output_name"), str):
            node["inputs"]["output_name"] += new_lora_names
    answer = server.client.submit(prompt)
    if answer.get("node_errors"):
        raise PromptRejected(answer)
    # with stand-ins the SAM 2 tracking and the weight sweep each take 10-20 min on 2 CPU cores
    return server.timings.wait(workflow_path.stem, answer["prompt_id"], timeout=3600 if server.standins else 900)


def _error_of(entry: dict) -> dict | None:
    errors = status_messages(entry, "execution_error")
    return errors[0] if errors else None


def test_every_node_loads_in_comfyui(server, object_info, pack):
    log = server.startup_log
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line or "Cannot import" in line]
    assert not [line for line in failed if "lora_foundry" in line], "\n".join(failed)
    tracebacks = re.findall(r"Traceback \(most recent call last\):.*?(?=\n\S|\Z)", log, re.S)
    assert not [t for t in tracebacks if "lora_foundry" in t], "\n".join(tracebacks)
    listed = {key for key in object_info if key.startswith("LF_")}
    assert listed == set(pack.NODE_CLASS_MAPPINGS), (
        f"missing in ComfyUI: {sorted(set(pack.NODE_CLASS_MAPPINGS) - listed)}; "
        f"unexpected: {sorted(listed - set(pack.NODE_CLASS_MAPPINGS))}")
    for key in pack.NODE_CLASS_MAPPINGS:
        assert object_info[key]["category"].startswith("LoRA Foundry"), key


def _other_workflows() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.json") if p.name != SPINE_WORKFLOW)


# A loader's refusal: returned when ComfyUI gave it one input, raised (listed once) when more (_checks.py).
OUR_REFUSALS = ("custom_validation_failed", "exception_during_validation", "exception_during_inner_validation")
# "put FILE in FOLDER" (a loader); "which cannot run:" (a dataset writer whose trainer is not set up).
SETUP_MISSING = ("put ", "which cannot run:")
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".onnx", ".bin", ".gguf")


def missing_model_files(rejection: PromptRejected) -> list[str]:
    """ComfyUI's own "Value not in list" errors for model-file combos, or [] if any other error."""
    details = []
    for node in (rejection.body.get("node_errors") or {}).values():
        for error in node.get("errors", []):
            value = str(error.get("extra_info", {}).get("received_value", ""))
            ours = error.get("type") in OUR_REFUSALS and any(m in str(error.get("details")) for m in SETUP_MISSING)
            if not ours and (error.get("message") != "Value not in list" or not value.lower().endswith(MODEL_SUFFIXES)):
                return []  # loaders' VALIDATE_INPUTS say "put FILE in FOLDER"; anything else is a real failure
            details.append(f"{node.get('class_type')}: {error.get('details')}")
    return details


@pytest.mark.parametrize("workflow", _other_workflows(), ids=lambda p: p.stem)
def test_example_workflow_runs_or_names_the_missing_model(server, object_info, workflow):
    """Without stand-ins a missing model file is an xfail; with them (LF_STANDINS=1) it fails."""
    try:
        entry = _queue_whole_workflow(server, object_info, workflow)
    except PromptRejected as rejection:
        missing = missing_model_files(rejection)
        if missing and not server.standins:
            pytest.xfail(f"{workflow.name} names model files that are not installed: {missing}")
        raise
    error = _error_of(entry)
    if error is None:
        assert entry["status"]["status_str"] == "success"
        return
    message = error.get("exception_message", "")
    if "lora-foundry[tune]" in message:
        pytest.skip(f"{workflow.name} needs Optuna in ComfyUI's Python (pip install 'lora-foundry[tune]')")
    if "ModelMissingError" in error.get("exception_type", "") and "put " in message and not server.standins:
        pytest.xfail(f"{workflow.name} needs a model that is not installed: {message.strip()}")
    pytest.fail(f"{workflow.name} failed in node {error.get('node_id')} ({error.get('node_type')}): "
                f"{error.get('exception_type')}: {message}\n{''.join(error.get('traceback', []))}")


def _files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def _spine_dataset_files(server, prompt: dict) -> dict[str, int]:
    """Files of the spine's own dataset folder(s) (other workflows share the output folder)."""
    datasets = server.dirs["output"] / "lora_foundry" / "datasets"
    name = next(node["inputs"]["dataset_name"] for node in prompt.values()
                if node["class_type"] == "LF_WriteKohyaDataset")
    ours = re.compile(rf"{re.escape(name)}(_v\d+)?")
    everything = _files_under(datasets) if datasets.is_dir() else {}
    return {f: v for f, v in everything.items() if ours.fullmatch(Path(f).parts[0])}


@pytest.fixture(scope="module")
def spine_runs(server, object_info):
    """The lead's workflow queued twice through /prompt: (prompt, first entry, files, second entry)."""
    path = EXAMPLES / SPINE_WORKFLOW
    if not path.exists():
        pytest.fail(f"{path} is missing")
    prompt, first = _run_workflow(server, object_info, path)
    assert _error_of(first) is None, json.dumps(_error_of(first), indent=1)[:4000]
    files = _spine_dataset_files(server, prompt)
    second = server.timings.wait(path.stem, server.client.queue(prompt), timeout=900)
    return prompt, first, files, second


def test_spine_workflow_writes_a_kohya_dataset_under_the_output_folder(server, spine_runs):
    _, first, files, _ = spine_runs
    assert first["status"]["status_str"] == "success"
    in_subsets = [f for f in files if re.fullmatch(r"\d+_.+", Path(f).parent.name)]
    images = [f for f in in_subsets if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))]
    captions = [f for f in in_subsets if f.endswith(".txt")]
    assert images, f"no images written under the output folder: {sorted(files)[:20]}"
    assert {Path(f).with_suffix("") for f in images} == {Path(f).with_suffix("") for f in captions}
    assert any(f.endswith("dataset.toml") for f in files)
    subset = Path(images[0]).parent.name
    assert re.fullmatch(r"\d+_.+", subset), f"{subset} is not a kohya 'N_trigger class' folder"


def test_spine_workflow_preview_returns_thumbnails(server, spine_runs):
    prompt, first, _, _ = spine_runs
    previews = [node_id for node_id, node in prompt.items() if node["class_type"] == "LF_PreviewFrames"]
    assert previews, "the workflow has no LF_PreviewFrames node"
    images = first["outputs"].get(previews[0], {}).get("images", [])
    assert len(images) >= 6, f"preview returned {images}"
    for image in images:  # served by /view, as the browser fetches them
        with Image.open(io.BytesIO(server.client.view(image))) as thumbnail:
            assert min(thumbnail.size) >= 32, (image, thumbnail.size)


def test_spine_workflow_queued_again_is_served_from_cache(server, spine_runs):
    prompt, _, files, second = spine_runs
    assert second["status"]["status_str"] == "success"
    cached = set(status_messages(second, "execution_cached")[0]["nodes"])
    assert cached == set(prompt), f"re-run nodes: {sorted(set(prompt) - cached)}"
    assert _spine_dataset_files(server, prompt) == files, "dataset rewritten"


@pytest.mark.skipif(not os.environ.get("LF_NODE_MODULES"), reason="set LF_NODE_MODULES for the browser check")
def test_spine_workflow_preview_shows_thumbnails_in_the_browser(server, spine_runs, tmp_path):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    screenshot = screenshot_folder(tmp_path) / "preview.png"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_workflow_ui.py"), str(EXAMPLES / SPINE_WORKFLOW),
         "--url", server.client.base_url, "--screenshot", str(screenshot), "--run"],
        capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "LF_PreviewFrames" in done.stdout and screenshot.stat().st_size > 0


@pytest.mark.skipif(not os.environ.get("LF_NODE_MODULES"), reason="set LF_NODE_MODULES for the browser check")
def test_video_loader_offers_upload_and_lists_an_uploaded_clip_in_the_browser(server, tmp_path):
    """The real front end shows LF Load Video Frames' upload button; a clip uploaded through it (the
    file chooser) is selected, listed and previewed, and one in an input sub-folder is listed too."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    clip = tmp_path / "uploaded_clip.mp4"
    clip.write_bytes((REPO / "lora_foundry" / "data" / "lf_example_montage.mp4").read_bytes())
    screenshot = screenshot_folder(tmp_path) / "video_loader.png"
    env = {**os.environ, "NODE_PATH": os.environ["LF_NODE_MODULES"]}
    done = subprocess.run(
        ["node", str(REPO / "scripts" / "check_video_loader_ui.js"), "--url", server.client.base_url,
         "--clip", str(clip), "--screenshot", str(screenshot),
         "--chromium", os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")],
        capture_output=True, text=True, timeout=600, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["added"]["button"] and "uploaded_clip.mp4" in report["serverChoices"]


@pytest.mark.skipif(not STANDINS, reason="the workflow needs its model stand-ins (LF_STANDINS=1)")
def test_video_lora_workflow_writes_clips_that_play(server, object_info):
    """The film-to-video-LoRA workflow runs (again, under a new LoRA name: the one it published above
    is refused by name when ComfyUI has dropped its cache), and every clip of its dataset decodes to
    a Wan clip: 16 fps, N*4+1 frames, the frames it declares."""
    import av

    entry = _queue_whole_workflow(server, object_info, EXAMPLES / "video_lora_dataset_from_film.json",
                                  new_lora_names="_again")
    assert _error_of(entry) is None, json.dumps(_error_of(entry), indent=1)[:4000]
    clips = sorted((server.dirs["output"] / "lora_foundry" / "datasets").glob("video_lora_demo*/videos/*.mp4"))
    assert clips
    for clip in clips:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            assert float(stream.average_rate) == 16.0 and frames == stream.frames and (frames - 1) % 4 == 0
        assert clip.with_suffix(".txt").read_text(encoding="utf-8").startswith("ohwx person")


def test_the_checkout_models_folder_was_not_written(server):
    """Runs after every workflow of this module (a trained LoRA is published into ComfyUI's first
    loras folder: with stand-ins that is a tmp folder, never the checkout's models/loras)."""
    assert _files_under(Path(COMFYUI_DIR).resolve() / "models") == server.models_before
