"""One term per concept, and the category each term belongs to.

A LoRA learns from co-occurrence: if the same thing is called "3/4 view" in one caption and
"three quarter view" in another, neither term gets the full signal and users cannot prompt it
reliably. So every tag that enters a caption is first normalised to one canonical term (lower case,
underscores to spaces, tagger escapes removed, synonyms mapped), then sorted into a category; the
caption strategies decide per LoRA type which categories are kept and which bind to the trigger.

Imported tags come as WD14-style ``.txt`` files (``brown_hair, blue_eyes``) or booru tag lists
(``brown_hair blue_eyes 1girl``); ``parse_tag_text`` reads both.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..read_roots import ReadRoots
from .text_decode import read_text

log = logging.getLogger(__name__)

IDENTITY_CATEGORIES = ("hair", "eyes", "face", "skin", "body")
CATEGORIES = (
    *IDENTITY_CATEGORIES,
    "subject", "expression", "view", "pose", "framing", "clothing",
    "background", "lighting", "style", "quality", "other",
)

# Canonical terms, grouped by category. Every term here is the ONE spelling captions use.
CANONICAL: dict[str, tuple[str, ...]] = {
    "hair": (
        "brown hair", "black hair", "blonde hair", "red hair", "white hair", "grey hair",
        "blue hair", "pink hair", "green hair", "purple hair", "orange hair", "silver hair",
        "long hair", "short hair", "medium hair", "very long hair", "bob cut", "ponytail",
        "twintails", "braid", "bangs", "curly hair", "wavy hair", "straight hair", "bald",
        "hair bun", "sidelocks", "ahoge",
    ),
    "eyes": (
        "blue eyes", "brown eyes", "green eyes", "grey eyes", "black eyes", "red eyes",
        "purple eyes", "yellow eyes", "hazel eyes", "heterochromia",
    ),
    "face": (
        "freckles", "beard", "mustache", "stubble", "mole", "mole under eye", "scar on face",
        "thick eyebrows", "glasses", "makeup", "lipstick", "dimples", "pointy ears",
    ),
    "skin": ("pale skin", "dark skin", "tan skin", "tan lines"),
    "body": ("slim", "muscular", "curvy", "tall", "short", "chubby"),
    "subject": (
        "1girl", "1boy", "2girls", "2boys", "multiple girls", "multiple boys", "solo",
        "woman", "man", "girl", "boy", "person", "no humans", "animal", "cat", "dog",
    ),
    "expression": (
        "smiling", "laughing", "grinning", "serious", "neutral expression", "sad", "crying",
        "angry", "surprised", "frowning", "blushing", "open mouth", "closed mouth",
        "closed eyes", "wink", "pout", "smirk", "scared", "tongue out",
    ),
    "view": (
        "front view", "three quarter view", "profile", "from behind", "from above",
        "from below", "looking at viewer", "looking away", "looking back", "looking up",
        "looking down", "looking to the side",
    ),
    "pose": (
        "standing", "sitting", "walking", "running", "lying", "kneeling", "squatting",
        "jumping", "leaning forward", "arms crossed", "hands on hips", "arms up",
        "hand on own face", "waving", "holding", "dancing", "crouching", "reading",
        "contrapposto",
    ),
    "framing": (
        "close-up", "portrait", "upper body", "cowboy shot", "full body", "wide shot",
        "head out of frame", "cropped legs",
    ),
    "clothing": (
        "shirt", "t-shirt", "white shirt", "dress", "skirt", "jacket", "coat", "hoodie",
        "sweater", "jeans", "pants", "shorts", "uniform", "school uniform", "suit", "tie",
        "hat", "scarf", "boots", "sneakers", "gloves", "swimsuit", "armor", "kimono",
        "nude", "tank top", "blouse", "leather jacket", "denim jacket", "sundress",
    ),
    "background": (
        "simple background", "white background", "grey background", "black background",
        "outdoors", "indoors", "forest", "city", "street", "beach", "room", "bedroom",
        "kitchen", "cafe", "park", "sky", "night sky", "mountains", "field", "office",
        "library", "snow", "rain", "garden", "studio", "classroom", "desert",
    ),
    "lighting": (
        "soft lighting", "hard lighting", "backlighting", "rim lighting", "sunlight",
        "golden hour", "blue hour", "night", "neon lights", "studio lighting",
        "dramatic lighting", "candlelight", "overcast", "dappled sunlight", "low key",
        "high key", "shadow", "light rays",
    ),
    "style": (
        "anime", "anime coloring", "realistic", "photorealistic", "photo", "sketch",
        "lineart", "watercolor", "oil painting", "pixel art", "3d", "cel shading",
        "monochrome", "greyscale", "chibi", "comic", "traditional media", "flat color",
        "film grain", "illustration",
    ),
    "quality": (
        "masterpiece", "best quality", "high quality", "low quality", "worst quality",
        "absurdres", "highres", "lowres", "jpeg artifacts", "blurry", "8k",
        "score 9", "score 8 up", "score 7 up", "score 6 up", "score 5 up", "score 4 up",
    ),
}

# Alias -> canonical term. Keys are already normalised (lower case, spaces).
SYNONYMS: dict[str, str] = {
    "3/4 view": "three quarter view", "three-quarter view": "three quarter view",
    "3 4 view": "three quarter view", "threequarter view": "three quarter view",
    "half profile": "three quarter view", "from side": "profile", "side view": "profile",
    "profile view": "profile", "facing viewer": "front view", "front facing": "front view",
    "back view": "from behind", "rear view": "from behind",
    "smile": "smiling", "laugh": "laughing", "grin": "grinning", "blush": "blushing",
    "expressionless": "neutral expression", "eyes closed": "closed eyes",
    "upper-body": "upper body", "closeup": "close-up", "close up": "close-up",
    "face close-up": "close-up", "full-body": "full body", "fullbody": "full body",
    "blond hair": "blonde hair", "gray hair": "grey hair", "gray eyes": "grey eyes",
    "gray background": "grey background", "grayscale": "greyscale",
    "back lighting": "backlighting", "backlit": "backlighting", "rim light": "rim lighting",
    "sun light": "sunlight", "neon": "neon lights", "soft light": "soft lighting",
    "hard light": "hard lighting", "photo-realistic": "photorealistic",
    "watercolour": "watercolor", "water color": "watercolor", "outside": "outdoors",
    "inside": "indoors", "tshirt": "t-shirt", "tee shirt": "t-shirt", "trousers": "pants",
    "crossed arms": "arms crossed", "hands on own hips": "hands on hips",
    "freckle": "freckles", "moustache": "mustache",
    "eyeglasses": "glasses", "spectacles": "glasses",
}

# Suffix/word heuristics for tags the table does not name ("teal hair", "striped dress").
_SUFFIX_CATEGORIES: tuple[tuple[str, str], ...] = (
    (" hair", "hair"), (" eyes", "eyes"), (" pupils", "eyes"), (" skin", "skin"),
    (" background", "background"), (" lighting", "lighting"), (" light", "lighting"),
    (" shirt", "clothing"), (" dress", "clothing"), (" skirt", "clothing"),
    (" jacket", "clothing"), (" coat", "clothing"), (" pants", "clothing"),
    (" shoes", "clothing"), (" boots", "clothing"), (" hat", "clothing"),
    (" uniform", "clothing"), (" sweater", "clothing"), (" gloves", "clothing"),
    (" style", "style"), (" (style)", "style"), (" view", "view"), (" shot", "framing"),
)
# Tags whose underscore is part of the face they draw (WD14 taggers emit them as they are).
KAOMOJI = frozenset({"0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
                     "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||"})
_ESCAPES = re.compile(r"\\([()\[\]{}])")
_SPACES = re.compile(r"\s+")
_TERM_CATEGORY: dict[str, str] = {
    term: category for category, terms in CANONICAL.items() for term in terms
}


def normalise_tag(tag: str) -> str:
    """The canonical spelling of one tag: lower case, ``_`` to space (kaomoji such as ``^_^`` kept),
    escapes gone, synonyms mapped.

    >>> normalise_tag("3/4_view"), normalise_tag(" Brown_Hair "), normalise_tag("smile")
    ('three quarter view', 'brown hair', 'smiling')
    """
    text = _ESCAPES.sub(r"\1", tag.strip().lower())
    if text in KAOMOJI:
        return text
    text = text.replace("_", " ")
    text = _SPACES.sub(" ", text).strip(" ,")
    return SYNONYMS.get(text, text)


def normalise_tags(tags: list[str]) -> list[str]:
    """Normalise every tag, dropping empties and later duplicates (first occurrence wins)."""
    seen: set[str] = set()
    result: list[str] = []
    for tag in tags:
        term = normalise_tag(tag)
        if term and term not in seen:
            seen.add(term)
            result.append(term)
    return result


def category_of(tag: str) -> str:
    """The category of a canonical tag: the table first, then suffix heuristics, else "other"."""
    term = normalise_tag(tag)
    if term in _TERM_CATEGORY:
        return _TERM_CATEGORY[term]
    for suffix, category in _SUFFIX_CATEGORIES:
        if term.endswith(suffix):
            return category
    return "other"


def is_identity(tag: str) -> bool:
    """True for the face, hair, eye, skin and body features that make a character recognisable."""
    return category_of(tag) in IDENTITY_CATEGORIES


def parse_tag_text(text: str) -> list[str]:
    """Tags from a WD14-style file (comma-separated) or a booru list (space-separated, ``_`` joins).

    >>> parse_tag_text("brown_hair, blue_eyes, 3/4 view")
    ['brown hair', 'blue eyes', 'three quarter view']
    >>> parse_tag_text("brown_hair blue_eyes 1girl")
    ['brown hair', 'blue eyes', '1girl']
    """
    text = text.strip()
    if not text:
        return []
    if "," in text or "\n" in text:
        parts = re.split(r"[,\n]", text)
    else:
        parts = text.split()
    return normalise_tags(parts)


def tag_files(folder: Path, extension: str = ".txt") -> list[Path]:
    """The tag files ``read_tag_folder`` reads (top level only, extension in any case), sorted: one
    listing, so the caption stage's key and the node's IS_CHANGED see exactly the files read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"tags folder {folder} does not exist")
    listed = [p for p in sorted(folder.iterdir()) if p.suffix.lower() == extension and p.is_file()]
    return ReadRoots.of([folder]).keep_inside(listed)  # a file linking out of the folder is never read


def read_tag_folder(folder: Path, extension: str = ".txt",
                    warnings: list[str] | None = None) -> dict[str, list[str]]:
    """Imported tags per image stem from a folder of tag files (``0001.txt`` tags ``0001.png``).
    Any encoding is read (``text_decode``); a file read by a guess adds a warning naming it to
    ``warnings`` and to the log."""
    found: dict[str, list[str]] = {}
    for path in tag_files(folder, extension):
        decoded = read_text(path)
        if decoded.warning:
            log.warning("tag file %s", decoded.warning)
            if warnings is not None:
                warnings.append(decoded.warning)
        found[path.stem] = parse_tag_text(decoded.text)
    return found


def group_by_category(tags: list[str]) -> dict[str, list[str]]:
    """Tags sorted into categories, order kept within each category."""
    groups: dict[str, list[str]] = {}
    for tag in tags:
        groups.setdefault(category_of(tag), []).append(tag)
    return groups
