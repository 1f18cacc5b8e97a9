"""The three criteria, from embeddings of rendered images (numpy only, no model in here).

Every number is a comparison with the base model on the same prompts and seeds (strength 0), so a
CLIP model's own offsets cancel. "Gap closed" = how much of the way from the base image's nearest-k
cosine to the training set up to a perfect match (cosine 1) the LoRA goes.
- fidelity (the subject is reproduced): gap closed by the best prompt at the best strength;
- ease of invocation (works at a moderate strength with a short prompt): the lowest strength that
  reaches 90 % of the best effect must be at most the nominal strength (1.0), and a short prompt
  (the trigger, or trigger + class word) must reach most of the effect at that strength;
- generalisation, from the held-out contexts (contexts the training captions never show), kept
  apart because users judge them apart:
  * the subject appears in the new context (gap closed in held-out prompts: good, and needed);
  * the context is kept, not replaced by training content (each held-out image is still nearest
    to the base image of its own context among the base images of the same seed, and, with a text
    tower, nearest to its own prompt's text as often as the base was);
  * no leak: the subject does not appear in the same prompts without the trigger (compared with
    those trigger-free prompts at strength 0);
  * diversity across seeds and contexts (reported and part of the score; no verdict of its own:
    the ladder gives no case that fails on it alone, so it has no calibrated threshold).
The thresholds below are not picked by hand: each is the midpoint between the cases of the
calibration ladder (tests/judge_ladder.py, bench/judge_ladder.py) that must pass and those that
must fail on it. ``objective`` ranks LoRAs so that a failing criterion cannot be bought back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .matrix import CRITERIA, CURVE, HELD_OUT, PROMPT_KINDS, TRIGGER_OFF, Cell, MatrixPreset

NEAREST_K = 3
REACH = 0.9  # "takes full effect" = 90 % of the best effect
NO_EFFECT = 0.02  # absolute nearest-k cosine change below this is no effect at all
# Calibrated on the ladder (bench/judge_ladder.py prints each side's values and the midpoint):
SUBJECT_GAP = 0.30  # fidelity: gap closed below this = under-fit (the subject is not reproduced)
SHORT_PROMPT = 0.43  # ease: share of the best effect a short prompt reaches at the nominal strength
NEW_CONTEXT_GAP = 0.39  # generalisation: gap closed in held-out contexts below this = under-fit
CONTEXT_KEPT = 0.63  # generalisation: held-out images still showing their own context, below = over-fit
LEAK = 0.45  # generalisation: share of the effect that shows without the trigger, above = over-fit


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


def gap_closed(lora: float, base: float) -> float:
    """Share of the way from the base's cosine to a perfect match (1) that the LoRA goes."""
    return max(0.0, (lora - base) / max(1e-9, 1.0 - base))


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


def _fidelity_part(curves: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    closed = {kind: max(gap_closed(v, c["nearest_k"][0]) for v in c["nearest_k"]) for kind, c in curves.items()}
    best_kind = max(closed, key=closed.get)
    gain = closed[best_kind]
    if gain < SUBJECT_GAP:
        verdict, why = "under-fit", f"the best strength closes only {gain:.0%} of the gap to the training set"
    else:
        verdict, why = "balanced", f"closes {gain:.0%} of the gap from the base model to the training set"
    return {"base_floor": curves["full"]["nearest_k"][0], "best": max(curves[best_kind]["nearest_k"]),
            "best_prompt": best_kind, "gain": round(gain, 4), "nearest_k_at_full": curves["full"]["nearest_k"][-1],
            "score": round(min(1.0, gain), 4), "verdict": verdict, "why": why, "curve": curves}


def _ease_part(curves: dict[str, dict[str, list[float]]], preset: MatrixPreset, subject_gap: float) -> dict[str, Any]:
    strengths = list(preset.strengths)
    gains = kind_gains(curves)
    best = max(max(g) for g in gains.values())
    at = strengths.index(preset.nominal)
    s90 = next((s for s, g in zip(strengths, gains["full"], strict=True) if g >= REACH * best), None)
    short_kind = max(("trigger", "trigger_class"), key=lambda kind: gains[kind][at])
    short = max(0.0, gains[short_kind][at] / best) if best >= NO_EFFECT else 0.0
    strength_part = 0.0 if not s90 else min(1.0, preset.nominal / s90)
    score = 0.5 * strength_part + 0.5 * min(1.0, short / REACH)
    if best < NO_EFFECT or subject_gap < SUBJECT_GAP:
        verdict, why, score = "under-fit", "the LoRA barely takes effect, at any strength or prompt", 0.0
    elif s90 is None or s90 > preset.nominal:
        verdict, why = "under-fit", f"needs strength {s90} (above {preset.nominal:g}) for 90 % of its effect"
    elif short < SHORT_PROMPT:
        verdict, why = "under-fit", (f"needs the full tag list: a short prompt reaches {short:.0%} of its effect "
                                     f"at strength {preset.nominal:g}")
    else:
        verdict, why = "balanced", (f"90 % of its effect at strength {s90:g}; the short prompt ({short_kind}) "
                                    f"reaches {short:.0%}")
    return {"strength_90": s90, "short_prompt": short_kind, "short_prompt_fraction": round(short, 4),
            "trigger_only_fraction": round(max(0.0, gains["trigger"][at] / best) if best >= NO_EFFECT else 0.0, 4),
            "score": round(score, 4), "verdict": verdict, "why": why}


def retrieval_accuracy(rows: np.ndarray, contexts: Sequence[str], texts: np.ndarray,
                       order: Sequence[str]) -> float:
    """Share of images whose most similar held-out prompt (text embedding) is their own."""
    if rows.shape[0] == 0:
        return 0.0
    best = np.argmax(rows @ texts.T, axis=1)
    return float(np.mean([order[b] == c for b, c in zip(best, contexts, strict=True)]))


def context_retrieval(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], strength: float) -> float:
    """Share of held-out images at ``strength`` whose nearest base image (same seed, all held-out
    contexts) is the base image of their own context: the context the prompt asked for is still there."""
    hits = []
    for cell in (c for c in cells if c.group == HELD_OUT and c.strength == strength):
        bases = [c for c in cells if c.group == HELD_OUT and c.strength == 0 and c.seed == cell.seed]
        nearest = max(bases, key=lambda b: float(embeddings[cell] @ embeddings[b]))
        hits.append(nearest.context == cell.context)
    return float(np.mean(hits)) if hits else 0.0


def _held_out(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], group: str, strength: float
              ) -> tuple[np.ndarray, list[str]]:
    chosen = [c for c in cells if c.group == group and c.strength == strength]
    return np.stack([embeddings[c] for c in chosen]), [c.context for c in chosen]


def _generalisation_part(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], train: np.ndarray,
                         preset: MatrixPreset, texts: np.ndarray | None, subject_gap: float) -> dict[str, Any]:
    nominal = preset.nominal
    base, contexts = _held_out(cells, embeddings, HELD_OUT, 0.0)
    lora, _ = _held_out(cells, embeddings, HELD_OUT, nominal)
    off_base, _ = _held_out(cells, embeddings, TRIGGER_OFF, 0.0)
    off_lora, _ = _held_out(cells, embeddings, TRIGGER_OFF, nominal)
    near = {name: fidelity(rows, train)[1] for name, rows in
            (("base", base), ("lora", lora), ("off_base", off_base), ("off_lora", off_lora))}
    new_context = gap_closed(near["lora"], near["base"])
    effect, off_effect = near["lora"] - near["base"], near["off_lora"] - near["off_base"]
    leak = min(1.0, max(0.0, off_effect) / max(effect, NO_EFFECT))
    d_base, d_lora = diversity(base), diversity(lora)
    diversity_kept = 1.0 if d_base <= 1e-9 else min(1.0, d_lora / d_base)
    image_kept = context_retrieval(cells, embeddings, nominal)
    parts: dict[str, Any] = {"subject_in_new_contexts": round(new_context, 4),
                             "context_kept": {"image": round(image_kept, 4)}, "leak": round(leak, 4),
                             "diversity": {"base": round(d_base, 5), "lora": round(d_lora, 5),
                                           "kept": round(diversity_kept, 4)},
                             "nearest_k": {k: round(v, 5) for k, v in near.items()}}
    kept = image_kept
    if texts is not None:
        acc_base = retrieval_accuracy(base, contexts, texts, preset.held_out)
        acc_lora = retrieval_accuracy(lora, contexts, texts, preset.held_out)
        text_kept = 1.0 - max(0.0, acc_base - acc_lora)
        parts["context_kept"].update(text_base=round(acc_base, 4), text_lora=round(acc_lora, 4))
        kept = 0.5 * (image_kept + text_kept)
    parts["context_kept"]["score"] = round(kept, 4)
    carried = min(1.0, new_context / max(subject_gap, SUBJECT_GAP))
    score = _geometric([kept, carried, 1.0 - leak, diversity_kept])
    if kept < CONTEXT_KEPT:
        verdict, why = "over-fit", f"the context is replaced by training content ({kept:.0%} of held-out images keep theirs)"
    elif leak > LEAK:
        verdict, why = "over-fit", f"the subject appears without its trigger ({leak:.0%} of its effect)"
    elif new_context < NEW_CONTEXT_GAP:
        verdict, why = "under-fit", f"the subject barely appears in new contexts ({new_context:.0%} of the gap)"
    else:
        verdict, why = "balanced", (f"the subject appears in new contexts ({new_context:.0%} of the gap), "
                                    f"{kept:.0%} keep their context, leak {leak:.0%}")
    return {**parts, "score": round(score, 4), "verdict": verdict, "why": why}


def _geometric(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    weights = list(weights or [1.0] * len(values))
    total = sum(weights)
    return math.exp(sum(w * math.log(max(1e-3, min(1.0, v))) for v, w in zip(values, weights, strict=True)) / total)


def objective(report: Mapping[str, Any], weights: Mapping[str, float]) -> float:
    """The tuner's number: (criteria passed + quality) / (criteria + 1), over the criteria with a
    positive weight; quality is the weighted geometric mean of their scores. A LoRA that fails a
    criterion ranks below every LoRA that passes them all, whatever its other scores: a failing
    criterion cannot be bought back; among equals, the better scores win."""
    used = [k for k in CRITERIA if float(weights.get(k, 0.0)) > 0]
    if not used:
        raise ValueError("at least one of the fidelity / generalisation / ease weights must be positive")
    passed = sum(report[k].get("verdict", "balanced") == "balanced" for k in used)
    quality = _geometric([float(report[k]["score"]) for k in used], [float(weights[k]) for k in used])
    return (passed + quality) / (len(used) + 1)


def judge(cells: Sequence[Cell], embeddings: Mapping[Cell, np.ndarray], train: np.ndarray, preset: MatrixPreset,
          texts: np.ndarray | None = None, weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The report: every criterion with its numbers, verdict and reason, and the objective.

    ``texts``: normalised text embeddings of the held-out prompts without the trigger, in
    ``preset.held_out`` order (None when the CLIP model has no text tower)."""
    train = normalise(train)
    embeddings = {cell: normalise(row) for cell, row in embeddings.items()}
    curves = strength_curves(cells, embeddings, train, preset)
    fidelity_part = _fidelity_part(curves)
    gap = fidelity_part["gain"]
    report = {"fidelity": fidelity_part, "ease": _ease_part(curves, preset, gap),
              "generalisation": _generalisation_part(cells, embeddings, train, preset,
                                                     None if texts is None else normalise(texts), gap)}
    weights = dict(weights or preset.weights)
    report["overall"] = {"score": round(objective(report, weights), 4), "weights": weights,
                         "verdict": overall_verdict(report)}
    return report


def combine_checkpoints(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One report for a LoRA judged on several checkpoints (the first is the one it was trained
    on): each criterion takes its worst verdict and lowest score, so a LoRA that breaks on another
    checkpoint cannot hide behind the base; ``checkpoints`` keeps every checkpoint's criteria."""
    first = next(iter(reports.values()))
    combined: dict[str, Any] = {k: v for k, v in first.items() if k not in CRITERIA}
    rank = {"over-fit": 0, "under-fit": 1, "balanced": 2}
    for criterion in CRITERIA:
        worst = min(reports, key=lambda name: (rank[reports[name][criterion]["verdict"]],
                                               reports[name][criterion]["score"]))
        part = dict(first[criterion])
        part.update(verdict=reports[worst][criterion]["verdict"],
                    score=min(r[criterion]["score"] for r in reports.values()),
                    why=f"{worst}: {reports[worst][criterion]['why']}")
        combined[criterion] = part
    weights = dict(first["overall"]["weights"])
    combined["checkpoints"] = {name: _checkpoint_summary(r) for name, r in reports.items()}
    combined["overall"] = {"score": round(objective(combined, weights), 4), "weights": weights,
                           "verdict": overall_verdict(combined)}
    return combined


def _checkpoint_summary(report: dict[str, Any]) -> dict[str, Any]:
    """One checkpoint's criteria (verdict, score, why) and objective, as the combined report lists them."""
    summary: dict[str, Any] = {k: {key: report[k][key] for key in ("verdict", "score", "why")} for k in CRITERIA}
    summary["objective"] = report["overall"]["score"]
    return summary


def overall_verdict(report: Mapping[str, Any]) -> str:
    verdicts = {report[k]["verdict"] for k in CRITERIA}
    return "over-fit" if "over-fit" in verdicts else "under-fit" if "under-fit" in verdicts else "balanced"


def summary(report: Mapping[str, Any]) -> str:
    """A few lines for people: each criterion's verdict and the reason."""
    lines = [f"overall: {report['overall']['verdict']} (score {report['overall']['score']:.3f})"]
    for name in ("fidelity", "ease", "generalisation"):
        part = report[name]
        lines.append(f"{name}: {part['verdict']} ({part['score']:.3f}) - {part['why']}")
    return "\n".join(lines)
