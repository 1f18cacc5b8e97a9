"""The prompt matrix: which images to render to judge a LoRA, per LoRA type, editable as JSON.

Three groups of cells, all at fixed seeds so two runs (or two LoRAs) see the same noise:
- ``curve``: the three invocation prompts (trigger alone; trigger + class; trigger + class +
  descriptive tags) at every strength. Strength 0 is the base model's floor.
- ``held_out``: contexts that are not in the training captions (other clothes, places, subjects),
  with the trigger, at strength 0 (base) and at full strength.
- ``trigger_off``: the held-out contexts without the trigger, at strength 0 and at the nominal
  strength: does the subject appear in prompts that never asked for it? (Compared with the same
  trigger-free prompt at strength 0, so the trigger word's own effect on the base cannot pass for
  a leak.)

Held-out and trigger-off cells are rendered at the *nominal* strength (1.0, the strength people
use); the curve may go beyond it (1.5 by default), so a LoRA that only works when pushed is seen.

Presets live in ``presets.json`` next to this module; a user's JSON (the node's ``matrix_json``)
overrides any of their fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..choices import one_of

PRESETS_FILE = Path(__file__).with_name("presets.json")
CURVE, HELD_OUT, TRIGGER_OFF = "curve", "held_out", "trigger_off"
PROMPT_KINDS = ("trigger", "trigger_class", "full")
CRITERIA = ("fidelity", "generalisation", "ease")


@dataclass(frozen=True)
class MatrixPreset:
    """What to render for one LoRA type; every field can be overridden from JSON."""

    class_word: str
    descriptive_tags: tuple[str, ...]
    held_out: tuple[str, ...]
    strengths: tuple[float, ...]
    seeds: tuple[int, ...]
    weights: Mapping[str, float] = field(default_factory=lambda: {"fidelity": 0.4, "generalisation": 0.4, "ease": 0.2})
    description: str = ""
    nominal_strength: float = 1.0
    spare_held_out: tuple[str, ...] = ()

    @property
    def full_strength(self) -> float:
        return max(self.strengths)

    @property
    def nominal(self) -> float:
        """The strength held-out cells are judged at: ``nominal_strength`` or the largest curve
        strength below it (the smallest positive one when all are above)."""
        below = [s for s in self.strengths if 0 < s <= self.nominal_strength]
        return max(below) if below else min(s for s in self.strengths if s > 0)


@dataclass(frozen=True)
class Cell:
    """One image of the matrix. ``group`` and ``kind`` say what it measures; ``context`` is the
    held-out phrase (or the prompt kind for curve cells)."""

    group: str
    kind: str
    prompt: str
    strength: float
    seed: int
    context: str = ""

    @property
    def label(self) -> str:
        """A short label for the contact sheet: what varies between cells."""
        what = self.kind if self.group == CURVE else f"{'-trig ' if self.group == TRIGGER_OFF else ''}{self.context}"
        return f"s{self.strength:g} #{self.seed} {what}"


def preset_names() -> list[str]:
    return list(_load_presets())


def _load_presets() -> dict[str, dict[str, Any]]:
    return json.loads(PRESETS_FILE.read_text(encoding="utf-8"))


def load_preset(lora_type: str, overrides: str | Mapping[str, Any] | None = None) -> MatrixPreset:
    """The preset for ``lora_type`` with ``overrides`` (a JSON object or its text) applied.

    Raises ValueError naming the bad field, so a typo in a workflow's JSON is an error, not a
    silently ignored setting.
    """
    presets = _load_presets()
    values = dict(presets[one_of(lora_type, sorted(presets), "evaluation preset")])
    extra = json.loads(overrides) if isinstance(overrides, str) and overrides.strip() else overrides or {}
    if not isinstance(extra, Mapping):
        raise ValueError("matrix_json must be a JSON object, e.g. {\"strengths\": [0, 0.5, 1]}")
    unknown = set(extra) - set(MatrixPreset.__dataclass_fields__)
    if unknown:
        raise ValueError(f"matrix_json has unknown fields {sorted(unknown)}; known: "
                         f"{sorted(MatrixPreset.__dataclass_fields__)}")
    values.update(extra)
    return _checked(values)


def _checked(values: dict[str, Any]) -> MatrixPreset:
    strengths = tuple(sorted({float(s) for s in values["strengths"]}))
    if not strengths or strengths[0] != 0.0 or strengths[-1] <= 0:
        raise ValueError(f"strengths must include 0 (the base model's floor) and a positive strength, got {strengths}")
    seeds = tuple(int(s) for s in values["seeds"])
    held_out = tuple(str(c) for c in values["held_out"])
    if not seeds or not held_out:
        raise ValueError("the matrix needs at least one seed and one held-out context")
    weights = {k: float(values.get("weights", {}).get(k, 0.0)) for k in CRITERIA}
    if sum(weights.values()) <= 0:
        raise ValueError(f"weights must give at least one of {CRITERIA} a positive weight")
    return MatrixPreset(class_word=str(values["class_word"]), descriptive_tags=tuple(values["descriptive_tags"]),
                        held_out=held_out, strengths=strengths, seeds=seeds, weights=weights,
                        description=str(values.get("description", "")),
                        nominal_strength=float(values.get("nominal_strength", 1.0)),
                        spare_held_out=tuple(str(c) for c in values.get("spare_held_out", ())))


def with_strengths(preset: MatrixPreset, strengths: Sequence[float]) -> MatrixPreset:
    return _checked({**asdict(preset), "strengths": strengths})


def invocation_prompts(trigger: str, preset: MatrixPreset, tags: Sequence[str] = ()) -> dict[str, str]:
    """Trigger alone, trigger + class word, trigger + class + descriptive tags."""
    descriptive = [*tags, *preset.descriptive_tags] if tags else list(preset.descriptive_tags)
    return {"trigger": trigger,
            "trigger_class": f"{trigger}, {preset.class_word}",
            "full": ", ".join([trigger, preset.class_word, *descriptive])}


def held_out_prompt(trigger: str | None, preset: MatrixPreset, context: str) -> str:
    parts = [trigger] if trigger else []
    return ", ".join([*parts, preset.class_word, context])


def build_matrix(trigger: str, preset: MatrixPreset, tags: Sequence[str] = ()) -> list[Cell]:
    """Every cell of the matrix, in a stable order (curve, held-out, trigger-off)."""
    if not trigger.strip():
        raise ValueError("the evaluation needs the LoRA's trigger word (it is read from the LoRA's metadata "
                         "when left empty; this LoRA has none: type it)")
    cells: list[Cell] = []
    for kind, prompt in invocation_prompts(trigger, preset, tags).items():
        cells += [Cell(CURVE, kind, prompt, s, seed, kind) for s in preset.strengths for seed in preset.seeds]
    for context in preset.held_out:
        prompt = held_out_prompt(trigger, preset, context)
        cells += [Cell(HELD_OUT, "held_out", prompt, s, seed, context)
                  for s in (0.0, preset.nominal) for seed in preset.seeds]
    for context in preset.held_out:
        off = held_out_prompt(None, preset, context)
        cells += [Cell(TRIGGER_OFF, "trigger_off", off, s, seed, context)
                  for s in (0.0, preset.nominal) for seed in preset.seeds]
    return cells


def content_words(text: str) -> set[str]:
    """The words of a phrase that name something (articles, prepositions and the like left out)."""
    words = {w.strip(".,;:()[]!?\"'").lower() for w in text.replace(",", " ").split()}
    return {w for w in words if len(w) > 2 and w not in FUNCTION_WORDS}


FUNCTION_WORDS = frozenset("the and with wearing into onto from near over under side view at on in of a an".split())


def overlapping_contexts(contexts: Sequence[str], captions: Sequence[str]) -> list[str]:
    """Held-out contexts the training captions already show: at least half of a context's content
    words in one caption (``in a snowy forest`` vs ``ohwx, snowy forest, smiling``)."""
    caption_words = [content_words(c) for c in captions]
    found = []
    for context in contexts:
        words = content_words(context)
        if words and any(len(words & seen) * 2 >= len(words) for seen in caption_words):
            found.append(context)
    return found


def hold_out_from(preset: MatrixPreset, captions: Sequence[str]) -> tuple[MatrixPreset, dict[str, str]]:
    """The preset with every held-out context the captions overlap replaced by a spare that they do
    not; ``{replaced: replacement}``. Raises ValueError when no clean spare is left: a context the
    LoRA was trained on cannot test generalisation."""
    bad = set(overlapping_contexts(preset.held_out, captions))
    spares = [c for c in preset.spare_held_out if c not in preset.held_out and not overlapping_contexts([c], captions)]
    replaced: dict[str, str] = {}
    kept = []
    for context in preset.held_out:
        if context not in bad:
            kept.append(context)
        elif spares:
            replaced[context] = spares.pop(0)
            kept.append(replaced[context])
        else:
            raise ValueError(f"held-out context {context!r} appears in the training captions, and no spare "
                             "context is left: set other held_out contexts in matrix_json")
    return (replace(preset, held_out=tuple(kept)) if replaced else preset), replaced


@dataclass(frozen=True)
class RenderSettings:
    """How every cell is rendered: part of each cell's key."""

    width: int = 512
    height: int = 512
    steps: int = 20
    cfg: float = 7.0
    sampler: str = "euler"
    scheduler: str = "normal"
    negative: str = ""


def cell_key(cell: Cell, lora_identity: str, model_identity: str, settings: RenderSettings) -> str:
    """The identity of a rendered image: what made it, nothing else. At strength 0 the LoRA plays
    no part, so the key leaves it out: every LoRA (and every tuning trial) shares the base images."""
    payload = {"lora": lora_identity if cell.strength != 0 else "", "strength": cell.strength,
               "prompt": cell.prompt, "seed": cell.seed, "model": model_identity, **asdict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def unique(cells: Sequence[Cell]) -> list[Cell]:
    """Cells with the same prompt, strength and seed render the same image: keep the first."""
    seen: set[tuple[str, float, int]] = set()
    kept = []
    for cell in cells:
        if (cell.prompt, cell.strength, cell.seed) not in seen:
            seen.add((cell.prompt, cell.strength, cell.seed))
            kept.append(cell)
    return kept
