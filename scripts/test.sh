#!/usr/bin/env bash
# Install everything the tests need into ./.venv (or $LF_VENV) and run them.
# Works on a fresh machine with Python 3.11 and no GPU. Extra pytest arguments pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LF_VENV:-.venv}"
python="${PYTHON:-python3}"

if ! command -v ffmpeg >/dev/null 2>&1; then
  # Only bench/ingest.py and a few format tests use the ffmpeg command line; they skip without it.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg) >/dev/null 2>&1 \
      || echo "note: could not install ffmpeg; tests that need it will skip"
  fi
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
# torch is ComfyUI's to supply in real installs; the test environment needs its own.
"${pip[@]}" "torch>=2.5" "torchvision>=0.20"
"${pip[@]}" -r requirements.txt -e ".[models,test,tune,ray]"
# sam2 ships as source only; with torch installed it builds in seconds without CUDA.
"$venv/bin/python" -c "import sam2" 2>/dev/null || SAM2_BUILD_CUDA=0 "${pip[@]}" --no-build-isolation sam2
# rtmlib and facexlib without their opencv-python pins (we keep one headless OpenCV).
"$venv/bin/python" -c "import rtmlib, facexlib" 2>/dev/null || "${pip[@]}" --no-deps rtmlib facexlib

set +e
"$venv/bin/python" -m pytest tests "$@"
status=$?
set -e
[ "$status" = 5 ] && { echo "pytest collected no tests"; exit 1; }
exit "$status"
