"""The dataset report: is this dataset likely to train the LoRA the user wants?

Read from the written dataset itself (its JSON record and the ``.txt`` captions on disk), so it
also judges a dataset whose captions were edited by hand after writing. It checks counts per
subset against the recommended range for the LoRA type, caption length, the most frequent tags,
and warns about what ruins LoRAs in practice: too few images, identity tags leaking into captions
(they stop binding to the trigger), duplicate captions, and concepts with very unequal weight.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..captions.render import KEEP_TOKENS_SEPARATOR
from ..captions.strategies import strategy_for
from ..captions.vocabulary import category_of
from ..media.images import is_image_name
from ..paths import confined

RECOMMENDED_RANGE: dict[str, tuple[int, int]] = {
    "character": (15, 50), "style": (30, 200), "object": (15, 40), "concept": (20, 100),
    "scene": (20, 80), "expression": (20, 100), "lighting": (20, 100),
}
FREQUENT_SHARE = 0.8  # an unplaced tag on this share of captions is probably the subject itself
UNBALANCED_RATIO = 2.0
CONTACT_SHEET = "contact_sheet.jpg"


@dataclass
class DatasetReport:
    """Facts and warnings about one written dataset."""

    lora_type: str
    subsets: list[dict[str, Any]]
    caption_stats: dict[str, float]
    tag_frequency: list[tuple[str, int]]
    warnings: list[str] = field(default_factory=list)
    contact_sheet: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"lora_type": self.lora_type, "subsets": self.subsets, "caption_stats": self.caption_stats,
                "tag_frequency": self.tag_frequency, "warnings": self.warnings,
                "contact_sheet": self.contact_sheet}


def caption_tags(caption: str) -> list[str]:
    """The tags after the head (the first comma token, or everything before ``|||``)."""
    if KEEP_TOKENS_SEPARATOR in caption:
        body = caption.split(KEEP_TOKENS_SEPARATOR, 1)[1]
    else:
        body = caption.split(",", 1)[1] if "," in caption else ""
    return [t.strip().rstrip(".") for t in body.split(",") if t.strip() and not t.strip().startswith("score_")]


def _read_subsets(root: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Subsets with their captions as they are on disk now."""
    subsets = record.get("subsets") or [{"path": record["subset"], "repeats": record.get("repeats", 1),
                                         "is_reg": False}]
    result = []
    for subset in subsets:
        folder = confined(root, str(subset["path"]))  # the record is on disk: a client may have rewritten it
        captions = [p.read_text(encoding="utf-8").strip() for p in sorted(folder.glob("*.txt"))]
        images = [p for p in sorted(folder.iterdir()) if is_image_name(p)]
        result.append({**subset, "folder": folder, "captions": captions, "images": images})
    return result


def _count_rows(subsets: list[dict[str, Any]], lora_type: str) -> tuple[list[dict[str, Any]], list[str]]:
    low, high = RECOMMENDED_RANGE[lora_type]
    rows, warnings = [], []
    for s in subsets:
        count = len(s["images"])
        row = {"path": s["path"], "images": count, "repeats": s["repeats"], "is_reg": s["is_reg"],
               "steps_per_epoch": count * s["repeats"]}
        if not s["is_reg"]:
            row["recommended"] = [low, high]
            if count < low:
                warnings.append(f"{s['path']}: only {count} images; a {lora_type} LoRA wants {low}-{high}")
            elif count > high:
                warnings.append(f"{s['path']}: {count} images is more than the {low}-{high} a {lora_type} "
                                "LoRA needs; curate the best ones")
        rows.append(row)
    return rows, warnings


def _balance_warning(rows: list[dict[str, Any]]) -> list[str]:
    weights = [r["steps_per_epoch"] for r in rows if not r["is_reg"] and r["steps_per_epoch"]]
    if len(weights) > 1 and max(weights) / min(weights) > UNBALANCED_RATIO:
        return [f"unbalanced concepts: images x repeats per subset range {min(weights)}-{max(weights)}; "
                "raise the repeats of the small subsets (the writer balances them when repeats = 0)"]
    return []


def _leak_warnings(captions: Sequence[str], lora_type: str) -> list[str]:
    """Tags the LoRA type should leave to the trigger, found in captions."""
    strategy = strategy_for(lora_type)
    counts = Counter(t for c in captions for t in set(caption_tags(c)))
    leaked = {t: n for t, n in counts.items() if category_of(t) in strategy.dropped - {"quality"}}
    warnings = []
    if leaked:
        listed = ", ".join(f"{t} ({n})" for t, n in sorted(leaked.items(), key=lambda kv: -kv[1])[:8])
        warnings.append(f"tags that should bind to the trigger are captioned: {listed}")
    frequent = [t for t, n in counts.items() if n >= FREQUENT_SHARE * len(captions) and len(captions) >= 5
                and category_of(t) in strategy.core_categories]
    if frequent:
        warnings.append(f"on {FREQUENT_SHARE:.0%}+ of captions, probably the subject itself (will not bind): "
                        + ", ".join(sorted(frequent)))
    return warnings


def _duplicate_warnings(captions: Sequence[str]) -> list[str]:
    """Captions with tags that say the same for different images. Trigger-only captions (no tags:
    no captioner ran) are the usual recipe for a style or scene LoRA, not a mistake to warn about."""
    repeated = [(c, n) for c, n in Counter(captions).items() if n > 1 and caption_tags(c)]
    if not repeated:
        return []
    extra = sum(n - 1 for _, n in repeated)
    example, times = max(repeated, key=lambda cn: cn[1])
    return [f"{extra} captions duplicate another (most: {times}x {example!r}); captions that say the same "
            "for different images teach less"]


def _caption_stats(captions: Sequence[str], tokens: Sequence[int] | None) -> dict[str, float]:
    if not captions:
        return {}
    words = [len(c.split()) for c in captions]
    tags = [len(caption_tags(c)) for c in captions]
    stats = {"captions": len(captions), "words_min": min(words), "words_mean": round(statistics.mean(words), 1),
             "words_max": max(words), "tags_mean": round(statistics.mean(tags), 1)}
    if tokens:
        stats |= {"tokens_mean": round(statistics.mean(tokens), 1), "tokens_max": max(tokens)}
    return stats


def _contact_sheet(root: Path, subsets: list[dict[str, Any]], limit: int = 36) -> str | None:
    try:
        from ..media.contact_sheet import contact_sheet
    except ImportError:
        return None
    from ..media import images

    paths = [p for s in subsets if not s["is_reg"] for p in s["images"]]
    if not paths:
        return None
    step = max(1, len(paths) // limit)
    chosen = paths[::step][:limit]
    sheet = contact_sheet([images.load_image(p) for p in chosen], columns=6, cell=192,
                          labels=[p.stem for p in chosen])
    images.save_image(sheet, root / CONTACT_SHEET, quality=90)
    return CONTACT_SHEET


def dataset_report(root: Path, lora_type: str | None = None, count_tokens: bool = False,
                   token_limit: int = 75, make_contact_sheet: bool = True) -> DatasetReport:
    """Report on the dataset written at ``root`` (see the module docstring)."""
    from .dataset import read_record

    record = read_record(Path(root))
    lora_type = strategy_for(lora_type or record.get("lora_type") or "character").lora_type
    subsets = _read_subsets(Path(root), record)
    rows, warnings = _count_rows(subsets, lora_type)
    training = [c for s in subsets if not s["is_reg"] for c in s["captions"]]
    token_counts = None
    if count_tokens and training:
        from ..captions.tokens import count_tokens as count
        from ..captions.tokens import token_warnings

        counted = count(training, token_limit)
        token_counts = [c.tokens for c in counted]
        warnings += token_warnings([f"caption {i}" for i in range(len(training))], counted, token_limit)[:10]
    warnings += _balance_warning(rows) + _leak_warnings(training, lora_type) + _duplicate_warnings(training)
    frequency = Counter(t for c in training for t in set(caption_tags(c))).most_common(40)
    sheet = _contact_sheet(Path(root), subsets) if make_contact_sheet else None
    return DatasetReport(lora_type, rows, _caption_stats(training, token_counts), frequency, warnings, sheet)


def report_text(report: DatasetReport) -> str:
    """The report as the lines a user reads in the node."""
    lines = [f"LoRA type: {report.lora_type}"]
    for row in report.subsets:
        kind = "reg" if row["is_reg"] else f"recommended {row['recommended'][0]}-{row['recommended'][1]}"
        lines.append(f"  {row['path']}: {row['images']} images x {row['repeats']} repeats ({kind})")
    stats = report.caption_stats
    if stats:
        lines.append(f"captions: {stats['captions']}, words {stats['words_min']}-{stats['words_max']} "
                     f"(mean {stats['words_mean']}), tags mean {stats['tags_mean']}"
                     + (f", CLIP tokens mean {stats['tokens_mean']} max {stats['tokens_max']}" if "tokens_mean" in stats else ""))
    lines.append("top tags: " + ", ".join(f"{t} {n}" for t, n in report.tag_frequency[:20]))
    lines += [f"WARNING: {w}" for w in report.warnings] or ["no warnings"]
    return "\n".join(lines)
