"""Write each model file's link into the example workflows, for ComfyUI's Missing Models dialog.

For every node of every ``example_workflows/*.json`` (UI format), the string widget values that
are model files the registry knows (``lora_foundry.models.links``) become the node's
``properties.models`` entries ``{name, url, directory}``, in widget order: the form ComfyUI's
templates use and front end 1.27.10 reads when a workflow opens. Entries for files a node no
longer names are dropped; nothing else in a file changes. Idempotent: rerun it after adding or
editing a workflow (``--check`` only reports which files would change, exit 1 if any).

    python scripts/embed_model_links.py [--check] [files...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from lora_foundry.fileio import atomic_write_text  # noqa: E402
from lora_foundry.models.links import ModelLink, model_links  # noqa: E402


def node_links(node: dict[str, Any], links: dict[str, ModelLink]) -> list[dict[str, str]]:
    """The entries a node should carry: one per widget value that is a known model file."""
    values = node.get("widgets_values") or []
    if isinstance(values, dict):
        values = list(values.values())
    named = [value for value in values if isinstance(value, str) and value in links]
    return [links[name].as_dict() for name in dict.fromkeys(named)]


def embed(workflow: dict[str, Any], links: dict[str, ModelLink]) -> dict[str, Any]:
    """The workflow with every node's ``properties.models`` set from ``links`` (in place)."""
    for node in workflow.get("nodes", []):
        entries = node_links(node, links)
        properties = node.setdefault("properties", {})
        if entries:
            properties["models"] = entries
        else:
            properties.pop("models", None)
    return workflow


def _indent(text: str) -> int | None:
    """The indent the file was written with, so a rewrite changes only what it must."""
    second = text.split("\n", 2)[1] if text.count("\n") >= 2 else ""
    return len(second) - len(second.lstrip(" ")) or None


def rewrite(path: Path, links: dict[str, ModelLink], check: bool) -> bool:
    """Embed the links in one file; True when its content changed (or would, with ``check``)."""
    text = path.read_text(encoding="utf-8")
    workflow = embed(json.loads(text), links)
    updated = json.dumps(workflow, indent=_indent(text), ensure_ascii=False) + ("\n" if text.endswith("\n") else "")
    if updated == text:
        return False
    if not check:
        atomic_write_text(path, updated)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="workflows (default: example_workflows/*.json)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    files = args.files or sorted((REPO / "example_workflows").glob("*.json"))
    links = model_links()
    changed = [path for path in files if rewrite(path, links, args.check)]
    for path in changed:
        print(f"{'out of date' if args.check else 'updated'}: {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
