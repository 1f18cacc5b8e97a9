"""Compose Prompt: trigger words + scene text, with warnings a user would otherwise learn the hard way.

Two things silently ruin stacked-LoRA prompts. Contradictions ("standing, sitting", "smiling,
crying", "from front, from behind"): each LoRA pulls toward one and the image mixes both. And
length: CLIP reads 75 tokens per chunk; ComfyUI encodes longer prompts as several chunks and
concatenates them, so words past the first chunk (often the trigger words appended last) lose
weight, and a phrase cut at the boundary is split between two encodings. Counting is
``clip_tokens.ClipTokenCounter`` (open_clip's BPE; without open_clip its one documented estimate,
and the prompt then says so), the same counter the caption builder uses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..clip_tokens import CHUNK_TOKENS, ClipTokenCounter

CONTRADICTION_GROUPS: dict[str, tuple[str, ...]] = {
    "actions": ("standing", "sitting", "lying", "lying down", "kneeling", "running", "walking",
                "jumping", "dancing", "squatting", "crouching", "sleeping", "fighting", "swimming"),
    "expressions": ("smiling", "smile", "laughing", "frowning", "crying", "angry", "sad",
                    "surprised", "shocked", "expressionless", "neutral expression", "scared",
                    "grin", "pout", "serious"),
    "views": ("from front", "from behind", "from side", "from above", "from below", "profile"),
    "framings": ("close-up", "closeup", "portrait", "upper body", "cowboy shot", "full body",
                 "wide shot"),
}
"""A view (camera angle) and a framing combine fine ("close-up, from side"); two of one group do not."""
SYNONYMS = {"smile": "smiling", "closeup": "close-up", "lying down": "lying", "profile": "from side"}
"""Words that name the same thing: two of them are no contradiction."""


@dataclass(frozen=True)
class TokenReport:
    """Token counts per 75-token chunk and the phrases cut by a chunk boundary."""

    total: int
    chunks: tuple[int, ...]
    split_phrases: tuple[str, ...]
    exact: bool
    note: str = ""

    def summary(self) -> str:
        how = "CLIP BPE" if self.exact else "estimate"
        text = f"{self.total} tokens ({how}) in {len(self.chunks)} chunk(s): " + " + ".join(
            str(c) for c in self.chunks)
        return text + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class ComposedPrompt:
    text: str
    warnings: tuple[str, ...]
    tokens: TokenReport
    found: dict[str, tuple[str, ...]] = field(default_factory=dict)


def token_report(text: str, counter: ClipTokenCounter) -> TokenReport:
    """Count tokens per comma phrase and cut the sequence into 75-token chunks."""
    phrases = [p.strip() for p in text.split(",") if p.strip()]
    chunks: list[int] = [0]
    split: list[str] = []
    exact, note = True, ""
    for index, phrase in enumerate(phrases):
        n, exact, note = counter.count(phrase + ("," if index < len(phrases) - 1 else ""))
        room = CHUNK_TOKENS - chunks[-1]
        if n > room:
            if chunks[-1] > 0 and room > 0:
                split.append(phrase)
            chunks[-1] += min(n, room)
            n -= min(n, room)
            while n > 0:
                chunks.append(min(n, CHUNK_TOKENS))
                n -= CHUNK_TOKENS
        else:
            chunks[-1] += n
    return TokenReport(sum(chunks), tuple(chunks), tuple(split), exact, note)


def _find_terms(text: str, terms: Sequence[str]) -> tuple[str, ...]:
    lowered = text.lower()
    found = []
    for term in sorted(terms, key=len, reverse=True):
        pattern = r"(?<![\w-])" + re.escape(term) + r"(?![\w-])"
        if re.search(pattern, lowered):
            canonical = SYNONYMS.get(term, term)
            if canonical not in found:
                found.append(canonical)
            lowered = re.sub(pattern, " ", lowered)
    return tuple(found)


def find_contradictions(text: str) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Warnings for two terms of one group (two actions, two expressions, two views)."""
    warnings, found = [], {}
    for group, terms in CONTRADICTION_GROUPS.items():
        hits = _find_terms(text, terms)
        found[group] = hits
        if len(hits) > 1:
            warnings.append(f"two {group} in one prompt: {', '.join(hits)}; the image will mix them — keep one")
    return warnings, found


def join_prompt(triggers: Sequence[str], scene: str) -> str:
    """Triggers first (once each, case-insensitive), then the scene; no empty commas."""
    parts: list[str] = []
    seen: set[str] = set()
    for piece in list(triggers) + [p for p in scene.split(",")]:
        cleaned = piece.strip()
        if cleaned and cleaned.lower() not in seen:
            seen.add(cleaned.lower())
            parts.append(cleaned)
    return ", ".join(parts)


def compose_prompt(triggers: Sequence[str], scene: str, counter: ClipTokenCounter) -> ComposedPrompt:
    """Join triggers and scene; warn about contradictions and chunks over 75 CLIP tokens."""
    text = join_prompt(triggers, scene)
    warnings, found = find_contradictions(text)
    report = token_report(text, counter)
    if len(report.chunks) > 1:
        warnings.append(
            f"prompt is {report.total} CLIP tokens: more than {CHUNK_TOKENS}, encoded as "
            f"{len(report.chunks)} chunks ({' + '.join(map(str, report.chunks))}); words past the "
            f"first chunk weigh less")
    for phrase in report.split_phrases:
        warnings.append(f"the phrase '{phrase}' is cut by a {CHUNK_TOKENS}-token chunk boundary")
    if not report.exact:
        warnings.append(f"token count is an estimate: {report.note}")
    return ComposedPrompt(text, tuple(warnings), report, found)
