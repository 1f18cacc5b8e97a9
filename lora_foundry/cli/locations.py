"""Where the command line writes: ComfyUI's own folders when the pack sits inside a ComfyUI install,
else the folder given with ``--out``.

Run from ComfyUI's venv as ``python -m lora_foundry`` (or ``lora-foundry``), the pack is
``<ComfyUI>/custom_nodes/<pack>/``: runs then go to ComfyUI's ``output/lora_foundry/...`` (where the
nodes put them) and finished LoRAs to ``models/loras/lora_foundry/``, where every LoRA loader lists
them. Outside a ComfyUI install there is no such place, so every command that writes (demo, ingest,
datasets, training) asks for ``--out`` instead of writing ``./out`` into whatever folder the shell is
in; ``--out`` is declared here alone (``add_out_argument``), so every command words it the same way.
The pack's path is taken as imported (not symlink-resolved): a pack linked into ``custom_nodes``
belongs to that ComfyUI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

LORAS_SUBDIR = ("models", "loras", "lora_foundry")


class NoOutputFolder(ValueError):
    """Not inside a ComfyUI install and no ``--out`` given."""


@dataclass(frozen=True)
class Outputs:
    """The output root (runs, datasets) and the folder finished LoRAs are published to."""

    root: Path
    loras: Path
    inside_comfyui: bool

    def note(self) -> str:
        if self.inside_comfyui:
            return f"LoRAs go to {self.loras} (ComfyUI lists them as lora_foundry/<name>.safetensors)"
        return f"LoRAs go to {self.loras}: ComfyUI lists LoRAs only under its models/loras/; copy them there"


def comfyui_root(pack_file: str | Path = __file__) -> Path | None:
    """The ComfyUI install this pack sits in (``<root>/custom_nodes/<pack>/lora_foundry/...``), or None."""
    here = Path(pack_file).absolute()
    for folder in here.parents:
        if folder.parent.name == "custom_nodes" and (folder.parent.parent / "main.py").is_file():
            return folder.parent.parent
    return None


def user_dir(given: Path | None, pack_file: str | Path = __file__) -> Path | None:
    """``--user-dir``, else ComfyUI's default user folder (``<ComfyUI>/user``, where trainer.json lives)."""
    root = comfyui_root(pack_file)
    return given if given is not None or root is None else root / "user"


def add_out_argument(parser: Any) -> None:
    """``--out``, the output root (``output_root``), as every command that writes workspaces, datasets or
    runs takes it."""
    parser.add_argument("--out", type=Path, help="output root: workspaces, datasets and runs go under "
                        "OUT/lora_foundry/ (default: ComfyUI's output folder when the pack sits in a ComfyUI "
                        "install; required otherwise)")


def add_output_arguments(parser: Any) -> None:
    """``--out``, ``--loras-dir`` and ``--user-dir``, as every training command takes them."""
    add_out_argument(parser)
    parser.add_argument("--loras-dir", type=Path, help="where the finished LoRA goes (default: ComfyUI's "
                        "models/loras/lora_foundry, or OUT/loras outside ComfyUI)")
    parser.add_argument("--user-dir", type=Path, help="ComfyUI user dir holding lora_foundry/trainer.json "
                        "and musubi.json (default: ComfyUI's user folder)")


def output_root(out: Path | None, pack_file: str | Path = __file__) -> Path:
    """``--out`` when given, else ComfyUI's output folder, else ``NoOutputFolder`` (never ``./out``)."""
    if out is not None:
        return out.expanduser().resolve()
    root = comfyui_root(pack_file)
    if root is None:
        raise NoOutputFolder("not inside a ComfyUI install (<ComfyUI>/custom_nodes/<this pack>): give --out DIR: "
                             "workspaces, datasets and runs go under DIR/lora_foundry/, trained LoRAs to "
                             "DIR/loras unless --loras-dir is given")
    return root / "output"


def outputs(out: Path | None, loras: Path | None = None, pack_file: str | Path = __file__) -> Outputs:
    """``output_root``, and ``--loras-dir`` when given, else ComfyUI's LoRA folder, else ``OUT/loras``."""
    base = output_root(out, pack_file)
    root = comfyui_root(pack_file)
    if loras is not None:
        return Outputs(base, loras.expanduser().resolve(), False)
    if root is not None:
        return Outputs(base, root.joinpath(*LORAS_SUBDIR), True)
    return Outputs(base, base / "loras", False)
