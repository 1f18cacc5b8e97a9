"""The caption stage: tags from the workspace (and imported tag files) to a "caption" per item.

Reads the "tags" (list of strings) and "cluster" (int) annotations other stages wrote, adds tags
from an imported folder of WD14/booru ``.txt`` files matched by file name, builds captions with
``builder.build_captions`` and records them as the "caption" annotation on the same items, which
the dataset writer uses. The stage's info keeps what the writer and the report need to know: the
keep_tokens count, the separator, the core tags per cluster and the token warnings.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import names
from ..paths import single_line
from ..progress import Progress
from ..workspace import Handle, Item, Workspace
from .builder import CaptionSettings, build_captions
from .render import KEEP_TOKENS_SEPARATOR, caption_style
from .vocabulary import read_tag_folder, tag_files

STAGE_NAME = "captions"
STAGE_VERSION = 2  # 2: tag files read in any encoding, control characters dropped


def _folder_identity(folder: Path | None) -> list[Any]:
    """(name, size, mtime) of every tag file, so edited tag files make a new stage key."""
    if folder is None:
        return []
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tag_files(Path(folder))]


def _stems(item: Item) -> list[str]:
    """Names an imported tag file may use for this item: its own, its original file's."""
    stems = [item.path.stem]
    if item.meta.get(names.META_NAME):
        stems.append(Path(str(item.meta[names.META_NAME])).stem)
    if item.source and item.frame_index is None:
        stems.append(Path(item.source).stem)
    return stems


def gather_tags(
    items: list[Item], stage_tags: dict[int, Any], imported: dict[str, list[str]]
) -> dict[int, list[str]]:
    """Each item's tags: the workspace's "tags" annotation, then any imported ones."""
    tags: dict[int, list[str]] = {}
    for item in items:
        own = [str(t) for t in (stage_tags.get(item.id) or [])]
        extra = next((imported[s] for s in _stems(item) if s in imported), [])
        tags[item.id] = own + list(extra)
    return tags


def caption_stage(
    ws: Workspace,
    handle: Handle,
    settings: CaptionSettings,
    tags_folder: Path | None = None,
    progress: Progress | None = None,
) -> Handle:
    """Caption every item of ``handle``; a cache hit when nothing changed."""
    single_line(settings.trigger, "trigger")
    single_line(settings.class_word, "class_word")
    params = {"settings": asdict(settings), "tags_folder": str(tags_folder or ""),
              "tag_files": _folder_identity(tags_folder)}
    with ws.stage(STAGE_NAME, STAGE_VERSION, params, inputs=[handle], label="captions") as st:
        if not st.complete:
            items = ws.items(handle)
            tag_warnings: list[str] = []
            imported = read_tag_folder(tags_folder, warnings=tag_warnings) if tags_folder else {}
            tags = gather_tags(items, ws.annotations(handle, names.TAGS), imported)
            clusters = ws.annotations(handle, names.CLUSTER)
            result = build_captions(tags, settings, clusters, progress)
            annotations = {c.item: {names.CAPTION: c.text, names.CAPTION_DROPPED: c.dropped} for c in result.captions}
            st.emit_all([item.id for item in items], annotations)
            st.set_info(**{
                names.INFO_CAPTION_KEEP_TOKENS: result.keep_tokens,
                names.INFO_CAPTION_SEPARATOR: KEEP_TOKENS_SEPARATOR if settings.separator else None,
                names.INFO_CAPTION_LORA_TYPE: settings.lora_type,
                names.INFO_CAPTION_STYLE: caption_style(settings.base_model),
                names.INFO_CAPTION_TRIGGER: settings.trigger,
                names.INFO_CORE_TAGS: {str(k): v for k, v in result.core.items()},
                names.INFO_TOKEN_WARNINGS: result.warnings,
                names.INFO_UNTAGGED: sum(1 for t in tags.values() if not t),
                names.INFO_TAG_FILE_WARNINGS: tag_warnings,
            })
        return st.handle


def caption_info(ws: Workspace, handle: Handle) -> dict[str, Any]:
    """The nearest caption stage's info along ``handle``'s lineage ({} when never captioned)."""
    return ws.nearest_info(handle, names.INFO_CAPTION_KEEP_TOKENS)
