"""The explicit, optional download of model weights, for users who have a network.

Nothing in the pack calls this by itself: loaders only ever open files that already exist. When a
user asks for a download it must not hang on a dead network, must not leave a broken file where a
loader would find it, and must not restart a 900 MB transfer from zero: every socket operation has
a timeout, bytes go to ``<name>.part`` (resumed with an HTTP Range request), the sha256 is checked,
and only then is the file renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..progress import Progress, ensure_progress
from .registry import ModelSpec

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """The transfer failed or the file is not the one expected; nothing was put in place."""


def download(
    url: str,
    destination: Path,
    sha256: str | None,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
    allow_unverified: bool = False,
) -> Path:
    """Fetch ``url`` to ``destination`` (resuming ``destination.part``), verify, rename; return it.

    ``sha256`` is required unless ``allow_unverified`` (for files nobody published a digest for;
    the CLI prints the digest it got). A wrong checksum deletes the partial file and raises.
    An existing ``destination`` is never overwritten.
    """
    destination = Path(destination)
    if destination.exists():
        raise DownloadError(f"{destination} already exists; remove it first to download again")
    if not url.startswith(("https://", "http://")):
        raise DownloadError(f"only http(s) URLs are downloaded, got {url!r}")
    if not sha256 and not allow_unverified:
        raise DownloadError(f"no sha256 known for {destination.name}; pass one or allow_unverified")
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    _transfer(url, part, ensure_progress(progress), timeout_s)
    digest = _sha256(part)
    if sha256 and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{destination.name}: sha256 {digest} does not match the expected {sha256}")
    os.replace(part, destination)
    return destination


def download_model(
    spec: ModelSpec,
    name: str,
    folder: Path,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
    allow_unverified: bool = False,
) -> Path:
    """Download ``name`` of ``spec`` from its published URL into ``folder`` (e.g. models/sam2)."""
    if name not in spec.urls:
        raise DownloadError(f"{spec.backend} has no download URL for {name!r}; known: {', '.join(spec.urls)}")
    return download(
        spec.urls[name], Path(folder) / name, spec.files.get(name) or None,
        progress=progress, timeout_s=timeout_s, allow_unverified=allow_unverified,
    )


def _transfer(url: str, part: Path, progress: Progress, timeout_s: float) -> None:
    """Append the missing bytes of ``url`` to ``part``, asking the server to resume if it exists."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "lora-foundry"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        # timeout= bounds connect and every later read on this socket, so a black hole fails fast.
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            if have and response.status != 206:
                have = 0  # the server ignored Range: start over rather than corrupt the file
            total = _total_size(response, have)
            with open(part, "ab" if have else "wb") as sink:
                done = have
                while block := response.read(CHUNK_BYTES):
                    sink.write(block)
                    done += len(block)
                    progress.update(done, max(total, done))
            if total and done < total:
                raise DownloadError(f"{url}: connection closed after {done} of {total} bytes; "
                                    f"run the download again to resume from {part.name}")
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            return  # nothing left to fetch: the .part file is already complete
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise DownloadError(f"{url}: {error}; run the download again to resume from {part.name}") from error


def _total_size(response: object, have: int) -> int:
    length = getattr(response, "headers", {}).get("Content-Length")
    return have + int(length) if length and length.isdigit() else 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """``python -m lora_foundry.models.download sam2 sam2.1_hiera_tiny.pt models/sam2``."""
    import argparse

    from ..progress import PrintProgress
    from .lama_model import LAMA_SPEC
    from .sam2_model import SAM2_SPEC

    specs = {spec.folder: spec for spec in (SAM2_SPEC, LAMA_SPEC)}
    parser = argparse.ArgumentParser(description="Download model weights (explicit, resumable).")
    parser.add_argument("backend", choices=sorted(specs))
    parser.add_argument("name", help="file name, e.g. sam2.1_hiera_tiny.pt")
    parser.add_argument("folder", type=Path, help="the models/<backend> folder to put it in")
    parser.add_argument("--sha256", help="expected sha256 (overrides the registry's)")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="accept a file whose sha256 nobody published (the digest is printed)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per socket operation")
    args = parser.parse_args(argv)
    spec = specs[args.backend]
    if args.name not in spec.urls:
        parser.error(f"no URL for {args.name}; known: {', '.join(spec.urls)}")
    expected = args.sha256 or spec.files.get(args.name) or None
    path = download(spec.urls[args.name], args.folder / args.name, expected,
                    progress=PrintProgress(args.name), timeout_s=args.timeout,
                    allow_unverified=args.allow_unverified)
    print(f"{path}  sha256 {_sha256(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
