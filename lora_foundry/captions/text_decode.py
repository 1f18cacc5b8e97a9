"""Text files users bring (tag files from other tools), decoded whatever their encoding.

Tag files come from WD14 taggers, booru downloaders and hand edits on Windows: UTF-8 with or
without a BOM, UTF-16 from Notepad, Latin-1/cp1252 from older tools. Decoding them all as UTF-8
with ``errors="replace"`` put U+FFFD (and, for UTF-16, NUL bytes) into captions without a word.
Here the encoding is detected (BOM, UTF-16 by its NUL pattern, UTF-8, then cp1252/Latin-1), the
text is normalised (NFC, control characters become spaces) and every guess is reported, naming
the file, so nothing reaches a caption silently spoiled.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffd]")


@dataclass(frozen=True)
class DecodedText:
    """A file's text, the encoding it was read with and a warning when that was a guess."""

    text: str
    encoding: str
    warning: str | None = None


def decode_bytes(data: bytes, name: str) -> DecodedText:
    """``data`` as clean text; ``name`` (the file) goes into the warning when the encoding was not
    plain UTF-8 or characters had to be dropped."""
    encoding, note = _detect(data)
    text = data.decode(encoding, errors="replace")
    cleaned = _CONTROL.sub(" ", unicodedata.normalize("NFC", text))
    if cleaned != unicodedata.normalize("NFC", text) and note is None:
        note = "control or undecodable characters replaced by spaces"
    warning = f"{name}: {note}" if note else None
    return DecodedText(cleaned, encoding, warning)


def read_text(path: Path) -> DecodedText:
    """The text of ``path`` (see ``decode_bytes``)."""
    return decode_bytes(Path(path).read_bytes(), str(path))


def _detect(data: bytes) -> tuple[str, str | None]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, None if encoding == "utf-8-sig" else f"read as {encoding} (byte-order mark)"
    guess = _utf16_without_bom(data)
    if guess:
        return guess, f"read as {guess} (no byte-order mark; NUL bytes between characters)"
    try:
        data.decode("utf-8")
        return "utf-8", None
    except UnicodeDecodeError:
        pass
    try:
        data.decode("cp1252")
        return "cp1252", "not UTF-8; read as Windows-1252 (Latin-1); save it as UTF-8 to be sure"
    except UnicodeDecodeError:
        return "latin-1", "not UTF-8; read as Latin-1; save it as UTF-8 to be sure"


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le'/'-be' when every other byte is NUL (ASCII-heavy UTF-16), else None."""
    if len(data) < 4 or len(data) % 2:
        return None
    even, odd = data[0::2], data[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None
