"""Reading a dataset TOML back from disk: the one place its folders become absolute paths.

A ``dataset.toml`` under ComfyUI's output folder is untrusted (issue 23): any client can upload one
there (``POST /upload/image`` with ``type=output``) naming ``image_dir = "/srv/private/photos"``, and
the trainer would train on that folder and report how many images it holds. So every folder or
file the TOML names for sd-scripts (``image_dir``, ``conditioning_data_dir``, ``metadata_file``)
must resolve, symlinks included, inside the folders a workflow may read (``ReadRoots``); a refusal
names the TOML and the field. The operator's CLI passes no roots and may name any folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..bounded import parse_toml_file
from ..choices import quoted
from ..paths import text_problem
from ..read_roots import ReadRoots
from .preflight import PreflightError

PATH_KEYS = ("image_dir", "conditioning_data_dir", "metadata_file")
MAX_TOML_CHARS = 4 << 20  # a dataset TOML the writer makes is a few kB


def read_dataset_toml(src: Path, roots: ReadRoots | None) -> dict[str, Any]:
    """The TOML at ``src`` with every path key made absolute (relative to the TOML's folder) and
    checked inside ``roots`` (None: the operator's CLI, unchecked)."""
    if not src.is_file():
        raise PreflightError(f"dataset config {src.name} does not exist: write the dataset first")
    try:
        data = parse_toml_file(src, f"dataset config {src.name}", MAX_TOML_CHARS)
    except (ValueError, OSError) as error:
        raise PreflightError(str(error)) from None
    datasets = data.get("datasets", [])
    if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
        raise PreflightError(f"dataset config {src.name}: 'datasets' must be a list of tables")
    tables = [("general", data.get("general", {}))]
    for number, dataset in enumerate(datasets):
        tables.append((f"datasets[{number}]", dataset))
        subsets = dataset.get("subsets", [])
        if not isinstance(subsets, list) or not all(isinstance(s, dict) for s in subsets):
            raise PreflightError(f"dataset config {src.name}: datasets[{number}].subsets must be a list of tables")
        tables += [(f"datasets[{number}].subsets[{index}]", subset) for index, subset in enumerate(subsets)]
    for where, table in tables:
        if isinstance(table, dict):
            for key in PATH_KEYS:
                if key in table:
                    table[key] = str(_checked(src, f"{where}.{key}", table[key], roots))
    return data


def _checked(src: Path, field: str, value: Any, roots: ReadRoots | None) -> Path:
    """``value`` as an absolute path, refused unless it lies inside ``roots``."""
    if not isinstance(value, str) or not value.strip() or text_problem(value) is not None:
        raise PreflightError(f"dataset config {src.name}: {field} must be a folder path")
    given = Path(value)
    path = (given if given.is_absolute() else src.parent / given).resolve()
    if roots is not None and not roots.contains(path):
        raise PreflightError(f"dataset config {src.name}: {field} {quoted(value)} is outside the folders "
                             "workflows may read; the file was altered or written elsewhere, write the dataset "
                             "again with LF Write Kohya Dataset")
    return path
