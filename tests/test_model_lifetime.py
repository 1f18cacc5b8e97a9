"""Models visit the accelerator only for their work (issue 11), shown with a fake one.

A fake ``comfy.model_management`` (reached, as the real one is, through nodes/_comfy.py) says the
torch device is ``cpu:0``: a second name for the CPU. torch really moves tensors there, so the
stand-in models run, but the name differs from the offload device "cpu", so every handle treats it
as an accelerator. ``torch.nn.Module.to`` is wrapped to record each move into the same list where
the fake's ``free_memory`` and ``soft_empty_cache`` record their calls. Its
``throw_exception_if_processing_interrupted`` raises ComfyUI's interrupt when told to: a cancel that
arrives the way ComfyUI's does, from the progress callback in the middle of the work.

For each node that runs a model, after it returns, raises, or is cancelled: the work ran on the
accelerator, room was asked for (the weights plus the work estimate) before the first move there,
the weights are back on the offload device, the cache was emptied after, and the loader caches
hold CPU copies only. ONNX models (pose, expression classifier, chosen on "cuda" so a session is
opened for the run) must have their CUDA session opened after the room was asked for and dropped
after the node.
"""

from __future__ import annotations

import gc
import sys
import types
import weakref
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

from clip_standin import save_tiny_local_dir  # noqa: E402
from test_expression_classifier import save_brightness_classifier  # noqa: E402
from test_faces_standin import MOBILE, save_random_retinaface  # noqa: E402
from test_lama_standin import save_lama_standin  # noqa: E402
from test_pose_standin import save_tiny_rtmpose  # noqa: E402
from test_sam2_standin import SHRINK, save_standin  # noqa: E402

ACCELERATOR = "cpu:0"
PROMPTS = '{"relative": true, "objects": [{"box": [0.2, 0.2, 0.7, 0.9]}]}'
LOADERS = ("SAM2Loader", "LaMaLoader", "CLIPLoader", "FaceLoader", "PoseLoader", "ExpressionClassifierLoader")


class Interrupted(Exception):
    """Stands for ``comfy.model_management.InterruptProcessingException``."""


class FakeModelManagement(types.ModuleType):
    """The parts of ``comfy.model_management`` the pack calls, recording into ``events``."""

    def __init__(self, events: list) -> None:
        super().__init__("comfy.model_management")
        self.events, self.interrupt_after, self.checks = events, None, 0
        self.InterruptProcessingException = Interrupted

    def get_torch_device(self):
        return torch.device(ACCELERATOR)

    def free_memory(self, memory_required, device, keep_loaded=()):
        self.events.append(("free", int(memory_required), str(device)))

    def soft_empty_cache(self, force=False):
        self.events.append(("empty",))

    def throw_exception_if_processing_interrupted(self):
        self.checks += 1
        if self.interrupt_after is not None and self.checks > self.interrupt_after:
            raise Interrupted("cancelled by the user")


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifetime") / "models"
    save_standin(root / "sam2")
    save_lama_standin(root / "lama")
    save_tiny_local_dir(root / "open_clip" / "tiny-clip")
    save_random_retinaface(root / "facedetection")
    save_tiny_rtmpose(root / "rtmpose" / "tiny-rtmpose.onnx")
    save_brightness_classifier(root / "expression" / "tiny-expression.onnx")
    return root


@pytest.fixture()
def rig(pack, models_root, output_root, tmp_path, monkeypatch):
    """Four synthetic frames, the fake accelerator installed, models loaded by the loader nodes."""
    from PIL import Image

    events: list = []
    fake = FakeModelManagement(events)
    monkeypatch.setitem(sys.modules, "comfy.model_management", fake)
    moving = torch.nn.Module.to

    def recording_to(module, *args, **kwargs):
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            events.append(("to", id(module), str(device)))
        return moving(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", recording_to)
    asking = pack.nodes._comfy.ComfyMemory.make_room

    def recording_make_room(memory, size, device):
        events.append(("room", int(size), str(device)))
        return asking(memory, size, device)

    monkeypatch.setattr(pack.nodes._comfy.ComfyMemory, "make_room", recording_make_room)
    monkeypatch.setenv("LORA_FOUNDRY_MODELS", str(models_root))
    monkeypatch.setattr(pack.lora_foundry.models.sam2_model, "load_sam2", _shrunk(pack))
    folder = tmp_path / "input" / "images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(4):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    frames, _ = pack.nodes.frames.LoadImageFolder().load(str(folder), "lifetime", 0, False)
    loaders = pack.nodes.loaders
    models = SimpleNamespace(
        sam=loaders.SAM2Loader().load("sam2.1_hiera_tiny.pt", "auto (from file name)", "auto")[0],
        lama=loaders.LaMaLoader().load("big-lama.pt", "error", "auto")[0],
        clip=loaders.CLIPLoader().load("tiny-clip/", "auto", "auto")[0],
        face=loaders.FaceLoader().load(MOBILE, "auto")[0],
        pose=loaders.PoseLoader().load("tiny-rtmpose.onnx", "cuda")[0],
        classifier=loaders.ExpressionClassifierLoader().load("tiny-expression.onnx", "cuda")[0])
    assert not [e for e in events if e[0] == "to" and e[2] == ACCELERATOR], "a loader built on the accelerator"
    return SimpleNamespace(pack=pack, fake=fake, events=events, frames=frames, models=models)


def _shrunk(pack):
    """``load_sam2`` building the shrunk stand-in architecture (the file holds its weights)."""
    original = pack.lora_foundry.models.sam2_model.load_sam2

    def load(path, device, config=None, hydra_overrides=()):
        return original(path, device, config, SHRINK)

    return load


# --- the nodes: each builder runs what the node needs first and returns the node's call -------


def _split(rig, node="SAM2LayerSplit"):
    cls = getattr(rig.pack.nodes.layers, node)
    return lambda: cls().split(rig.frames, rig.models.sam, "prompts", PROMPTS, 16, 0.01, 0.6, 2, 8, 8, "#FFFFFF")


def _inpaint(rig):
    masks = torch.zeros(4, 96, 128)
    masks[:, 30:70, 40:90] = 1.0
    _, backgrounds = rig.pack.nodes.layers.MasksToLayers().convert(rig.frames, masks, True, 8, "#FFFFFF")
    return lambda: rig.pack.nodes.layers.InpaintBackgrounds().inpaint(backgrounds, rig.models.lama, 4, 0.5, 1024)


def _embed(rig):
    return lambda: rig.pack.nodes.clusters.EmbedFrames().embed(rig.frames, "clip", 1, rig.models.clip)


def _select_by_text(rig):
    clusters = rig.pack.nodes.clusters
    embedded, _ = clusters.EmbedFrames().embed(rig.frames, "clip", 4, rig.models.clip)
    clustered = clusters.ClusterFrames().cluster(embedded, "characters", 2, 0.9, 0.1, 0.5, "sklearn")["result"][0]
    return lambda: clusters.SelectClusters().select(clustered, "text", "", 1, "a red square", "", rig.models.clip)


def _lighting(rig):
    return lambda: rig.pack.nodes.tagging.TagLighting().tag(rig.frames, 0.0, rig.models.clip)


def _faces(rig):
    return lambda: rig.pack.nodes.tagging.DetectFaces().detect(rig.frames, rig.models.face, 0.0, 0.3, 8, 2,
                                                              "smiling, sad", rig.models.clip)


def _faces_with_classifier(rig):
    return lambda: rig.pack.nodes.tagging.DetectFaces().detect(rig.frames, rig.models.face, 0.0, 0.3, 8, 2, "",
                                                              None, rig.models.classifier)


def _pose(rig):
    return lambda: rig.pack.nodes.tagging.TagPose().tag(rig.frames, rig.models.pose, 0.3)


NODES = {  # name: (handles it runs, (module, function) its work calls, builder)
    "layer split": (("sam",), ("stages.layers.split", "segment_prompted"), _split),
    "track through shots": (("sam",), ("stages.layers.split", "segment_prompted"),
                            lambda rig: _split(rig, "SAM2TrackShots")),
    "inpaint": (("lama",), ("stages.layers.inpaint_stage", "inpaint"), _inpaint),
    "embed": (("clip",), ("models.clip_model", "embed_pil_batch"), _embed),
    "select by text": (("clip",), ("models.clip_model", "embed_texts"), _select_by_text),
    "tag lighting": (("clip",), ("models.clip_model", "zero_shot"), _lighting),
    "detect faces": (("face", "clip"), ("models.clip_model", "zero_shot"), _faces),
    "detect faces, classifier": (("face", "classifier"), ("models.expression_model", "classify"),
                                 _faces_with_classifier),
    "tag pose": (("pose",), ("models.pose_model", "estimate"), _pose),
}
NO_PROGRESS = {"select by text"}  # its model call is one step: no progress callback to cancel in
CASES = [(name, outcome) for name in NODES for outcome in ("returns", "raises", "cancelled")
         if not (outcome == "cancelled" and name in NO_PROGRESS)]


def _spy(rig, monkeypatch, target, handles, fail):
    """Wrap the function the work calls: record where each model is then, and fail if asked."""
    seen: list = []
    module = rig.pack.lora_foundry
    for part in target[0].split("."):
        module = getattr(module, part)
    original = getattr(module, target[1])

    def spy(*args, **kwargs):
        seen.append([handle.device for handle in handles])
        if fail:
            raise RuntimeError("CUDA out of memory (fake)")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, target[1], spy)
    return seen


def _record_onnx_sessions(rig, monkeypatch):
    """Record every onnxruntime session the pose and expression handles open (weakly)."""
    models = rig.pack.lora_foundry.models
    for module, name in ((models.pose_model, "_estimator"), (models.expression_model, "_session")):
        original = getattr(module, name)

        def opening(*args, _original=original):
            opened = _original(*args)
            rig.events.append(("open", args[-1], weakref.ref(opened)))
            return opened

        monkeypatch.setattr(module, name, opening)


@pytest.mark.parametrize(("name", "outcome"), CASES)
def test_models_go_back_to_the_offload_device(rig, monkeypatch, name, outcome):
    wanted, target, build = NODES[name]
    handles = [getattr(rig.models, key) for key in wanted]
    run = build(rig)
    seen = _spy(rig, monkeypatch, target, handles, fail=outcome == "raises")
    _record_onnx_sessions(rig, monkeypatch)
    rig.events.clear()
    if outcome == "cancelled":  # the first progress report passes, the second is the user's cancel
        rig.fake.checks, rig.fake.interrupt_after = 0, 1
    if outcome == "returns":
        run()
    else:
        with pytest.raises(RuntimeError if outcome == "raises" else Interrupted):
            run()
    assert seen, "the model's work never ran"
    assert seen[0] == [handle.compute_device for handle in handles]  # the work ran on the accelerator
    gc.collect()
    for handle in handles:
        check_visit(rig.events, handle)
    check_loader_caches(rig)


def check_visit(events: list, handle) -> None:
    """Room asked for before the first move, weights back on the offload device, cache emptied."""
    assert handle.device == handle.offload_device == "cpu"
    assert handle.compute_device != handle.offload_device
    if isinstance(handle.model, torch.nn.Module):
        arrivals = [i for i, e in enumerate(events) if e[0] == "to" and e[1] == id(handle.model)]
        assert arrivals and events[arrivals[0]][2] == handle.compute_device
        assert events[arrivals[-1]][2] == "cpu", "the weights stayed on the accelerator"
        assert_on_cpu(handle.model)
    else:  # onnxruntime: a session is opened on the compute device, and dropped
        arrivals = [i for i, e in enumerate(events) if e[0] == "open" and e[1] == handle.compute_device]
        assert arrivals, "no session was opened on the compute device"
        assert all(events[i][2]() is None for i in arrivals), "a CUDA session outlived the node"
        assert handle.model.__class__.__name__ in ("RTMPose", "RTMO", "InferenceSession")
    # ComfyUI is asked about the devices it manages (the fake's cpu:0); the CUDA sessions of ONNX
    # models are opened after the handle asked (ComfyUI, here on "cpu:0", keeps nothing on CUDA).
    kind = "free" if isinstance(handle.model, torch.nn.Module) else "room"
    asked = [i for i, e in enumerate(events[:arrivals[0]]) if e[0] == kind]
    assert asked, "the model moved before ComfyUI was asked for room"
    assert events[asked[-1]][1:] == (handle.size_bytes(), handle.compute_device)
    assert handle.size_bytes() > handle.work_bytes > 0
    assert ("empty",) in events[arrivals[-1]:]


def assert_on_cpu(module) -> None:
    tensors = [*module.parameters(), *module.buffers()]
    assert tensors and all(t.device.type == "cpu" for t in tensors)


def check_loader_caches(rig) -> None:
    """Every model a loader keeps is a CPU copy, whatever device it works on."""
    for loader in LOADERS:
        for handle in getattr(rig.pack.nodes.loaders, loader)._cache.values():
            assert handle.device == "cpu"
            if isinstance(handle.model, torch.nn.Module):
                assert_on_cpu(handle.model)
                moves = [e[2] for e in rig.events if e[0] == "to" and e[1] == id(handle.model)]
                assert not moves or moves[-1] == "cpu"


def test_nothing_moves_and_no_one_is_asked_when_compute_is_the_offload_device(rig):
    """The CLI's case (and an explicit "cpu" choice): the model works where it rests."""
    handle = rig.pack.nodes.loaders.FaceLoader().load(MOBILE, "cpu")[0]
    rig.events.clear()
    rig.pack.nodes.tagging.DetectFaces().detect(rig.frames, handle, 0.0, 0.3, 8, 2, "", None)
    assert handle.compute_device == handle.device == "cpu"
    assert not [e for e in rig.events if e[0] in ("free", "empty") or (e[0] == "to" and e[1] == id(handle.model))]


def test_a_handle_asks_before_it_moves_and_always_moves_back():
    """The engine's ``on_device`` with a module that only records moves and a recording manager."""
    from lora_foundry.models.handle import ModelHandle

    log: list = []

    class Recorder(torch.nn.Module):
        def to(self, device):
            log.append(("to", device))
            return self

    class Manager:
        def make_room(self, size, device):
            log.append(("room", size, device))

        def released(self, device):
            log.append(("released", device))

    handle = ModelHandle(Recorder(), "cuda", "id", "test", weight_bytes=10, work_bytes=5, memory=Manager())
    visit = [("room", 15, "cuda"), ("to", "cuda"), ("to", "cpu"), ("released", "cuda")]
    for failure in (None, RuntimeError("out of memory"), KeyboardInterrupt()):
        log.clear()
        try:
            with handle.on_device():
                assert handle.device == "cuda"
                with handle.on_device():  # nested: one visit
                    pass
                if failure is not None:
                    raise failure
        except (RuntimeError, KeyboardInterrupt):
            pass
        assert log == visit and handle.device == "cpu"
    log.clear()
    with ModelHandle(Recorder(), "cpu", "id", memory=Manager()).on_device():
        pass
    assert log == []


def test_comfyui_is_asked_about_its_own_device(monkeypatch):
    """ComfyUI unloads the models whose device equals the one asked about, and its devices carry an
    index: a model chosen on "cuda" must ask about "cuda:0", or nothing is freed."""
    from conftest import import_pack

    comfy = import_pack().nodes._comfy
    events: list = []
    fake = FakeModelManagement(events)
    fake.get_torch_device = lambda: torch.device("cuda", 0)
    monkeypatch.setitem(sys.modules, "comfy.model_management", fake)
    memory = comfy.ComfyMemory()
    memory.make_room(100, "cuda")
    memory.make_room(200, "cuda:1")
    memory.released("cuda")
    assert events == [("free", 100, "cuda:0"), ("free", 200, "cuda:1"), ("empty",)]
    assert comfy.torch_device("auto") == "cuda:0"
    fake.get_torch_device = lambda: torch.device("cpu")  # --cpu: ComfyUI keeps nothing on a GPU
    events.clear()
    memory.make_room(100, "cuda")
    assert events == []
