"""The one type every loaded model travels in (the ``LF_*_MODEL`` sockets), and how it visits a device.

Our users share one GPU with big diffusion models. A model that stays on the GPU after its node
(as ours once did, in loader caches ComfyUI could not see) leaves SDXL or Flux without room. So a
``ModelHandle`` keeps its weights on the *offload device* (the CPU) and lends them to the *compute
device* only for the work, in ``on_device()``:

1. it asks a ``MemoryManager`` for room first (inside ComfyUI that unloads ComfyUI's own idle
   models, see ``nodes/_comfy.py``; the engine default asks no one: outside ComfyUI, e.g. the CLI,
   nothing else shares the device);
2. moves the weights to the compute device and runs the ``with`` block;
3. always moves them back, in ``finally``: after the work, after an error, and after a cancel
   (ComfyUI's interrupt is an exception raised from the progress callback inside the block);
4. tells the manager it gave the memory back.

When compute and offload device are the same (CPU-only machines, an explicit "cpu" choice) nothing
moves and no one is asked: the CLI keeps its behaviour.

How a model moves depends on its backend, so the handle takes a ``placer(resting, device)`` that
returns the object to run on ``device``: torch modules move in place (``module.to``); facexlib's
RetinaFace also keeps device-bound tensors outside its parameters; an ONNX Runtime session cannot
move at all, so for it the placer opens a session on the compute device inside ``on_device()``
and the handle drops it afterwards, while the cached resting session stays on the CPU
(``reopen_on``). Each backend module in ``models/`` has one opener that returns a handle:
``open_sam2``, ``open_lama``, ``load_clip``, ``load_face``, ``load_pose``, ``load_expression``;
identities come from ``registry.model_identity``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Generic, Protocol, TypeVar

Details = TypeVar("Details")
Placer = Callable[[Any, str], Any]  # (resting model, device) -> the model to run on that device


class MemoryManager(Protocol):
    """Who is asked before a model takes device memory and told after it gave it back."""

    def make_room(self, size: int, device: str) -> None:
        """Free at least ``size`` bytes on ``device`` (called before anything moves there)."""

    def released(self, device: str) -> None:
        """The model left ``device`` (called after it moved back, also after an error)."""


class MovesOnly:
    """The engine's manager: nobody else shares the device, so the moves are all there is."""

    def make_room(self, size: int, device: str) -> None:
        return None

    def released(self, device: str) -> None:
        return None


def move_module(model: Any, device: str) -> Any:
    """Placer of a torch module (TorchScript included): moves its weights in place."""
    return model.to(device)


def reopen_on(open_for: Callable[[str], Any], offload_device: str = "cpu") -> Placer:
    """Placer of a backend that cannot move (an ONNX Runtime session): on the offload device the
    resting object is used; on another device ``open_for(device)`` builds a fresh one, which the
    handle drops when the work is done (so its device memory is freed with it)."""

    def place(resting: Any, device: str) -> Any:
        return resting if device == offload_device else open_for(device)

    return place


def weights_size(model: Any) -> int:
    """Bytes of a torch module's parameters and buffers (ComfyUI's ``module_size`` rule); 0 for
    anything else."""
    state_dict = getattr(model, "state_dict", None)
    if not callable(state_dict):
        return 0
    return sum(t.nelement() * t.element_size() for t in state_dict().values() if hasattr(t, "element_size"))


class ModelHandle(Generic[Details]):
    """A loaded model: what runs (``model``), what identifies it in stage keys (``identity``),
    its file (``name``), its family (``kind``: sam2, lama, open_clip, retinaface, simcc/rtmo pose,
    classifier), backend facts that never touch a device (``details``: open_clip's preprocess and
    tokenizer, a pose model's input size, a classifier's labels), and where it rests and works.

    ``work_bytes`` estimates the activations of one unit of work (ComfyUI's upscale node estimates
    the same way); with the weights it is the room asked for before a move.
    """

    def __init__(self, model: Any, compute_device: str, identity: str, kind: str = "", *, name: str = "",
                 offload_device: str = "cpu", details: Details | None = None, placer: Placer = move_module,
                 weight_bytes: int | None = None, work_bytes: int = 0,
                 memory: MemoryManager | None = None) -> None:
        self.compute_device = str(compute_device)
        self.offload_device = str(offload_device)
        self.identity = identity
        self.kind = kind
        self.name = name
        self.details = details
        self.work_bytes = work_bytes
        self.memory: MemoryManager = memory or MovesOnly()
        self._resting = model
        self._placer = placer
        self._weight_bytes = weight_bytes
        self._active: Any = None
        self._device = self.offload_device if self.moves() else self.compute_device
        self._depth = 0

    @property
    def model(self) -> Any:
        """The object to run now: the one on the compute device inside ``on_device()``."""
        return self._active if self._active is not None else self._resting

    @property
    def device(self) -> str:
        """Where ``model`` works right now (inputs go there)."""
        return self._device

    def moves(self) -> bool:
        """Whether the work happens on another device than the one the weights rest on."""
        return self._resting is not None and self.compute_device != self.offload_device

    def size_bytes(self) -> int:
        """The room asked for before a move: the weights plus ``work_bytes``."""
        if self._weight_bytes is None:
            self._weight_bytes = weights_size(self._resting)
        return self._weight_bytes + self.work_bytes

    @contextmanager
    def on_device(self) -> Iterator[Any]:
        """Run the ``with`` block with the model on the compute device (see the module docstring);
        yields the model. Nested uses of one handle share the outermost visit."""
        if self._depth or not self.moves():
            self._depth += 1
            try:
                yield self.model
            finally:
                self._depth -= 1
            return
        self.memory.make_room(self.size_bytes(), self.compute_device)
        self._depth = 1
        try:
            self._active = self._placer(self._resting, self.compute_device)
            self._device = self.compute_device
            yield self._active
        finally:
            self._depth = 0
            self._active = None
            self._return()

    def _return(self) -> None:
        """Move the weights back to the offload device, then tell the manager (even if moving failed)."""
        try:
            self._placer(self._resting, self.offload_device)
            self._device = self.offload_device
        finally:
            self.memory.released(self.compute_device)

    def __repr__(self) -> str:
        return f"ModelHandle({self.kind or 'model'} {self.identity!r} on {self.device}, works on {self.compute_device})"


@contextmanager
def all_on_device(*handles: ModelHandle | None) -> Iterator[None]:
    """``on_device()`` for every given handle (``None`` skipped), in order; all return on exit."""
    with ExitStack() as stack:
        for handle in handles:
            if handle is not None:
                stack.enter_context(handle.on_device())
        yield
