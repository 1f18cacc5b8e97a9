"""WD14 tagging as a workspace stage: batched, resumable, cached by the model and the rules.

One unit per item (an interrupted run resumes with the items it had not tagged), scored in batches
(one onnxruntime call per batch). While the model scores a batch, one worker thread reads and
prepares the next (onnxruntime releases the GIL), so on a real model our own work hides behind the
network's (``bench/tag.py`` measures it). Frames, cut-outs (their alpha over white, as the taggers
were trained) and face crops are tagged alike; the tags join the ``tags`` union the caption
builder reads, and ``wd14_tags`` keeps the scores, character tags and rating for reports.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import numpy as np

from ... import names
from ...media import images
from ...models.handle import all_on_device
from ...progress import Progress, ensure_progress
from ...workspace import Handle, Item, Workspace
from .tags import merged
from .wd14 import Tagged, TagRules, pick, prepare

STAGE_VERSION = 1
DEFAULT_BATCH = 8


def _groups(facts: Any) -> dict[str, list[int]]:
    from ...models.wd14_model import CHARACTER, GENERAL, RATING

    return {"general": facts.indices(GENERAL), "character": facts.indices(CHARACTER),
            "rating": facts.indices(RATING)}


def _load_batch(batch: Sequence[Item], size: int) -> np.ndarray:
    """The prepared input tensors of a batch of items, ``[N, size, size, 3]``."""
    return np.stack([prepare(images.load_image(item.path), size) for item in batch])


def _prefetched(batches: Sequence[Sequence[Item]], size: int) -> Iterator[np.ndarray]:
    """Each batch's tensor, the next one read and prepared in a worker thread meanwhile."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lf-wd14-read") as pool:
        upcoming: Future = pool.submit(_load_batch, batches[0], size)
        try:
            for index in range(len(batches)):
                current = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = pool.submit(_load_batch, batches[index + 1], size)
                yield current
        finally:
            upcoming.cancel()


def _value(tagged: Tagged) -> dict[str, Any]:
    return {"tags": tagged.tags, "scores": tagged.scores, "characters": tagged.characters, "rating": tagged.rating}


def wd14_stage(ws: Workspace, handle: Handle, tagger: Any, rules: TagRules, batch_size: int = DEFAULT_BATCH,
               progress: Progress | None = None) -> Handle:
    """Tag every item of ``handle`` with ``tagger`` (a ``load_wd14`` handle); annotations
    ``wd14_tags`` and the ``tags`` union. The tagger visits its compute device for the run."""
    from ...models.wd14_model import scores

    items = ws.items(handle)
    inherited = ws.tags(handle)
    facts = tagger.details
    groups = _groups(facts)
    params = {"rules": asdict(rules), "prepare": "pad-white-bicubic-bgr"}
    label = f"{handle.label or 'frames'} · wd14"
    with ws.stage("wd14", STAGE_VERSION, params, [handle], tagger.identity, label=label) as st:
        if not st.complete:
            report = ensure_progress(progress)
            todo = [(position, item) for position, item in enumerate(items) if not st.is_done(str(item.id))]
            done = len(items) - len(todo)
            report.update(done, len(items))
            step = max(1, int(batch_size))
            batches = [todo[i:i + step] for i in range(0, len(todo), step)]
            with all_on_device(tagger):
                tensors = _prefetched([[item for _, item in batch] for batch in batches], facts.size)
                for batch, tensor in zip(batches, tensors, strict=True):
                    for (position, item), row in zip(batch, scores(tagger, tensor), strict=True):
                        tagged = pick(row, facts.names, groups, rules)
                        st.emit(str(item.id), position, [item.id],
                                {item.id: {names.WD14_TAGS: _value(tagged),
                                           names.TAGS: merged(inherited, item.id, tagged.tags)}})
                    done += len(batch)
                    report.update(done, len(items))
        return st.handle


def top_tags(ws: Workspace, handle: Handle, count: int = 5, general_only: bool = False) -> dict[int, list[str]]:
    """The first ``count`` WD14 tags of each tagged item (characters first, then general tags by
    score; only general tags with ``general_only``), for previews and reports."""
    top = {}
    for item_id, value in ws.annotations(handle, names.WD14_TAGS).items():
        value = value or {}
        skip = set(value.get("characters", [])) if general_only else set()
        top[item_id] = [tag for tag in value.get("tags", []) if tag not in skip][:count]
    return top
