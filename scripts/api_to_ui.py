"""Turn an API-format graph into a UI-format example workflow saved by ComfyUI's real front end.

Hand-written UI JSON drifts from what the front end writes (widget order, control widgets, link
tables, version fields), so the conversion is done by the front end itself: ``api_to_ui.js``
opens a running ComfyUI in headless Chromium, calls ``app.loadApiJson`` (which also lays the nodes
out left to right with ``graph.arrange()``) and returns ``app.graph.serialize()``.

This wrapper then checks the front end understood every input (its own ``graphToPrompt`` of the
loaded graph must give back the values we put in) and writes the workflow atomically, never over
an existing file unless ``--force``.

    python scripts/api_to_ui.py GRAPH.json --name video_to_kohya_dataset \
        --url http://127.0.0.1:8188 --node-modules /path/to/node_modules

Needs: a running ComfyUI with the pack installed, node, playwright-core (``npm install
playwright-core``; pass its node_modules folder with --node-modules or $LF_NODE_MODULES) and a
Chromium (``--chromium`` or $CHROMIUM_PATH, default /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
JS = SCRIPTS / "api_to_ui.js"


def run_front_end(mode: str, options: dict[str, str], flags: list[str] = (), timeout: float = 900) -> dict:
    """Run ``api_to_ui.js MODE`` and return its JSON report; raise with its stderr on failure."""
    command = ["node", str(JS), mode]
    for key, value in options.items():
        if value:
            command += [f"--{key}", str(value)]
    command += [f"--{flag}" for flag in flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode not in (0, 2) or not done.stdout.strip():
        raise RuntimeError(f"api_to_ui.js {mode} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def input_mismatches(api: dict[str, Any], prompt: dict[str, Any]) -> list[str]:
    """Inputs of ``api`` the front end's own prompt gives back differently (or not at all)."""
    problems = []
    for node_id, node in api.items():
        got = prompt.get(str(node_id), {}).get("inputs")
        if got is None:
            problems.append(f"node {node_id} ({node['class_type']}) is not in the front end's prompt")
            continue
        for name, value in node.get("inputs", {}).items():
            if name == "control_after_generate":  # a front-end-only widget, never sent
                continue
            if isinstance(value, list):
                value = [str(value[0]), value[1]]
            if name not in got or got[name] != value:
                problems.append(f"node {node_id} input {name!r}: sent {value!r}, front end has {got.get(name)!r}")
    return problems


def write_atomically(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temp, path)


def front_end_options(args: argparse.Namespace) -> dict[str, str]:
    return {"url": args.url, "node-modules": args.node_modules or os.environ.get("LF_NODE_MODULES", ""),
            "chromium": args.chromium or os.environ.get("CHROMIUM_PATH", "")}


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8188", help="a running ComfyUI")
    parser.add_argument("--node-modules", help="folder holding playwright-core ($LF_NODE_MODULES)")
    parser.add_argument("--chromium", help="Chromium executable ($CHROMIUM_PATH, default /usr/bin/chromium)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("graph", type=Path, help="API-format graph JSON")
    parser.add_argument("--name", help="workflow name (default: the graph's file name)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "example_workflows")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the loaded graph")
    parser.add_argument("--force", action="store_true", help="replace an existing workflow")
    common_arguments(parser)
    args = parser.parse_args(argv)
    api = json.loads(args.graph.read_text(encoding="utf-8"))
    options = front_end_options(args) | {"api": str(args.graph.resolve()),
                                         "screenshot": str(args.screenshot or "")}
    report = run_front_end("convert", options)
    if report["missingNodeTypes"]:
        print(f"missing node types (is the pack installed?): {report['missingNodeTypes']}", file=sys.stderr)
        return 2
    mismatches = input_mismatches(api, report["prompt"])
    if mismatches:
        print("the front end did not take these inputs:\n  " + "\n  ".join(mismatches), file=sys.stderr)
        return 3
    target = args.out_dir / f"{args.name or args.graph.stem}.json"
    write_atomically(target, json.dumps(report["workflow"], indent=2) + "\n", args.force)
    print(f"wrote {target} ({report['nodeCount']} nodes, no missing node types)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
