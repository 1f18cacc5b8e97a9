"""The offline tokenizer cache sd-scripts reads (``--tokenizer_cache_dir``), built or checked.

sd-scripts loads each tokenizer with ``from_pretrained(<cache>/<model id, "/" → "_">)`` when that
folder exists, and otherwise downloads it, which a run with ``HF_HUB_OFFLINE=1`` cannot. CLIP-L
(``openai/clip-vit-large-patch14``, used by every architecture here) is the byte-level BPE that
OpenAI published with CLIP; open_clip ships exactly that file (``bpe_simple_vocab_16e6.txt.gz``)
in its wheel, so the cache can be built offline: ``vocab.json`` is the 256 byte symbols, the same
with ``</w>``, the 48,894 merges joined, then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408
entries, CLIP's own construction), and ``merges.txt`` the merges. The other tokenizers (CLIP-G,
SD2, T5-XXL) are not in any package: ``missing_tokenizer_command`` gives the command that saves
them from a machine with network.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

from ..fileio import atomic_write_text
from .preflight import TOKENIZER_FILES, tokenizer_problems

CLIP_L_ID = "openai/clip-vit-large-patch14"
CLIP_MERGES = 49152 - 256 - 2
CLIP_CONFIG = {
    "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, "errors": "replace",
    "add_prefix_space": False, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
}
LOADERS = {"google/t5-v1_1-xxl": "T5TokenizerFast"}


def open_clip_bpe() -> Path:
    """The BPE file inside the installed open_clip package (found without importing it)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("open_clip is not installed here: pip install open_clip_torch, or pass --bpe FILE "
                                "(bpe_simple_vocab_16e6.txt.gz from open_clip or OpenAI's CLIP repository)")
    bpe = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not bpe.is_file():
        raise FileNotFoundError(f"{bpe} is missing from the open_clip install")
    return bpe


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in CLIP's order."""
    kept = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    codes, extra = kept[:], 0
    for byte in range(256):
        if byte not in kept:
            kept.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def clip_vocabulary(bpe: Path) -> tuple[dict[str, int], list[str]]:
    """(vocab, merges) of CLIP's tokenizer from the gzipped BPE file."""
    with gzip.open(bpe) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1:CLIP_MERGES + 1]
    if len(merges) != CLIP_MERGES or any(len(m.split()) != 2 for m in merges):
        raise ValueError(f"{bpe} is not CLIP's BPE file (expected {CLIP_MERGES} merge pairs)")
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def build_clip_l(cache: Path, bpe: Path | None = None, replace: bool = False) -> Path:
    """Write ``<cache>/openai_clip-vit-large-patch14/`` (vocab, merges, configs); return the folder.

    An existing complete folder is left alone unless ``replace``.
    """
    folder = cache / CLIP_L_ID.replace("/", "_")
    if not replace and not tokenizer_problems(cache, CLIP_L_ID):
        return folder
    vocab, merges = clip_vocabulary(bpe or open_clip_bpe())
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    atomic_write_text(folder / "tokenizer_config.json", json.dumps(CLIP_CONFIG, indent=2))
    special = {k: CLIP_CONFIG[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    atomic_write_text(folder / "special_tokens_map.json", json.dumps(special, indent=2))
    return folder


def missing_tokenizer_command(cache: Path, model_id: str, python: str = "python") -> str:
    """The command that saves ``model_id``'s tokenizer into the cache (run where there is network)."""
    loader = LOADERS.get(model_id, "CLIPTokenizer")
    target = cache / model_id.replace("/", "_")
    subfolder = ", subfolder='tokenizer'" if model_id == "stabilityai/stable-diffusion-2" else ""
    return (f"{python} -c \"from transformers import {loader}; {loader}.from_pretrained('{model_id}'{subfolder})"
            f".save_pretrained('{target}')\"")


def cache_status(cache: Path, model_ids: Iterable[str] = TOKENIZER_FILES) -> dict[str, list[str]]:
    """Problems per tokenizer (an empty list = ready)."""
    return {model_id: tokenizer_problems(cache, model_id) for model_id in model_ids}
