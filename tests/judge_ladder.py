"""The judge's calibration ladder: LoRAs whose behaviour is planted, so the right verdicts are known.

A tiny synthetic world where subject and context are separate, controllable factors. The base
model paints the prompt's context as a background (colours and stripes chosen by the words) and,
when the class word is there, a plain skin-coloured figure in the middle, shifted by the seed (the
pose); the trigger, a word it does not know, tints its picture a little.
The training set is the subject (a two-colour checkered figure) on four training backgrounds. Each
planted "LoRA" decides how much of the subject replaces the figure, from the strength and the
prompt, and nothing else:

==================  =================================================================================
do_nothing          never changes the image
under_fit           draws the subject at 12 % of the way, even at full strength
balanced            draws the subject with the trigger (fully from strength 1), keeps the context
over_fit            replaces the whole picture with a training image (subject *and* its background)
leaking             like balanced, and draws the subject at 80 % without the trigger as well
trigger_dependent   draws the subject only when the prompt holds the full descriptive tag list
strength_curve      nothing below 0.9, full only from 1.25 ("works at 1.2+")
==================  =================================================================================

The embedder's features respond to both factors: half of each embedding is the middle of the
image (where the subject is), half the rest (the context); a text is embedded as the noise-free
base image of its words. Numpy only, and the engine's modules are handed in (``run_ladder``), so
``bench/judge_ladder.py`` can run the same ladder against another checkout's judge.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

SIZE = 32
TRIGGER = "ohwx"
CLASS_WORD = "person"
TRAIN_CONTEXTS = ("in a photo studio", "by a brick wall", "on a park bench", "in a bedroom")
CENTRE = slice(SIZE // 4, 3 * SIZE // 4)
VERDICTS = ("fidelity", "ease", "generalisation")
OK, UNDER, OVER = "balanced", "under-fit", "over-fit"
EXPECTED: dict[str, tuple[str, str, str]] = {  # fidelity, ease, generalisation
    "do_nothing": (UNDER, UNDER, UNDER), "under_fit": (UNDER, UNDER, UNDER), "balanced": (OK, OK, OK),
    "over_fit": (OK, OK, OVER), "leaking": (OK, OK, OVER), "trigger_dependent": (OK, UNDER, UNDER),
    "strength_curve": (OK, UNDER, UNDER)}
CASES = tuple(EXPECTED)


def _colour(text: str, salt: str = "") -> np.ndarray:
    digest = hashlib.sha256((salt + text).encode()).digest()
    return np.frombuffer(digest[:3], np.uint8).astype(np.float64)


def background(context: str) -> np.ndarray:
    """Two colours in stripes whose direction and width come from the context's words."""
    digest = hashlib.sha256(context.encode()).digest()
    first, second = _colour(context, "a"), _colour(context, "b")
    width = 3 + digest[3] % 6
    axis = np.arange(SIZE)[:, None] if digest[4] % 2 else np.arange(SIZE)[None, :]
    mask = ((axis // width) % 2).astype(bool)
    mask = np.broadcast_to(mask, (SIZE, SIZE))
    return np.where(mask[..., None], first, second)


def figure(image: np.ndarray, paint: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """Blend ``paint`` (a SIZE/2 square) into the middle, shifted by the seed's pose."""
    if amount <= 0:
        return image
    shift = (seed % 3) - 1
    rows, cols = slice(CENTRE.start + shift, CENTRE.stop + shift), slice(CENTRE.start - shift, CENTRE.stop - shift)
    image = image.copy()
    image[rows, cols] = (1 - amount) * image[rows, cols] + amount * paint
    return image


def subject() -> np.ndarray:
    half = SIZE // 2
    checks = ((np.arange(half)[:, None] // 4 + np.arange(half)[None, :] // 4) % 2).astype(bool)
    return np.where(checks[..., None], np.array([220.0, 40, 60]), np.array([30.0, 60, 200]))


def plain_figure() -> np.ndarray:
    return np.broadcast_to(np.array([190.0, 150, 120]), (SIZE // 2, SIZE // 2, 3)).copy()


def words(prompt: str) -> list[str]:
    return [w.strip() for w in prompt.split(",") if w.strip()]


def base_image(prompt: str, seed: int, noise: bool = True) -> np.ndarray:
    """The base model: context from the words that are not the trigger or the class word."""
    said = words(prompt)
    context = ", ".join(w for w in said if w not in (TRIGGER, CLASS_WORD)) or "(plain)"
    image = background(context)
    if CLASS_WORD in said:
        image = figure(image, plain_figure(), 1.0, seed)
    if TRIGGER in said:  # a word the base model does not know still changes its picture a little
        image = 0.6 * image + 0.4 * (255.0 - _colour(TRIGGER))
    if noise:
        image = image + np.random.default_rng(seed).normal(0, 10, image.shape)
    return image


def training_images() -> list[np.ndarray]:
    return [_to_uint8(figure(base_image(f"{CLASS_WORD}, {c}", i), subject(), 1.0, i))
            for i, c in enumerate(TRAIN_CONTEXTS)]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def subject_amount(case: str, strength: float, triggered: bool, all_tags: bool) -> float:
    """How far the planted LoRA draws its subject (0 = not at all, 1 = fully)."""
    full = min(1.0, strength)
    amounts = {"do_nothing": 0.0, "under_fit": 0.12 * full if triggered else 0.0,
               "balanced": full if triggered else 0.0, "over_fit": full if triggered else 0.0,
               "leaking": full if triggered else 0.8 * full,
               "trigger_dependent": full if triggered and all_tags else 0.0,
               "strength_curve": min(1.0, max(0.0, (strength - 0.9) / 0.35)) if triggered else 0.0}
    return amounts[case]


class LadderRenderer:
    """A ``Renderer`` with one planted behaviour (``case``)."""

    def __init__(self, case: str, tags: tuple[str, ...]) -> None:
        from lora_foundry.evaluate.matrix import RenderSettings

        self.case, self.tags = case, tags
        self.model_identity, self.lora_identity = "ladder-world", f"ladder-{case}"
        self.settings = RenderSettings(width=SIZE, height=SIZE, steps=1)
        self.training = training_images()

    def render(self, prompt: str, strength: float, seed: int) -> np.ndarray:
        return render(self.case, self.tags, self.training, prompt, strength, seed)


def render(case: str, tags: tuple[str, ...], training: list[np.ndarray], prompt: str, strength: float,
           seed: int) -> np.ndarray:
    image = base_image(prompt, seed)
    said = words(prompt)
    amount = subject_amount(case, strength, TRIGGER in said, all(t in said for t in tags))
    if case == "over_fit":
        target = training[seed % len(training)].astype(np.float64)
        return _to_uint8((1 - amount) * image + amount * target)
    return _to_uint8(figure(image, subject(), amount, seed))


class LadderEmbedder:
    """Half middle (subject), half surroundings (context): 4x4-pixel block means, centred on grey."""

    identity = "ladder-embedder-v1"

    def images(self, pixels) -> np.ndarray:
        return np.stack([embed(np.asarray(p, np.float64)) for p in pixels])

    def texts(self, texts) -> np.ndarray:
        return np.stack([embed(base_image(t, 0, noise=False)) for t in texts])


def embed(image: np.ndarray) -> np.ndarray:
    blocks = image.reshape(SIZE // 4, 4, SIZE // 4, 4, 3).mean(axis=(1, 3)) - 128.0
    inner = np.zeros(blocks.shape[:2], bool)
    inner[SIZE // 16: 3 * SIZE // 16, SIZE // 16: 3 * SIZE // 16] = True
    middle, rest = blocks[inner].ravel(), blocks[~inner].ravel()
    return np.concatenate([middle / max(1e-9, np.linalg.norm(middle)), rest / max(1e-9, np.linalg.norm(rest))])


def ladder_preset(matrix: Any, engine_fields: bool = True) -> Any:
    """The character preset with the ladder's seeds (an older engine without the curve beyond the
    nominal strength gets the same strengths through ``strengths``)."""
    values: dict[str, Any] = {"seeds": [1, 2, 3], "strengths": [0, 0.25, 0.5, 0.75, 1.0, 1.5]}
    if not engine_fields:
        values["strengths"] = [0, 0.25, 0.5, 0.75, 1.0]
    return matrix.load_preset("character", values)


def run_ladder(matrix: Any, judge: Callable[..., dict[str, Any]], objective: Callable[..., float],
               preset: Any) -> dict[str, dict[str, Any]]:
    """Each case judged: ``{case: {"report": ..., "objective": ...}}`` (objective with the preset's weights)."""
    embedder, train = LadderEmbedder(), None
    train = embedder.images(training_images())
    texts = embedder.texts([matrix.held_out_prompt(None, preset, c) for c in preset.held_out])
    results = {}
    for case in CASES:
        cells = matrix.build_matrix(TRIGGER, preset)
        tags = tuple(matrix.invocation_prompts(TRIGGER, preset)["full"].split(", ")[2:])
        training = training_images()
        rows = embedder.images([render(case, tags, training, c.prompt, c.strength, c.seed) for c in cells])
        report = judge(cells, dict(zip(cells, rows, strict=True)), train, preset, texts)
        results[case] = {"report": report, "objective": float(objective(report, dict(preset.weights)))}
    return results


# (threshold name, where its number is in the report, cases that must be on the passing side,
#  cases that must be on the failing side, True when passing means above)
CALIBRATION: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], bool], ...] = (
    ("SUBJECT_GAP", ("fidelity", "gain"), ("balanced", "over_fit", "leaking", "trigger_dependent", "strength_curve"),
     ("do_nothing", "under_fit"), True),
    ("SHORT_PROMPT", ("ease", "short_prompt_fraction"), ("balanced", "over_fit", "leaking"),
     ("trigger_dependent",), True),
    ("NEW_CONTEXT_GAP", ("generalisation", "subject_in_new_contexts"), ("balanced", "over_fit", "leaking"),
     ("do_nothing", "under_fit", "trigger_dependent", "strength_curve"), True),
    ("CONTEXT_KEPT", ("generalisation", "context_kept", "score"),
     ("do_nothing", "under_fit", "balanced", "leaking", "trigger_dependent", "strength_curve"), ("over_fit",), True),
    ("LEAK", ("generalisation", "leak"), ("do_nothing", "under_fit", "balanced", "trigger_dependent", "strength_curve"),
     ("leaking",), False),
)


def calibration(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per threshold: the worst passing case, the best failing case and their midpoint."""
    out = {}
    for name, where, passing, failing, above in CALIBRATION:
        def value(case: str, where: tuple[str, ...] = where) -> float:
            node: Any = results[case]["report"]
            for key in where:
                node = node[key]
            return float(node)

        good = [value(c) for c in passing]
        bad = [value(c) for c in failing]
        edge_good, edge_bad = (min(good), max(bad)) if above else (max(good), min(bad))
        out[name] = {"passing_edge": round(edge_good, 4), "failing_edge": round(edge_bad, 4),
                     "midpoint": round((edge_good + edge_bad) / 2, 4)}
    return out


def table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Every case x criterion -> verdict (expected in brackets when it differs) and the objective."""
    lines = [f"{'case':18} {'fidelity':12} {'ease':12} {'generalisation':15} {'objective':>9}  ok"]
    for case, result in results.items():
        report, expected = result["report"], EXPECTED[case]
        got = [report[k]["verdict"] for k in VERDICTS]
        shown = [g if g == e else f"{g} [{e}]" for g, e in zip(got, expected, strict=True)]
        ok = "yes" if tuple(got) == expected else "NO"
        lines.append(f"{case:18} {shown[0]:12} {shown[1]:12} {shown[2]:15} {result['objective']:9.3f}  {ok}")
    return "\n".join(lines)
