"""One CLIP token counter: a caption and a prompt of the same text get the same count, with open_clip
and without it (where both fall back to the same estimate and both say it is one)."""

from __future__ import annotations

from lora_foundry.captions.builder import CaptionSettings, build_captions
from lora_foundry.clip_tokens import ClipTokenCounter
from lora_foundry.lora.prompt import compose_prompt

TAGS = {
    "short": ["smiling", "red coat"],
    "trigger_like": ["zxqv hat", "standing", "city street at night"],
    "long": [f"detail number {i}" for i in range(40)],
}


def _caption_and_prompt_counts() -> list[tuple[str, int, int, bool, bool]]:
    """(caption text, caption builder's count, Compose Prompt's count, both exact flags) per caption."""
    result = build_captions(TAGS, CaptionSettings("style", "sks", token_limit=75))
    rows = []
    for caption in result.captions:
        composed = compose_prompt([], caption.text, ClipTokenCounter())
        exact = not any("estimate" in w for w in result.warnings)
        rows.append((caption.text, caption.tokens, composed.tokens.total, exact, composed.tokens.exact))
    return rows


def test_captions_and_prompts_count_alike_with_open_clip():
    rows = _caption_and_prompt_counts()
    for text, caption_count, prompt_count, caption_exact, prompt_exact in rows:
        assert caption_count == prompt_count, text
        assert caption_exact and prompt_exact
    assert ClipTokenCounter().count("zxqv woman") == (5, True, "")  # BPE, not a word count


def test_captions_and_prompts_count_alike_without_open_clip(without_open_clip):
    rows = _caption_and_prompt_counts()
    for text, caption_count, prompt_count, caption_exact, prompt_exact in rows:
        assert caption_count == prompt_count, text
        assert not caption_exact and not prompt_exact, "both must say the count is an estimate"
    tokens, exact, note = ClipTokenCounter().count("zxqv woman, smiling")
    assert (tokens, exact) == (4, False) and "open_clip unavailable" in note


def test_long_caption_still_warned_without_open_clip(without_open_clip):
    result = build_captions(TAGS, CaptionSettings("style", "sks", token_limit=75))
    assert result.warnings[0].startswith("CLIP token counts are estimates")
    assert any(w.startswith("long: caption has") for w in result.warnings)
