"""Captions for a whole set: normalise tags, find core tags per group, apply the type's strategy.

This is the engine behind the ``LF Build Captions`` node; it works on plain data (ids, tag lists,
cluster ids) so it runs and tests without a workspace.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from ..progress import Progress, ensure_progress
from .core_tags import DEFAULT_THRESHOLD, core_tags_by_group
from .render import keep_tokens_for, render_caption
from .strategies import decide, head_text, strategy_for
from .tokens import CHUNK_TOKENS, count_tokens, token_warnings
from .vocabulary import category_of, normalise_tags


@dataclass(frozen=True)
class CaptionSettings:
    """Everything that decides a caption, as the user set it on the node."""

    lora_type: str = "character"
    trigger: str = "sks"
    class_word: str = ""
    base_model: str = "SDXL"
    threshold: float = DEFAULT_THRESHOLD
    force_keep: tuple[str, ...] = ()
    force_drop: tuple[str, ...] = ()
    pony_score: bool = False
    separator: bool = False
    token_limit: int = CHUNK_TOKENS
    count_tokens: bool = True


@dataclass
class Caption:
    """One item's caption, the tags it keeps, and why each other tag was dropped."""

    item: Hashable
    text: str
    kept: list[str]
    dropped: dict[str, str]
    tokens: int | None = None


@dataclass
class CaptionSet:
    """Captions for a set plus what a user should know about them."""

    captions: list[Caption]
    core: dict[Hashable, list[str]]
    keep_tokens: int
    warnings: list[str] = field(default_factory=list)


def split_terms(text: str) -> tuple[str, ...]:
    """A user's comma-separated force-keep/force-drop list, normalised like tags."""
    return tuple(normalise_tags(text.split(","))) if text.strip() else ()


def build_captions(
    tags_by_item: Mapping[Hashable, Sequence[str]],
    settings: CaptionSettings,
    group_by_item: Mapping[Hashable, Hashable] | None = None,
    progress: Progress | None = None,
) -> CaptionSet:
    """Caption every item from its tags, in the order of ``tags_by_item``.

    Tags are normalised first (one term per concept); core tags are found per group
    (``group_by_item``: cluster id per item; missing items share one group).
    """
    progress = ensure_progress(progress)
    strategy = strategy_for(settings.lora_type)
    head = head_text(settings.trigger, settings.class_word, strategy)
    normalised = {item: normalise_tags(list(tags)) for item, tags in tags_by_item.items()}
    core = core_tags_by_group(normalised, group_by_item or {}, settings.threshold)
    keep, drop = set(normalise_tags(list(settings.force_keep))), set(normalise_tags(list(settings.force_drop)))
    head_words = {w for w in (settings.trigger.strip().lower(), settings.class_word.strip().lower()) if w}
    captions: list[Caption] = []
    total = len(normalised)
    for index, (item, tags) in enumerate(normalised.items()):
        group_core = core[(group_by_item or {}).get(item)]
        kept, dropped = [], {}
        for tag in tags:
            reason = "head" if tag in head_words else decide(
                tag, category_of(tag), strategy, group_core, keep, drop)
            if reason is None:
                kept.append(tag)
            else:
                dropped[tag] = reason
        text = render_caption(head, kept, settings.base_model, settings.pony_score, settings.separator)
        captions.append(Caption(item, text, kept, dropped))
        progress.update(index + 1, total)
    result = CaptionSet(
        captions,
        {group: sorted(tags) for group, tags in core.items()},
        keep_tokens_for(settings.pony_score, settings.base_model),
    )
    if settings.count_tokens and captions:
        _attach_token_counts(result, settings.token_limit)
    return result


def _attach_token_counts(result: CaptionSet, limit: int) -> None:
    counts = count_tokens([c.text for c in result.captions], limit)
    for caption, count in zip(result.captions, counts, strict=True):
        caption.tokens = count.tokens
    result.warnings += token_warnings([str(c.item) for c in result.captions], counts, limit)
