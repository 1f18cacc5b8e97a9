"""Load a UI-format workflow into ComfyUI's real front end: list missing node types, screenshot
it, and optionally run it from the UI (as if the user pressed Run) and frame the node that shows
preview images in the screenshot.

    python scripts/check_workflow_ui.py example_workflows/video_to_kohya_dataset.json \
        --url http://127.0.0.1:8188 --screenshot preview.png --run

Exit status: 0 when every node type is known (and, with --run, the run succeeded and a node
shows preview images), 2 for missing node types, 3 for a failed run, 4 for no preview shown.
Same requirements as api_to_ui.py (node, playwright-core, Chromium, a running ComfyUI).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_to_ui import common_arguments, front_end_options, run_front_end  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workflow", type=Path, help="UI-format workflow JSON")
    parser.add_argument("--screenshot", type=Path, required=True, help="PNG to write")
    parser.add_argument("--run", action="store_true", help="queue it from the UI and wait")
    parser.add_argument("--timeout", type=int, default=600, help="seconds to wait for the run")
    common_arguments(parser)
    args = parser.parse_args(argv)
    options = front_end_options(args) | {"workflow": str(args.workflow.resolve()),
                                         "screenshot": str(args.screenshot.resolve()),
                                         "timeout": str(args.timeout)}
    report = run_front_end("check", options, ["run"] if args.run else [], timeout=args.timeout + 300)
    print(f"{args.workflow}: {report['nodeCount']} nodes; missing node types: {report['missingNodeTypes'] or 'none'}")
    if report["missingNodeTypes"]:
        return 2
    if not args.run:
        print(f"screenshot: {args.screenshot}")
        return 0
    status = report["history"]["status"]
    print(f"run {report['history']['prompt_id']}: {status.get('status_str')}")
    if status.get("status_str") != "success":
        errors = [m for m in status.get("messages", []) if m[0] == "execution_error"]
        print(f"run failed: {errors}", file=sys.stderr)
        return 3
    preview = report.get("preview")
    if not preview:
        print("no node shows preview images after the run", file=sys.stderr)
        return 4
    print(f"node {preview['id']} ({preview['type']}) shows {preview['images']} preview image(s); "
          f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
