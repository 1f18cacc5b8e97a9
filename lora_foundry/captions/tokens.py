"""CLIP token counts per caption, so users see when a caption will be cut.

SD1.5/SDXL text encoders read 75 tokens per chunk (77 with start/end); sd-scripts concatenates up
to three chunks only with ``--max_token_length 150/225`` and silently truncates otherwise. Counting
with open_clip's ``SimpleTokenizer`` (the same BPE vocabulary as OpenAI CLIP; the vocabulary file
ships inside the open_clip wheel, so this works offline) tells the user before training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CHUNK_TOKENS = 75


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one caption (without start/end), how many 75-token chunks, and the verdict."""

    tokens: int
    chunks: int
    over_limit: bool


def count_tokens(captions: Sequence[str], limit: int = CHUNK_TOKENS) -> list[TokenCount]:
    """Token count of every caption; ``over_limit`` when it exceeds ``limit`` tokens."""
    from open_clip.tokenizer import SimpleTokenizer  # heavy-ish: BPE vocabulary load

    tokenizer = SimpleTokenizer()
    counts = []
    for caption in captions:
        tokens = len(tokenizer.encode(caption))
        counts.append(TokenCount(tokens, max(1, math.ceil(tokens / CHUNK_TOKENS)), tokens > limit))
    return counts


def token_warnings(
    labels: Sequence[str], counts: Sequence[TokenCount], limit: int = CHUNK_TOKENS
) -> list[str]:
    """One warning line per caption past ``limit`` tokens, naming it and what gets cut."""
    return [
        f"{label}: caption has {count.tokens} CLIP tokens ({count.chunks} chunks of "
        f"{CHUNK_TOKENS}); past {limit} tokens the rest is cut unless max_token_length allows it"
        for label, count in zip(labels, counts, strict=True)
        if count.over_limit
    ]
