"""CLIP token counts per caption, so users see when a caption will be cut.

SD1.5/SDXL text encoders read 75 tokens per chunk (77 with start/end); sd-scripts concatenates up
to three chunks only with ``--max_token_length 150/225`` and silently truncates otherwise. The
counting itself (open_clip's BPE, or the documented estimate without open_clip) is
``clip_tokens``, shared with Compose Prompt so a caption and a prompt of the same text get the
same count; this module adds the per-caption verdict and the warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..clip_tokens import CHUNK_TOKENS, ClipTokenCounter, chunk_count


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one caption (without start/end), how many 75-token chunks, and the verdict;
    ``note`` says why the count is an estimate (empty when exact)."""

    tokens: int
    chunks: int
    over_limit: bool
    exact: bool = True
    note: str = ""


def count_tokens(captions: Sequence[str], limit: int = CHUNK_TOKENS,
                 counter: ClipTokenCounter | None = None) -> list[TokenCount]:
    """Token count of every caption; ``over_limit`` when it exceeds ``limit`` tokens."""
    counter = counter or ClipTokenCounter()
    counts = []
    for caption in captions:
        tokens, exact, note = counter.count(caption)
        counts.append(TokenCount(tokens, chunk_count(tokens), tokens > limit, exact, note))
    return counts


def token_warnings(
    labels: Sequence[str], counts: Sequence[TokenCount], limit: int = CHUNK_TOKENS
) -> list[str]:
    """One warning line per caption past ``limit`` tokens, naming it and what gets cut; first, one
    line when the counts are estimates."""
    estimated = next((count.note for count in counts if not count.exact), None)
    head = [f"CLIP token counts are estimates: {estimated}"] if estimated is not None else []
    return head + [
        f"{label}: caption has {count.tokens} CLIP tokens ({count.chunks} chunks of "
        f"{CHUNK_TOKENS}); past {limit} tokens the rest is cut unless max_token_length allows it"
        for label, count in zip(labels, counts, strict=True)
        if count.over_limit
    ]
