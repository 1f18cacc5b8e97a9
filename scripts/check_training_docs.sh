#!/usr/bin/env bash
# Follow docs/training.md and docs/leco.md literally, in a temp folder: every ```sh block of the two
# files (the paste-able ones; ```bash/```text blocks are illustrations) runs in order in one bash, as
# an operator would paste them: training.md's setup section, then its other ```sh blocks, then
# leco.md's. The setup ends with `doctor`; leco.md's blocks write the upstream-docs slider TOML with a
# neutral prompt file and train it through `train-leco` (dry run, then a real run), so the script
# fails unless the install works and the LoRA lands where ComfyUI lists it.
#
# The pack is put in a throwaway ComfyUI layout (<tmp>/ComfyUI/custom_nodes/lora_foundry -> this
# repo, models/checkpoints/, output/) so the CLI's "inside a ComfyUI install" behaviour is what runs.
#
# Gated on a local sd-scripts copy (it installs into a temp folder: minutes, gigabytes):
#   KOHYA_SD_SCRIPTS=/path/to/sd-scripts scripts/check_training_docs.sh
# Optional environment:
#   KOHYA_PYTHON      an existing venv's python for that sd-scripts (its venv is reused: the docs'
#                     "# torch" and "# requirements" blocks are then skipped, and said so)
#   LF_LECO_INSTALL   commands replacing leco.md's "# LECO pin" block (git fetch + checkout 063ef100);
#                     default for a copy that is not a git checkout: check it has train_leco.py
#   LF_TORCH_INSTALL  a command replacing the "# torch" block (which PyTorch build fits the machine)
#   LF_BASE_MODEL     the base model the walkthrough trains (copied into models/checkpoints/);
#                     without it only the setup section runs
#   LECO_STEPS        steps of the real LECO run (default 2); LECO_PRECISION its mixed precision (default no)
#   LF_LECO_RUN       commands replacing leco.md's "# LECO run" block (e.g. `true` on a machine where a
#                     512 px step takes too long); the LoRA is then not required
#   COMFY_PYTHON      the Python that runs ComfyUI (default: the python3 on PATH)
#   LF_KEEP=1         keep the temp folder (its path is printed) instead of deleting it
set -euo pipefail

if [[ -z "${KOHYA_SD_SCRIPTS:-}" && "${LF_CHECK_TRAINING_DOCS:-}" != "1" ]]; then
  echo "skipped: set KOHYA_SD_SCRIPTS to a local sd-scripts checkout (copied and installed into a temp folder)"
  exit 0
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d -t lf_training_docs.XXXXXX)"
cleanup() { if [[ "${LF_KEEP:-}" != "1" ]]; then rm -rf -- "$work"; else echo "kept: $work"; fi; }
trap cleanup EXIT

comfy="$work/ComfyUI"
mkdir -p "$comfy/custom_nodes" "$comfy/models/checkpoints" "$comfy/output"
touch "$comfy/main.py"
ln -s "$repo" "$comfy/custom_nodes/lora_foundry"

sd_install=""
if [[ -n "${KOHYA_SD_SCRIPTS:-}" ]]; then
  sd_install="cp -a \"$KOHYA_SD_SCRIPTS\" \"\$LF_WORK/sd-scripts\""
  if [[ -n "${KOHYA_PYTHON:-}" ]]; then
    # a wrapper, not a symlink: a linked python finds no pyvenv.cfg beside the link and runs without the venv
    sd_install+=$'\n'"mkdir -p \"\$LF_WORK/sd-scripts/venv/bin\" && printf '#!/bin/sh\\nexec %s \"\$@\"\\n' \"$KOHYA_PYTHON\" > \"\$LF_WORK/sd-scripts/venv/bin/python\" && chmod +x \"\$LF_WORK/sd-scripts/venv/bin/python\""
  fi
fi
leco_install="${LF_LECO_INSTALL:-}"
if [[ -z "$leco_install" && -n "${KOHYA_SD_SCRIPTS:-}" && ! -e "$KOHYA_SD_SCRIPTS/.git" ]]; then
  leco_install='test -f "$LF_WORK/sd-scripts/train_leco.py"'
fi

script="$work/steps.sh"
SD_INSTALL="$sd_install" LECO_INSTALL="$leco_install" REUSE_VENV="${KOHYA_PYTHON:+1}" \
WALKTHROUGH="${LF_BASE_MODEL:+1}" python3 - "$repo/docs/training.md" "$repo/docs/leco.md" "$script" <<'PY'
import os, re, sys
training, leco = (open(path, encoding="utf-8").read() for path in sys.argv[1:3])
out = sys.argv[3]
head, rest = training.split("<!-- setup:begin -->", 1)
setup, after = rest.split("<!-- setup:end -->", 1)
reuse = os.environ.get("REUSE_VENV") == "1"
replace = {
    "# sd-scripts": os.environ.get("SD_INSTALL"),
    "# torch": os.environ.get("LF_TORCH_INSTALL") or ("true  # reusing KOHYA_PYTHON's venv" if reuse else None),
    "# requirements": "true  # reusing KOHYA_PYTHON's venv" if reuse else None,
    "# LECO pin": os.environ.get("LECO_INSTALL"),
    "# LECO run": os.environ.get("LF_LECO_RUN"),
}
sources = [("training.md setup", setup)]
if os.environ.get("WALKTHROUGH") == "1":
    sources += [("training.md", after), ("leco.md", leco)]
steps, count = [], 0
for name, text in sources:
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        count += 1
        tag = block.lstrip().splitlines()[0].strip()
        if replace.get(tag):
            print(f"replaced on this machine: {name}'s block starting {tag!r}: {replace[tag]!r}")
            block = replace[tag] + "\n"
        steps.append(f"echo '--- {name}, block {count}'\n{block}")
open(out, "w", encoding="utf-8").write("set -euxo pipefail\n" + "\n".join(steps))
print(f"{count} blocks from {', '.join(n for n, _ in sources)}")
PY

export LF_WORK="$work/lora-training" LF_PACK="$comfy/custom_nodes/lora_foundry"
export COMFY_PYTHON="${COMFY_PYTHON:-$(command -v python3)}" LECO_STEPS="${LECO_STEPS:-2}"
export LECO_PRECISION="${LECO_PRECISION:-no}"
if [[ -n "${LF_BASE_MODEL:-}" ]]; then
  cp "$LF_BASE_MODEL" "$comfy/models/checkpoints/"
  export BASE_MODEL="$comfy/models/checkpoints/$(basename "$LF_BASE_MODEL")"
fi
# as an operator pastes them: only what the blocks export (KOHYA_PYTHON is this script's input, not theirs)
(cd "$work" && env -u KOHYA_SD_SCRIPTS -u KOHYA_PYTHON -u KOHYA_TOKENIZER_CACHE bash "$script")
if [[ -n "${LF_BASE_MODEL:-}" && -z "${LF_LECO_RUN:-}" ]]; then
  lora="$comfy/models/loras/lora_foundry/detail_slider.safetensors"
  test -f "$lora" || { echo "FAILED: the LECO walkthrough published no $lora"; exit 1; }
  echo "LECO walkthrough: $lora"
fi
echo "docs/training.md and docs/leco.md: OK in $LF_WORK"
