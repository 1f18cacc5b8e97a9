"""The three criteria, from embeddings of rendered images (numpy only, no model in here).

Every number is a comparison with the base model on the same prompts and seeds (strength 0), so a
CLIP model's own offsets cancel:
- fidelity: cosine of each LoRA image to the training set's centroid and to its k nearest training
  images, as a curve over strength; ``gain`` = how much of the way from the base floor to a perfect
  match (cosine 1) the best strength goes;
- ease of invocation: the lowest strength whose gain reaches 90 % of the best gain (full prompt),
  and how much of that gain the trigger alone, and trigger + class word, reach at full strength;
- generalisation: for prompts that ask for contexts the training set never showed, (a) whether
  each image is still closest to its own prompt's text among the held-out prompts (text
  retrieval, with vs without the LoRA), (b) diversity: the mean pairwise cosine distance across
  seeds and contexts, LoRA vs base, (c) leakage: the share of the fidelity gain that shows up
  even though the prompt asked for something else (the training images' backgrounds and poses
  creeping in); plus the same with the trigger left out.
Verdicts use the fixed thresholds below; the report keeps every number behind them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .matrix import CURVE, HELD_OUT, PROMPT_KINDS, TRIGGER_OFF, Cell, MatrixPreset

NEAREST_K = 3
REACH = 0.9  # "takes full effect" = 90 % of the best fidelity gain
NO_EFFECT_GAIN = 0.02  # below this the LoRA does not move images toward the training set at all
UNDERFIT_GAIN = 0.15
COPY_COSINE = 0.97  # nearest-training cosine above this at full strength looks like a copy
OVERFIT_GENERALISATION = 0.5
TRIGGERLESS_LEAK = 0.5


def normalise(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def fidelity(rows: np.ndarray, train: np.ndarray, k: int = NEAREST_K) -> tuple[float, float]:
    """(centroid cosine, nearest-k cosine), averaged over ``rows``; both inputs normalised."""
    centroid = normalise(train.mean(axis=0))
    sims = rows @ train.T
    k = max(1, min(k, train.shape[0]))
    nearest = np.sort(sims, axis=1)[:, -k:].mean(axis=1)
    return float((rows @ centroid).mean()), float(nearest.mean())


def diversity(rows: np.ndarray) -> float:
    """Mean pairwise cosine distance (0 = all the same image)."""
    if rows.shape[0] < 2:
        return 0.0
    sims = rows @ rows.T
    upper = np.triu_indices(rows.shape[0], 1)
    return float((1.0 - sims[upper]).mean())


def _rows(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], **match: Any) -> np.ndarray:
    chosen = [embeddings[c] for c in cells if all(getattr(c, k) == v for k, v in match.items())]
    return np.stack(chosen) if chosen else np.zeros((0, 0))


def strength_curves(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], train: np.ndarray,
                    preset: MatrixPreset) -> dict[str, dict[str, list[float]]]:
    def curve(kind: str) -> dict[str, list[float]]:
        points = [fidelity(_rows(cells, embeddings, group=CURVE, kind=kind, strength=s), train) for s in preset.strengths]
        return {"strengths": list(preset.strengths), "centroid": [round(c, 5) for c, _ in points],
                "nearest_k": [round(n, 5) for _, n in points]}

    return {kind: curve(kind) for kind in PROMPT_KINDS}


def kind_gains(curves: dict[str, dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per prompt kind, the nearest-k fidelity minus that prompt's own base floor (strength 0)."""
    return {kind: [v - c["nearest_k"][0] for v in c["nearest_k"]] for kind, c in curves.items()}


def _fidelity_part(curves: dict[str, dict[str, list[float]]], diversity_kept: float) -> dict[str, Any]:
    full = curves["full"]["nearest_k"]
    gains = kind_gains(curves)
    best_kind = max(gains, key=lambda kind: max(gains[kind]))
    floor = curves[best_kind]["nearest_k"][0]
    best = max(curves[best_kind]["nearest_k"])
    gain = max(0.0, (best - floor) / max(1e-9, 1.0 - floor))
    if gain < UNDERFIT_GAIN:
        verdict, why = "under-fit", f"the best strength closes only {gain:.0%} of the gap to the training set"
    elif full[-1] >= COPY_COSINE and diversity_kept < 0.5:
        verdict, why = "over-fit", f"images at full strength are near-copies (nearest-k cosine {full[-1]:.3f})"
    else:
        verdict, why = "balanced", f"closes {gain:.0%} of the gap from the base model to the training set"
    return {"base_floor": round(full[0], 5), "best": round(best, 5), "best_prompt": best_kind, "gain": round(gain, 4),
            "centroid_at_full": curves["full"]["centroid"][-1], "nearest_k_at_full": full[-1],
            "score": round(min(1.0, gain), 4), "verdict": verdict, "why": why, "curve": curves}


def _ease_part(curves: dict[str, dict[str, list[float]]], preset: MatrixPreset, trigger_off_leak: float
               ) -> dict[str, Any]:
    strengths = list(preset.strengths)
    gains = kind_gains(curves)
    best = max(max(g) for g in gains.values())
    if best < NO_EFFECT_GAIN:
        return {"strength_90": None, "trigger_only_fraction": 0.0, "trigger_class_fraction": 0.0, "score": 0.0,
                "trigger_off_leakage": round(trigger_off_leak, 4), "verdict": "under-fit",
                "why": "the LoRA never takes effect, at any strength or prompt"}
    s90 = next((s for s, g in zip(strengths, gains["full"], strict=True) if g >= REACH * best), None)
    first, top = strengths[1], strengths[-1]
    strength_part = 0.0 if s90 is None else min(1.0, 1.0 - (s90 - first) / top)
    trigger_fraction = max(0.0, gains["trigger"][-1] / best)
    score = 0.5 * strength_part + 0.5 * min(1.0, trigger_fraction / REACH)
    if trigger_off_leak > TRIGGERLESS_LEAK:
        verdict, why = "over-fit", f"{trigger_off_leak:.0%} of its effect shows without the trigger"
    elif s90 is None or (s90 == top and trigger_fraction < 0.5):
        verdict, why = "under-fit", f"needs full strength and the full prompt (trigger alone: {trigger_fraction:.0%})"
    else:
        verdict, why = "balanced", (f"90 % of its effect at strength {s90:g}; the trigger alone reaches "
                                    f"{trigger_fraction:.0%}")
    return {"strength_90": s90, "trigger_only_fraction": round(trigger_fraction, 4),
            "trigger_class_fraction": round(max(0.0, gains["trigger_class"][-1] / best), 4),
            "trigger_off_leakage": round(trigger_off_leak, 4), "score": round(score, 4), "verdict": verdict, "why": why}


def retrieval_accuracy(rows: np.ndarray, contexts: Sequence[str], texts: np.ndarray,
                       order: Sequence[str]) -> float:
    """Share of images whose most similar held-out prompt (text embedding) is their own."""
    if rows.shape[0] == 0:
        return 0.0
    best = np.argmax(rows @ texts.T, axis=1)
    return float(np.mean([order[b] == c for b, c in zip(best, contexts, strict=True)]))


def _held_out(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], group: str, strength: float
              ) -> tuple[np.ndarray, list[str]]:
    chosen = [c for c in cells if c.group == group and c.strength == strength]
    return np.stack([embeddings[c] for c in chosen]), [c.context for c in chosen]


def _generalisation_part(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], train: np.ndarray,
                         preset: MatrixPreset, texts: np.ndarray | None, full_gain_abs: float
                         ) -> tuple[dict[str, Any], float]:
    top = preset.full_strength
    base, contexts = _held_out(cells, embeddings, HELD_OUT, 0.0)
    lora, _ = _held_out(cells, embeddings, HELD_OUT, top)
    off, off_contexts = _held_out(cells, embeddings, TRIGGER_OFF, top)
    d_base, d_lora = diversity(base), diversity(lora)
    diversity_kept = 1.0 if d_base <= 1e-9 else min(1.0, d_lora / d_base)
    near_base, near_lora, near_off = (fidelity(r, train)[1] for r in (base, lora, off))
    denominator = max(full_gain_abs, NO_EFFECT_GAIN)
    leakage = min(1.0, max(0.0, (near_lora - near_base) / denominator)) if full_gain_abs >= NO_EFFECT_GAIN else 0.0
    off_leak = min(1.0, max(0.0, (near_off - near_base) / denominator)) if full_gain_abs >= NO_EFFECT_GAIN else 0.0
    parts = {"diversity": {"base": round(d_base, 5), "lora": round(d_lora, 5), "kept": round(diversity_kept, 4)},
             "leakage": {"nearest_k_base": round(near_base, 5), "nearest_k_lora": round(near_lora, 5),
                         "share_of_gain": round(leakage, 4)}}
    scores = [diversity_kept, 1.0 - leakage]
    if texts is not None:
        acc_base = retrieval_accuracy(base, contexts, texts, preset.held_out)
        acc_lora = retrieval_accuracy(lora, contexts, texts, preset.held_out)
        kept = 1.0 - max(0.0, acc_base - acc_lora)
        parts["text_alignment"] = {"base": round(acc_base, 4), "lora": round(acc_lora, 4), "kept": round(kept, 4)}
        scores.append(kept)
    else:
        parts["text_alignment"] = None  # an image-only CLIP (CLIP_VISION) cannot read prompts
    score = float(np.mean(scores))
    if score < OVERFIT_GENERALISATION:
        verdict, why = "over-fit", (f"held-out prompts lose {1 - diversity_kept:.0%} of their diversity and "
                                    f"{leakage:.0%} of the training look leaks into them")
    else:
        verdict, why = "balanced", f"held-out prompts keep {diversity_kept:.0%} of their diversity, leakage {leakage:.0%}"
    return {**parts, "score": round(score, 4), "verdict": verdict, "why": why,
            "trigger_off_nearest_k": round(near_off, 5)}, off_leak


def judge(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], train: np.ndarray, preset: MatrixPreset,
          texts: np.ndarray | None = None, weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The report: every criterion with its numbers, verdict and reason, and the weighted score.

    ``texts``: normalised text embeddings of the held-out prompts without the trigger, in
    ``preset.held_out`` order (None when the CLIP model has no text tower)."""
    train = normalise(train)
    embeddings = {cell: normalise(row) for cell, row in embeddings.items()}
    curves = strength_curves(cells, embeddings, train, preset)
    full_gain_abs = max(kind_gains(curves)["full"])
    general, off_leak = _generalisation_part(cells, embeddings, train, preset,
                                             None if texts is None else normalise(texts), full_gain_abs)
    report = {"fidelity": _fidelity_part(curves, general["diversity"]["kept"]),
              "ease": _ease_part(curves, preset, off_leak), "generalisation": general}
    weights = dict(weights or preset.weights)
    total = sum(weights.values())
    score = sum(weights.get(k, 0.0) * report[k]["score"] for k in report) / total
    verdicts = {report[k]["verdict"] for k in report}
    overall = "over-fit" if "over-fit" in verdicts else "under-fit" if "under-fit" in verdicts else "balanced"
    report["overall"] = {"score": round(score, 4), "weights": weights, "verdict": overall}
    return report


def summary(report: Mapping[str, Any]) -> str:
    """A few lines for people: each criterion's verdict and the reason."""
    lines = [f"overall: {report['overall']['verdict']} (score {report['overall']['score']:.3f})"]
    for name in ("fidelity", "ease", "generalisation"):
        part = report[name]
        lines.append(f"{name}: {part['verdict']} ({part['score']:.3f}) - {part['why']}")
    return "\n".join(lines)
