"""Caption strategies, one per LoRA type: what a caption says, and what it leaves to the trigger.

The binding rule: whatever a caption names stays a separate, promptable thing; whatever it leaves
out is absorbed by the trigger word. So each LoRA type leaves out exactly the thing the LoRA should
learn and names everything that varies and should stay controllable.

Every caption starts with a *head*: the trigger word, the optional class word and the type's fixed
prefix word (``sks woman``, ``sks style``, ``sks lighting``). The head is the first comma-separated
token, so sd-scripts keeps it in place with ``keep_tokens = 1`` while ``shuffle_caption`` shuffles
the rest (or, with ``keep_tokens_separator = "|||"``, everything before ``|||`` is kept).

"Core" tags are tags found in at least ``threshold`` of a group's images (see ``core_tags``); they
describe the subject itself and are dropped so they bind to the trigger, except tags in the type's
*protected* categories, which are always captioned however often they occur.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import pick
from .vocabulary import CATEGORIES, IDENTITY_CATEGORIES


@dataclass(frozen=True)
class Strategy:
    """What one LoRA type captions (``protected``) and what it never captions (``dropped``)."""

    lora_type: str
    prefix: str
    dropped: frozenset[str]
    protected: frozenset[str]
    template: str

    @property
    def core_categories(self) -> frozenset[str]:
        """Categories where frequent tags count as core and bind to the trigger."""
        return frozenset(CATEGORIES) - self.protected - self.dropped


def _all_except(*categories: str) -> frozenset[str]:
    return frozenset(CATEGORIES) - set(categories)


_CHARACTER = Strategy(
    lora_type="character",
    prefix="",
    dropped=frozenset({*IDENTITY_CATEGORIES, "quality"}),
    protected=frozenset({"subject", "expression", "view", "pose", "framing", "clothing",
                         "background", "lighting", "style"}),
    template=(
        "character: '<trigger> <class>, <expression>, <view>, <framing>, <pose>, <clothing>, "
        "<background>, <lighting>'. Captions expression, view, pose, framing, clothing, "
        "background and lighting so they stay promptable; never hair, eye, face, skin or body "
        "features, which bind to the trigger. Other tags found in >= threshold of a cluster's "
        "images (a tattoo, cat ears) are the character's own and are dropped too."
    ),
)
def _learns(lora_type: str, prefix: str, category: str, template: str, *, drops_category: bool = True,
            other_binds: bool = True) -> Strategy:
    """A type that learns one tag category: its tags are never captioned (or, ``drops_category=False``,
    only when frequent enough to be core), every other category is captioned except quality and,
    when the subject's own look lives there (``other_binds``), frequent 'other' tags."""
    dropped = frozenset({category, "quality"} if drops_category else {"quality"})
    unprotected = (category, "quality", "other") if other_binds else (category, "quality")
    return Strategy(lora_type=lora_type, prefix=prefix, dropped=dropped, protected=_all_except(*unprotected),
                    template=template)


_STYLE = _learns("style", "style", "style", other_binds=False, template=(
    "style: '<trigger> style, <subject>, <content...>'. Captions the content of every image "
    "(who, what, where, light) and never the style words (watercolor, anime, sketch), so "
    "the look binds to the trigger and the content stays free."
))
_SCENE = _learns("scene", "scene", "background", template=(
    "scene/background: '<trigger> scene, <foreground subjects, their clothing, pose>, "
    "<lighting>'. Captions the subjects in front of the place, never the scene's own "
    "features (background tags, and other tags found in >= threshold of the images)."
))
_CONCEPT = _learns("concept", "", "pose", drops_category=False, template=(
    "pose/concept: '<trigger>, <subject>, <identity>, <clothing>, <background>, "
    "<lighting>'. Captions everything except the concept: pose or other tags found in >= "
    "threshold of the images are the concept itself and bind to the trigger."
))
_EXPRESSION = _learns("expression", "expression", "expression", template=(
    "expression: '<trigger> expression, <subject>, <view>, <framing>, <clothing>, "
    "<background>, <lighting>'. Captions everything except the expression (expression "
    "tags, and other tags found in >= threshold of the images)."
))
_LIGHTING = _learns("lighting", "lighting", "lighting", template=(
    "lighting: '<trigger> lighting, <subject>, <view>, <pose>, <clothing>, <background>'. "
    "Captions everything except the light (lighting tags, and other tags found in >= "
    "threshold of the images)."
))
_OBJECT = Strategy(
    lora_type="object",
    prefix="",
    dropped=frozenset({"quality"}),
    protected=frozenset({"subject", "expression", "view", "pose", "framing", "clothing",
                         "background", "lighting", "style", *IDENTITY_CATEGORIES}),
    template=(
        "object: '<trigger> <class>, <view>, <placement>, <background>, <lighting>'. Captions "
        "where and how the object is shown; the object's own features (other tags found in >= "
        "threshold of the images: colour, material, shape) bind to the trigger."
    ),
)

STRATEGIES: dict[str, Strategy] = {
    s.lora_type: s for s in (_CHARACTER, _STYLE, _SCENE, _CONCEPT, _EXPRESSION, _LIGHTING, _OBJECT)
}
ALIASES = {"background": "scene", "pose": "concept"}
LORA_TYPES = tuple(STRATEGIES)


def strategy_for(lora_type: str) -> Strategy:
    """The strategy for a LoRA type name ("background" = "scene", "pose" = "concept")."""
    key = ALIASES.get(lora_type.strip().lower(), lora_type.strip().lower())
    return pick(STRATEGIES, key, "LoRA type")


def describe_templates() -> str:
    """Every template, one paragraph each: shown in the caption node's DESCRIPTION."""
    return "\n".join(f"- {s.template}" for s in STRATEGIES.values())


def head_text(trigger: str, class_word: str, strategy: Strategy) -> str:
    """The kept first token: trigger, class word, the type's prefix word (empty parts skipped)."""
    parts = [p.strip() for p in (trigger, class_word, strategy.prefix) if p and p.strip()]
    if not parts:
        raise ValueError("a caption needs a trigger word")
    return " ".join(parts)


def decide(
    tag: str,
    category: str,
    strategy: Strategy,
    core: set[str],
    force_keep: set[str],
    force_drop: set[str],
) -> str | None:
    """Why ``tag`` is dropped ("forced", "category", "core"), or None when it is captioned.

    Order matters and is documented for users: force-drop beats everything; force-keep beats the
    category and core rules; a dropped category beats core; core applies outside protected
    categories only.
    """
    if tag in force_drop:
        return "forced"
    if tag in force_keep:
        return None
    if category in strategy.dropped:
        return "category"
    if tag in core and category in strategy.core_categories:
        return "core"
    return None
