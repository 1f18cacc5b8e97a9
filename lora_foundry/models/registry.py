"""Where model weights live and how a name becomes an existing local file, before any backend runs.

Several backends download by themselves when a file is missing (facexlib's and LaMa's loaders with
no timeout, rtmlib treats a missing path as a URL, Hugging Face retries for 25-50 s). So every
model is resolved here to a file that exists, or fails at once with "put FILE in FOLDER (from
WHERE)". Nothing here touches the network or imports a backend.

A model is named, never pathed (issue 23): ``resolve`` is the one resolver every loader uses, and
it looks a relative name up in these folders only, in order (``spec.folder``, e.g. ``sam2``):
1. the folders ComfyUI knows for ``models/<folder>`` (extra_model_paths.yaml included), passed in
   by the node layer as ``extra_dirs``;
2. ``$LORA_FOUNDRY_MODELS/<folder>`` (outside ComfyUI, or to add a shared store);
3. ``<cwd>/models/<folder>``.
Absolute paths and ``~`` are the operator's: environment variables (``spec.env_var``) only. A
symlink the operator placed in one of the folders is followed (a shared store); a workflow, which
can only name, cannot create one, and ``..`` or an absolute name never reaches the disk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..choices import quoted
from ..paths import UnsafeNameError, relative_parts

MODELS_ENV = "LORA_FOUNDRY_MODELS"


class ModelMissingError(FileNotFoundError):
    """A model file is not installed; the message says which file and which folder."""


class ModelNameError(ModelMissingError):
    """A workflow's model name that is not one of the installed files (outside, missing or not a name)."""


class ModelFormatError(ValueError):
    """A model file exists but is not in a format we load safely."""


@dataclass(frozen=True)
class ModelSpec:
    """One backend's weights: the folder they go in, the names we accept, where to get them.

    ``files`` maps an accepted file name to its sha256 (or "" when unknown); ``formats`` are the
    suffixes we load (".safetensors", ".pt" via ``torch.load(weights_only=True)``, ".onnx", ...).
    """

    backend: str
    folder: str
    files: dict[str, str]
    formats: tuple[str, ...]
    licence: str
    source: str
    urls: dict[str, str] = field(default_factory=dict)
    env_var: str | None = None

    def default_file(self) -> str:
        return next(iter(self.files))


def search_dirs(spec: ModelSpec, extra_dirs: Sequence[Path] = ()) -> list[Path]:
    """The folders searched for ``spec``, in order, without duplicates: two spellings of one folder
    (a link, ``..``) count once, or a missing-file message would list it twice."""
    dirs: list[Path] = [Path(d) for d in extra_dirs]
    env_root = os.environ.get(MODELS_ENV)
    if env_root:
        dirs.append(Path(env_root) / spec.folder)
    dirs.append(Path.cwd() / "models" / spec.folder)
    unique: dict[str, Path] = {}
    for d in dirs:
        unique.setdefault(os.path.realpath(d), d)
    return list(unique.values())


def installed_files(spec: ModelSpec, extra_dirs: Sequence[Path] = ()) -> list[str]:
    """Names of the files with an accepted suffix found in any of ``spec``'s folders."""
    names: list[str] = []
    for folder in search_dirs(spec, extra_dirs):
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_file() and entry.suffix in spec.formats and entry.name not in names:
                    names.append(entry.name)
    return names


def resolve(
    spec: ModelSpec,
    name: str | None = None,
    extra_dirs: Sequence[Path] = (),
) -> Path:
    """Return the existing local file for ``spec`` (``name`` or its default), or raise at once.

    ``name`` comes from a workflow, so it is a *name*: resolved only inside ``search_dirs``, never
    ``~``-expanded, never absolute, no ``..``, no control characters. An outside or a missing name
    gets the same answer, so a workflow cannot probe the disk (``not_installed_message``). Only the
    operator's ``spec.env_var`` (e.g. ``LAMA_MODEL``), read when no name is given, may be a path.
    """
    if spec.env_var and os.environ.get(spec.env_var) and not name:
        env_path = Path(os.environ[spec.env_var]).expanduser()
        if env_path.is_file():
            return _checked_format(spec, env_path)
        raise ModelMissingError(
            f"{spec.env_var}={env_path} is set but that file does not exist; "
            f"fix the variable or put {spec.default_file()} in {_folder_hint(spec, extra_dirs)}"
        )
    wanted = name or spec.default_file()
    parts = name_parts(wanted)
    if parts is None:
        raise ModelNameError(not_installed_message(spec, wanted))
    for folder in search_dirs(spec, extra_dirs):
        path = Path(os.path.abspath(folder)).joinpath(*parts)
        if path.is_file() and _stays_inside(path, folder):
            return _checked_format(spec, path)
    if wanted in spec.files:
        raise ModelMissingError(missing_message(spec, wanted, extra_dirs))
    raise ModelNameError(not_installed_message(spec, wanted))


def _stays_inside(path: Path, folder: Path) -> bool:
    """``path`` still lies in ``folder`` once links are followed: a link placed in a model folder
    that points elsewhere is not a model file (a folder that is itself a link, e.g. models/ on
    another disk, is followed on both sides and so still counts)."""
    real_folder = os.path.realpath(folder)
    return os.path.commonpath([os.path.realpath(path), real_folder]) == real_folder


def name_parts(name: object) -> tuple[str, ...] | None:
    """The folder parts of a model name (``sub/model.onnx`` -> ("sub", "model.onnx")), or None when
    it is not a plain relative name (``paths.name_problem``, the one rule). Backslashes count as
    separators (ComfyUI lists Windows sub-folders with them); a trailing "/" names a folder
    (open_clip local-dir installs)."""
    try:
        return relative_parts(name, folder_ok=True)  # type: ignore[arg-type]  # not text: refused there
    except UnsafeNameError:
        return None


def not_installed_message(spec: ModelSpec, name: object) -> str:
    """The one answer for a name that is not an installed file, whatever is (or is not) there."""
    shown = name if isinstance(name, str) else type(name).__name__
    return f"model_name {quoted(shown)} is not one of the files in models/{spec.folder}"


def missing_message(spec: ModelSpec, wanted: str, extra_dirs: Sequence[Path] = ()) -> str:
    """The one-line fix for a missing file: put FILE in FOLDER (from WHERE)."""
    url = spec.urls.get(wanted, spec.source)
    searched = ", ".join(str(d) for d in search_dirs(spec, extra_dirs))
    return (
        f"{spec.backend} weights not found: put {wanted} in {_folder_hint(spec, extra_dirs)} "
        f"(from {url}; licence: {spec.licence}). Searched: {searched}"
    )


def _folder_hint(spec: ModelSpec, extra_dirs: Sequence[Path]) -> str:
    dirs = search_dirs(spec, extra_dirs)
    return str(dirs[0]) if dirs else f"models/{spec.folder}"


def _checked_format(spec: ModelSpec, path: Path) -> Path:
    if path.suffix not in spec.formats:
        allowed = ", ".join(spec.formats)
        raise ModelFormatError(f"{path} is not a {spec.backend} file we load ({allowed})")
    return path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks (weights can be several GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_identity(path: Path, *, arch: str = "", variant: str = "") -> str:
    """The one identity of a model in stage keys: the file's name, size and mtime (hashing GBs per
    run is too slow), after ``arch`` (the network the weights go in, when the file does not say:
    open_clip's architecture) and before ``variant`` (what else decides the network or its output:
    SAM 2's config, a classifier's labels file). Loader caches and IS_CHANGED use the same string.
    """
    stat = Path(path).stat()
    identity = f"{Path(path).name}:{stat.st_size}:{int(stat.st_mtime)}"
    return f"{arch + ':' if arch else ''}{identity}{'|' + variant if variant else ''}"


def refuse_other_file(path: Path, found: str, expected: str) -> None:
    """On a Ray worker: refuse the file at the driver's path when its identity (``model_identity``)
    is not the driver's: a worker must compute with the very weights the stage run records."""
    if found != expected:
        import socket

        raise ModelMissingError(f"on {socket.gethostname()}: {path} is another file than the driver's (other weights: "
                                f"{found}, not {expected}); every node needs the same files at the same path")


def specs_by_folder(specs: Iterable[ModelSpec]) -> dict[str, ModelSpec]:
    return {spec.folder: spec for spec in specs}
