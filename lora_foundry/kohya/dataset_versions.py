"""Which folder a dataset is written to: ``name``, then ``name_v2``, ``name_v3``, ... One rule for
every dataset writer (kohya's image datasets and musubi's video datasets; it held two copies that
behaved differently: musubi's made a new version on every run).

The rule is kohya's: walk the versions in order; a version written from the same sources and
settings (its report's ``identity``) is the answer, so a re-queued workflow gets the dataset it
already wrote instead of another copy of every file (for musubi also a fresh, empty latent cache
to fill again, minutes of encoding); a free name is the answer; a version written from something
else is, by ``if_exists``, an error (say so before anything is overwritten), skipped
(``new_version``) or taken as it is (``reuse``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..bounded import parse_json_file
from ..paths import confined

IF_EXISTS = ("error", "new_version", "reuse")
MAX_VERSIONS = 999


class DatasetExistsError(FileExistsError):
    """A dataset of that name exists and was made from something else."""


def version_name(name: str, version: int) -> str:
    """``name`` for the first version, ``name_v2`` and on after it."""
    return name if version == 1 else f"{name}_v{version}"


def read_record(folder: Path, report_name: str) -> dict[str, Any]:
    """A dataset's record. Datasets lie in the output folder, where clients can write, so it is read
    bounded; a refusal names the dataset and the file, not the server path."""
    where = f"dataset {folder.name}/{report_name}"
    record = parse_json_file(folder / report_name, where)
    if not isinstance(record, dict):
        raise ValueError(f"{where} is not a dataset record (a JSON object); write the dataset again")
    return record


def identity_of(folder: Path, report_name: str) -> dict[str, Any] | None:
    """The identity a writer recorded in ``folder``'s report, or None (no report, unreadable, or
    not a record)."""
    try:
        return read_record(folder, report_name).get("identity")
    except (OSError, ValueError):
        return None


def version_folder(root: Path, name: str, identity: dict[str, Any], if_exists: str, report_name: str) -> Path:
    """The folder to write (when it does not exist) or to load (when it does) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for version in range(1, MAX_VERSIONS + 1):
        candidate = confined(root, version_name(name, version))
        if not candidate.exists() or identity_of(candidate, report_name) == identity:
            return candidate
        if if_exists == "error":
            raise DatasetExistsError(
                f"dataset folder {candidate} already exists and was made from other frames or settings; "
                "choose another name or set if_exists to new_version"
            )
        if if_exists == "reuse":
            return candidate
    raise DatasetExistsError(f"too many versions of dataset {name} in {root}")


def after_race(root: Path, target: Path, identity: dict[str, Any], if_exists: str, report_name: str) -> Path:
    """The folder a sequential run would have used, now that another writer published ``target``
    first (same sources: that dataset; else what a second run would have found)."""
    if if_exists != "new_version":
        return version_folder(root, target.name, identity, if_exists, report_name)
    if identity_of(target, report_name) == identity:
        return target
    raise DatasetExistsError(f"dataset folder {target} was written by another run at the same time; run "
                             "again to write the next version")


def other_versions(target: Path) -> list[Path]:
    """The other versions of ``target``'s dataset beside it (``name``, ``name_v2``, ...), sorted."""
    base = re.sub(r"_v\d+$", "", target.name)
    pattern = re.compile(rf"{re.escape(base)}(_v\d+)?")
    if not target.parent.is_dir():
        return []
    return sorted(folder for folder in target.parent.iterdir() if folder != target and pattern.fullmatch(folder.name))
