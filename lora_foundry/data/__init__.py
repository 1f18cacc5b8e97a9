"""Files that ship inside the package: the example clip the demo and the example workflows use.

``lf_example_montage.mp4`` is a 640x360 re-encode of six shots cut from footage whose licences
allow redistribution (CC BY 3.0, CC BY 4.0, CC0); ``README.md`` beside it names each source and
licence. It is here so ``lora-foundry demo`` and the weights-free example workflows run on a fresh
clone with nothing else present.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
EXAMPLE_VIDEO = DATA_DIR / "lf_example_montage.mp4"


def example_videos() -> dict[str, Path]:
    """The bundled example clips by the name a workflow uses for them."""
    return {path.name: path for path in (EXAMPLE_VIDEO,) if path.is_file()}
