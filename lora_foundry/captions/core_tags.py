"""Core (identity) tags: what a group's images share, which should bind to the trigger.

A tag that appears in most images of one character is part of that character (her hair, her
tattoo); captioning it would teach the model that the trigger does NOT include it. The share is
measured per group (a face/identity cluster from the clustering stage, or the whole set), so a
dataset with two characters gets each one's own core tags.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

DEFAULT_THRESHOLD = 0.4


def tag_shares(tag_lists: Sequence[Sequence[str]]) -> dict[str, float]:
    """Share of images (0..1) carrying each tag; a tag repeated in one image counts once."""
    if not tag_lists:
        return {}
    counts = Counter(tag for tags in tag_lists for tag in set(tags))
    total = len(tag_lists)
    return {tag: count / total for tag, count in counts.most_common()}


def core_tags(tag_lists: Sequence[Sequence[str]], threshold: float = DEFAULT_THRESHOLD) -> set[str]:
    """Tags present in at least ``threshold`` of the images (0 < threshold <= 1)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"core tag threshold must be in (0, 1], got {threshold}")
    return {tag for tag, share in tag_shares(tag_lists).items() if share >= threshold - 1e-9}


def core_tags_by_group(
    tags_by_item: Mapping[Hashable, Sequence[str]],
    group_by_item: Mapping[Hashable, Hashable],
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[Hashable, set[str]]:
    """Core tags of each group; items without a group form one group (key None)."""
    groups: dict[Hashable, list[Sequence[str]]] = {}
    for item, tags in tags_by_item.items():
        groups.setdefault(group_by_item.get(item), []).append(tags)
    return {group: core_tags(lists, threshold) for group, lists in groups.items()}


def tag_frequency(tag_lists: Sequence[Sequence[str]]) -> list[tuple[str, int]]:
    """(tag, number of captions carrying it), most frequent first, ties alphabetical."""
    counts = Counter(tag for tags in tag_lists for tag in set(tags))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
