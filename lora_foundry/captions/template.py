"""Caption templates: ``{field}`` slots and nothing else, and the one cap on a caption's length.

A template comes from a workflow. Python's ``str.format`` would also run format specs, conversions,
attribute and index lookups on it: ``{trigger:x>3000000}`` (20 characters) writes a 3 MB caption per
image, ``{trigger!r}`` or ``{class_word[0]}`` fail with bare errors. So templates are filled here by
plain substitution of ``{name}`` for the named fields (``{{`` and ``}}`` stand for braces); any other
brace is refused naming the template, and a caption longer than ``MAX_CAPTION_CHARS`` is refused
naming where it came from (sd-scripts reads at most 225 tokens, about a thousand characters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..choices import quoted

MAX_CAPTION_CHARS = 4000
MAX_TEMPLATE_CHARS = 500
_SLOT = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


def template_fields(template: str, allowed: Sequence[str], what: str) -> list[str]:
    """The ``{field}`` names ``template`` uses, refusing anything but ``{name}`` of ``allowed``."""
    if not isinstance(template, str):
        raise ValueError(f"{what} must be text, got {type(template).__name__}")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"{what} is {len(template)} characters long; the limit is {MAX_TEMPLATE_CHARS}")
    used = []
    for match in _SLOT.finditer(template):
        token, name = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            continue
        if name is None or name not in allowed:
            slots = " and ".join(f"{{{field}}}" for field in allowed)
            raise ValueError(f"{what} {quoted(template)}: only {slots} can be filled in (plain {{name}}: no format "
                             f"spec, conversion, attribute or index; write {{{{ and }}}} for braces); found "
                             f"{quoted(_near(template, match.start()), 40)}")
        used.append(name)
    return used


def fill_template(template: str, values: Mapping[str, str], what: str) -> str:
    """``template`` with each ``{field}`` replaced by its value, checked by ``template_fields``; the
    result is capped by ``check_caption_length``."""
    template_fields(template, list(values), what)

    def slot(match: re.Match[str]) -> str:
        token = match.group(0)
        return token[0] if token in ("{{", "}}") else str(values[match.group(1)])

    return check_caption_length(_SLOT.sub(slot, template), what)


def check_caption_length(caption: str, where: str) -> str:
    """``caption``, or a clear error naming ``where`` when it is not text or over ``MAX_CAPTION_CHARS``
    (captions also come back from workspace annotations, which a client may have rewritten)."""
    if not isinstance(caption, str):
        raise ValueError(f"{where}: the caption is {type(caption).__name__}, not text")
    if len(caption) > MAX_CAPTION_CHARS:
        raise ValueError(f"{where}: the caption is {len(caption)} characters; captions are limited to "
                         f"{MAX_CAPTION_CHARS} (sd-scripts reads at most 225 tokens)")
    return caption


def _near(template: str, index: int) -> str:
    """The slot around ``index`` for the message: from the brace to the next closing one (quoted
    back cut to 40 characters by ``choices.quoted``)."""
    end = template.find("}", index)
    return template[index:end + 1 if end >= 0 else index + 20]
