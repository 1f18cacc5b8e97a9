"""Caption text per base model: booru-style tags or a natural-language sentence.

SD1.5, SDXL and Pony were trained on (or fine-tuned towards) comma-separated tags; Flux and SD3
read captions through T5 and learn better from sentences. The same kept tags render either way,
always with the head (trigger, class word, type prefix) first so it binds and survives shuffling.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..choices import pick
from .vocabulary import group_by_category

BASE_MODEL_STYLES: dict[str, str] = {
    "SD1.5": "tags", "SDXL": "tags", "Pony": "tags", "Flux": "natural", "SD3": "natural",
}
BASE_MODELS = tuple(BASE_MODEL_STYLES)
PONY_SCORE_PREFIX = "score_9, score_8_up, score_7_up"
KEEP_TOKENS_SEPARATOR = "|||"
# Order in which categories appear in a caption: who, how they look at us, what they do, where.
CAPTION_ORDER = (
    "subject", "expression", "view", "framing", "pose", "clothing", "hair", "eyes", "face",
    "skin", "body", "other", "background", "lighting", "style", "quality",
)

_COUNT_SUBJECTS = {"1girl", "1boy", "2girls", "2boys", "solo", "multiple girls", "multiple boys"}
_PREPOSITIONS = {"on", "in", "at", "under", "held", "near", "beside", "inside"}
_PLACES_WITH_ARTICLE = {
    "forest", "city", "street", "beach", "room", "bedroom", "kitchen", "cafe", "park", "field",
    "office", "library", "garden", "studio", "classroom", "desert",
}


def caption_style(base_model: str) -> str:
    """"tags" or "natural" for a base model name."""
    return pick(BASE_MODEL_STYLES, base_model, "base model")


def order_tags(tags: Sequence[str]) -> list[str]:
    """Tags in caption order (by category, original order within a category)."""
    groups = group_by_category(list(tags))
    return [tag for category in CAPTION_ORDER for tag in groups.get(category, [])]


def render_tags(
    head: str, tags: Sequence[str], pony_score: bool = False, separator: bool = False
) -> str:
    """``head, tag, tag`` (or ``head ||| tag, tag`` with the keep-tokens separator)."""
    kept = [head] + ([PONY_SCORE_PREFIX] if pony_score else [])
    body = ", ".join(order_tags(tags))
    if separator:
        return f"{', '.join(kept)} {KEEP_TOKENS_SEPARATOR} {body}".rstrip()
    return ", ".join(kept + ([body] if body else []))


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _background_phrase(tag: str) -> str:
    if tag in ("outdoors", "indoors"):
        return tag
    if tag.endswith("background"):
        return f"against a {tag}"
    if tag in _PLACES_WITH_ARTICLE:
        return f"in a {tag}"
    return f"in {tag}" if tag not in ("snow", "rain") else f"in the {tag}"


def _lighting_phrase(tags: Sequence[str]) -> list[str]:
    timed = [t for t in tags if t in ("night", "golden hour", "blue hour")]
    lit = [t for t in tags if t not in timed]
    phrases = [f"at {t}" for t in timed]
    if lit:
        phrases.append(f"with {_join(lit)}")
    return phrases


def _framing_phrase(tag: str) -> str:
    return tag if tag.endswith("shot") or tag == "portrait" else f"{tag} shot"


def natural_clauses(tags: Sequence[str]) -> list[str]:
    """Short phrases, one per category, in caption order ("wearing a red dress", "in a forest")."""
    groups = group_by_category(list(tags))
    clauses: list[str] = []
    others = [t for t in groups.get("subject", []) if t not in _COUNT_SUBJECTS]
    if others:
        clauses.append(f"with {_join(others)}")
    if groups.get("expression"):
        clauses.append(_join(groups["expression"]))
    for view in groups.get("view", []):
        clauses.append(view if view.startswith("looking") else f"seen in {view}")
    clauses += [_framing_phrase(t) for t in groups.get("framing", [])]
    if groups.get("pose"):
        clauses.append(_join(groups["pose"]))
    if groups.get("clothing"):
        clauses.append(f"wearing {_join(groups['clothing'])}")
    features = [t for c in ("hair", "eyes", "face", "skin", "body", "other") for t in groups.get(c, [])]
    placed = [t for t in features if t.split(" ")[0] in _PREPOSITIONS]
    features = [t for t in features if t not in placed]
    if features:
        clauses.append(f"with {_join(features)}")
    clauses += placed
    clauses += [_background_phrase(t) for t in groups.get("background", [])]
    clauses += _lighting_phrase(groups.get("lighting", []))
    if groups.get("style"):
        clauses.append(f"in {_join(groups['style'])} style")
    return clauses


def render_natural(head: str, tags: Sequence[str]) -> str:
    """One sentence: ``head, clause, clause.`` (no quality words: T5 models need none)."""
    clauses = natural_clauses([t for t in tags if t])
    return f"{head}, {', '.join(clauses)}." if clauses else f"{head}."


def render_caption(
    head: str,
    tags: Sequence[str],
    base_model: str,
    pony_score: bool = False,
    separator: bool = False,
) -> str:
    """The caption for ``base_model``: tags (SD1.5/SDXL/Pony) or a sentence (Flux/SD3)."""
    if caption_style(base_model) == "natural":
        return render_natural(head, tags)
    return render_tags(head, tags, pony_score=pony_score and base_model == "Pony", separator=separator)


def keep_tokens_for(pony_score: bool, base_model: str) -> int:
    """sd-scripts ``keep_tokens``: the head (plus Pony's three score tags when written)."""
    return 1 + (3 if pony_score and base_model == "Pony" else 0)
