"""The README's first command on a fresh clone, with nothing beside it (run by tests/test_fresh_clone.py).

Clones this repository (its committed HEAD) into a temp folder of its own, where no ``../shared``
sits beside the clone, runs the first ```bash block of the clone's README exactly as written with
bash in the clone's root, and checks the dataset it wrote: images with a caption each, the
sd-scripts ``dataset.toml``, and the example clip's six shots. The temp folder is removed after.

The command is run as written, so it makes its own venv and ``pip install -e .`` there (about
30 s with pip's cache): reusing the test venv would not show that the package installs and ships
its example clip. Exit 0 when the dataset is right, 1 with the reason otherwise.

    python scripts/fresh_clone_check.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
EXPECTED_SHOTS = 6  # lora_foundry/data/README.md: six shots, hard cuts at 4, 8, 12, 15 and 18 s


def first_command(readme: str) -> str:
    """The first ```bash block of the README, as a user would copy it."""
    found = re.search(r"```bash\n(.*?)```", readme, flags=re.DOTALL)
    if found is None:
        raise ValueError("the README has no ```bash block")
    return found.group(1).strip()


def clone(into: Path) -> Path:
    target = into / "lora_foundry"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=300)
    return target


def dataset_problems(checkout: Path, stdout: str) -> list[str]:
    """What is wrong with the dataset the demo reports on its last line (nothing when it is right)."""
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return [f"the last line of the output is not the demo's JSON result:\n{stdout[-1000:]}"]
    dataset = Path(result["dataset"])
    problems = [] if dataset.is_relative_to(checkout / "out") else [f"dataset {dataset} is not under ./out"]
    images = sorted(p for p in (dataset / "img").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images or result["images"] != len(images):
        problems.append(f"reported {result['images']} images, found {len(images)} in {dataset / 'img'}")
    problems += [f"{p.name} has no caption" for p in images if not p.with_suffix(".txt").read_text().strip()]
    if not (dataset / "dataset.toml").is_file():
        problems.append("no dataset.toml")
    if f"({EXPECTED_SHOTS} shots)" not in stdout:
        problems.append(f"the demo did not find the example clip's {EXPECTED_SHOTS} shots:\n{stdout[-1000:]}")
    return problems


def check(keep: bool = False) -> list[str]:
    """Run the check; the problems found (empty when the README's first command works)."""
    temp = Path(tempfile.mkdtemp(prefix="lf_fresh_clone_"))
    try:
        checkout = clone(temp)
        if (checkout.parent / "shared").exists():
            return [f"{checkout.parent / 'shared'} exists beside the clone"]
        command = first_command((checkout / "README.md").read_text(encoding="utf-8"))
        print(f"in {checkout}: {command}", flush=True)
        done = subprocess.run(["bash", "-c", command], cwd=checkout, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            return [f"exit {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"]
        print(done.stdout, flush=True)
        return dataset_problems(checkout, done.stdout)
    finally:
        if keep:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp folder for a look")
    problems = check(parser.parse_args(argv).keep)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if not problems:
        print("ok: the README's first command wrote a dataset on a fresh clone")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
