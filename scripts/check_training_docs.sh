#!/usr/bin/env bash
# Follow docs/training.md literally, on this machine, in a temp folder: every ```sh block of its
# setup section (between "<!-- setup:begin -->" and "<!-- setup:end -->") runs in order in one
# bash, as an operator would paste them. The last block runs `lora-foundry doctor`, so the script
# fails unless the install it made is complete.
#
# Gated like the other real-engine checks: it installs sd-scripts and its requirements (minutes,
# gigabytes), so it runs only with LF_CHECK_TRAINING_DOCS=1.
#
#   LF_CHECK_TRAINING_DOCS=1 scripts/check_training_docs.sh
# Optional environment:
#   LF_SD_SCRIPTS_INSTALL  commands replacing the docs' block that starts with "# sd-scripts"
#                     (clone + checkout + venv), for a machine that cannot reach GitHub
#   LF_TORCH_INSTALL  a command replacing the docs' block that starts with "# torch" (the one
#                     machine-specific step: which PyTorch build fits the machine)
#   COMFY_PYTHON      the Python that runs ComfyUI (default: the python3 on PATH)
#   LF_KEEP=1         keep the temp folder (its path is printed) instead of deleting it
set -euo pipefail

if [[ "${LF_CHECK_TRAINING_DOCS:-}" != "1" ]]; then
  echo "skipped: set LF_CHECK_TRAINING_DOCS=1 (installs sd-scripts into a temp folder)"
  exit 0
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d -t lf_training_docs.XXXXXX)"
cleanup() { if [[ "${LF_KEEP:-}" != "1" ]]; then rm -rf -- "$work"; else echo "kept: $work"; fi; }
trap cleanup EXIT

script="$work/steps.sh"
python3 - "$repo/docs/training.md" "$script" <<'EOF'
import os, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
setup = text.split("<!-- setup:begin -->", 1)[1].split("<!-- setup:end -->", 1)[0]
blocks = re.findall(r"```sh\n(.*?)```", setup, flags=re.S)
replace = {"# torch": os.environ.get("LF_TORCH_INSTALL"), "# sd-scripts": os.environ.get("LF_SD_SCRIPTS_INSTALL")}
steps = []
for block in blocks:
    tag = block.lstrip().splitlines()[0].strip()
    if replace.get(tag):
        print(f"replaced on this machine: the block starting {tag!r}")
        block = replace[tag] + "\n"
    steps.append(block)
open(sys.argv[2], "w", encoding="utf-8").write("set -euxo pipefail\n" + "\n".join(steps))
print(f"{len(blocks)} blocks from the setup section of docs/training.md")
EOF

export LF_WORK="$work/lora-training" LF_PACK="$repo" COMFY_PYTHON="${COMFY_PYTHON:-$(command -v python3)}"
bash "$script"
echo "docs/training.md setup: OK in $LF_WORK"
