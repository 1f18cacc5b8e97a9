"""Counting CLIP tokens: the one counter the caption builder and Compose Prompt both use.

SD1.5/SDXL text encoders read 75 tokens per chunk (77 with start/end). Captions past that are cut
by sd-scripts unless ``--max_token_length`` allows more; prompts past it are encoded by ComfyUI as
several chunks, and the later words weigh less. Both users need the same number, so it is counted
here only.

Counting uses open_clip's ``SimpleTokenizer`` (the CLIP BPE; its vocabulary file ships inside the
open_clip wheel, so this works offline). The one fallback, when open_clip is missing or its
vocabulary cannot be read, is ``estimate_tokens``: one token per word and one per punctuation
mark. It undercounts made-up trigger words (BPE splits "zxqv" into several tokens), so every count
says whether it is exact, and callers warn when it is not.
"""

from __future__ import annotations

import math
import re
from typing import Any

CHUNK_TOKENS = 75
"""Tokens one CLIP chunk reads, without the start and end tokens."""


def estimate_tokens(text: str) -> int:
    """The fallback count without open_clip: one per word, one per punctuation mark."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def chunk_count(tokens: int) -> int:
    """How many 75-token chunks ``tokens`` tokens fill (at least one)."""
    return max(1, math.ceil(tokens / CHUNK_TOKENS))


class ClipTokenCounter:
    """Counts CLIP tokens; owns its tokenizer (loaded on first use, once; never at import)."""

    def __init__(self) -> None:
        self._tokenizer: Any = None
        self._unavailable: str | None = None

    def _load(self) -> Any:
        if self._tokenizer is None and self._unavailable is None:
            try:
                from open_clip.tokenizer import SimpleTokenizer  # BPE vocabulary load: ~1 s

                self._tokenizer = SimpleTokenizer()
            except Exception as exc:  # open_clip missing or its BPE file unreadable
                self._unavailable = f"open_clip unavailable ({type(exc).__name__}); whitespace estimate"
        return self._tokenizer

    def count(self, text: str) -> tuple[int, bool, str]:
        """(tokens, exact, note) for ``text`` without start/end tokens; ``note`` says why not exact."""
        tokenizer = self._load()
        if tokenizer is None:
            return estimate_tokens(text), False, self._unavailable or ""
        return len(tokenizer.encode(text)), True, ""
