"""A scripted tiny conv net with LaMa's call signature, saved with torch.jit.save, loaded by us.

It refuses inputs whose sides are not multiples of 8 (as LaMa's FFC layers do), so the tests also
show that inpainting pads before the call and crops back after it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lora_foundry.models.lama_model import LAMA_SPEC, load_lama  # noqa: E402
from lora_foundry.models.registry import ModelMissingError, resolve  # noqa: E402
from lora_foundry.stages.layers.inpaint import InpaintSettings, inpaint, lama_filler, opencv_filler  # noqa: E402


class TinyLama(torch.nn.Module):
    """image [1,3,H,W] 0..1, mask [1,1,H,W] {0,1} -> [1,3,H,W] 0..1, like big-lama.pt."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 3, kernel_size=3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if image.shape[2] % 8 != 0 or image.shape[3] % 8 != 0:
            raise ValueError("LaMa needs sides that are multiples of 8")
        return torch.sigmoid(self.conv(torch.cat([image * (1.0 - mask), mask], dim=1)))


def save_lama_standin(folder: Path, name: str = "big-lama.pt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    path = folder / name
    torch.jit.save(torch.jit.script(TinyLama().eval()), str(path))
    return path


@pytest.fixture()
def lama_file(tmp_path) -> Path:
    return save_lama_standin(tmp_path / "lama")


def test_registry_finds_the_standin_and_the_loader_runs_it(lama_file, monkeypatch):
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    path = resolve(LAMA_SPEC, None, extra_dirs=[lama_file.parent])
    model = load_lama(path, "cpu")
    with torch.no_grad():
        out = model(torch.rand(1, 3, 16, 24), torch.zeros(1, 1, 16, 24))
    assert out.shape == (1, 3, 16, 24) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_loader_refuses_a_missing_file(tmp_path):
    with pytest.raises(ModelMissingError):
        load_lama(tmp_path / "big-lama.pt", "cpu")


def _frame_with_hole(height: int = 203, width: int = 317) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    hole = np.zeros((height, width), bool)
    hole[60:110, 80:150] = True
    hole[150:170, 250:300] = True
    return image, hole


@pytest.mark.parametrize("backend", ["lama", "opencv"])
def test_pixels_outside_the_dilated_hole_are_the_input(lama_file, backend):
    image, hole = _frame_with_hole()  # odd sizes: the window must be padded to multiples of 8
    fill = lama_filler(load_lama(lama_file, "cpu"), "cpu") if backend == "lama" else opencv_filler()
    settings = InpaintSettings(dilate_px=4, context=0.25, min_context_px=8)
    result, grown = inpaint(image, hole, fill, settings)
    assert result.shape == image.shape and result.dtype == np.uint8
    assert grown[hole].all() and grown.sum() > hole.sum()
    assert np.array_equal(result[~grown], image[~grown])
    assert (result[hole] != image[hole]).any()


def test_large_windows_are_downscaled_but_outside_stays_exact(lama_file):
    image, hole = _frame_with_hole(400, 600)
    fill = lama_filler(load_lama(lama_file, "cpu"), "cpu")
    result, grown = inpaint(image, hole, fill, InpaintSettings(dilate_px=2, max_side=64))
    assert np.array_equal(result[~grown], image[~grown])


def test_empty_hole_changes_nothing(lama_file):
    image, _ = _frame_with_hole()
    fill = lama_filler(load_lama(lama_file, "cpu"), "cpu")
    result, grown = inpaint(image, np.zeros(image.shape[:2], bool), fill)
    assert np.array_equal(result, image) and not grown.any()
