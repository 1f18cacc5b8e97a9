"""Steps/s of sd-scripts through our launcher vs the same command run directly (goal: ratio >= 0.98).

Both runs use the identical argument list, working directory and environment from one dry-run
plan; the direct run writes its output to a file like a shell redirect would. Speed is sd-scripts'
own tqdm rate at the end of each run (smoothing=0: total elapsed / steps), read with the same
parser, so loading time is excluded and both sides are measured the same way. After one untimed warm-up run, pairs alternate
which side goes first (launcher-direct, direct-launcher, ...) and the ratio is the median of per-pair ratios, so slow
drifts in machine load (shared CPUs) cancel within a pair.

Needs KOHYA_SD_SCRIPTS (and KOHYA_TOKENIZER_CACHE) set, and a base model:
  KOHYA_SD_SCRIPTS=... KOHYA_TOKENIZER_CACHE=... python bench/launcher.py BASE.safetensors [--steps 20] [--pairs 2]
Optional operator wrapper (e.g. a tiny-UNet shim): --python-arg SHIM.py, --env KEY=VALUE.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from lora_foundry.kohya import presets, train_config
from lora_foundry.kohya.launcher import run_training
from lora_foundry.kohya.log_parse import LineSplitter, StepEvent, parse_line
from lora_foundry.kohya.operator_config import load_trainer_install


def make_dataset(root: Path, images: int = 4) -> Path:
    subset = root / "10_bench thing"
    subset.mkdir(parents=True)
    for i in range(images):
        Image.new("RGB", (64, 64), (60 * i % 255, 120, 200)).save(subset / f"{i:05d}.png")
        (subset / f"{i:05d}.txt").write_text("bench, thing\n")
    (root / "dataset.toml").write_text(
        f'[general]\ncaption_extension = ".txt"\n[[datasets]]\nresolution = 64\nbatch_size = 1\n'
        f'[[datasets.subsets]]\nimage_dir = "{subset}"\nnum_repeats = 10\n')
    return root


def final_rate(log_text: str) -> float:
    """sd-scripts' own steps/s at the last tqdm redraw of the run."""
    splitter, rate = LineSplitter(), None
    for line in splitter.feed(log_text.encode()) + splitter.flush():
        event = parse_line(line)
        if isinstance(event, StepEvent) and event.steps_per_s and event.done == event.total:
            rate = event.steps_per_s
    if rate is None:
        raise RuntimeError("no final step line in the log:\n" + log_text[-2000:])
    return rate


def run_direct(plan: train_config.RunPlan, log_path: Path) -> float:
    with open(log_path, "wb") as log:
        subprocess.run(list(plan.spec.argv), cwd=plan.spec.cwd, env=dict(plan.spec.env), stdout=log,  # noqa: S603
                       stderr=subprocess.STDOUT, check=True)
    plan.spec.output_file.unlink()
    return final_rate(log_path.read_text(encoding="utf-8", errors="replace"))


def run_launcher(plan: train_config.RunPlan) -> float:
    result = run_training(plan.spec)
    plan.spec.output_file.unlink()
    return final_rate(result.log_path.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_model", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--python-arg", action="append", default=[])
    parser.add_argument("--env", action="append", default=[])
    args = parser.parse_args()
    if not os.environ.get("KOHYA_SD_SCRIPTS"):
        print("skipped: set KOHYA_SD_SCRIPTS (and KOHYA_TOKENIZER_CACHE) to an sd-scripts install")
        return
    install = load_trainer_install(None)
    extra_env = dict(item.split("=", 1) for item in args.env)
    install = dataclasses.replace(install, python_args=tuple(args.python_arg), env={**install.env, **extra_env})
    with tempfile.TemporaryDirectory(prefix="lf_bench_") as tmp:
        root = Path(tmp)
        dataset = make_dataset(root / "dataset")
        preset = presets.get_preset("sd15", "character").with_overrides(
            max_train_steps=args.steps, resolution=64, network_dim=4, mixed_precision="no")
        request = train_config.TrainRequest(
            architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
            base_model=args.base_model, output_name="bench", preset=preset,
            extra_options={"network_train_unet_only": True})
        plan = train_config.plan_run(request, install, root / "runs", root / "loras", dry_run=True)
        ours, direct = [], []
        started = time.monotonic()
        run_direct(plan, root / "warmup.log")  # untimed: fills the page cache for both sides
        for pair in range(args.pairs):
            if pair % 2 == 0:  # alternate who goes first, so neither side always runs colder
                ours.append(run_launcher(plan))
                direct.append(run_direct(plan, root / f"direct_{pair}.log"))
            else:
                direct.append(run_direct(plan, root / f"direct_{pair}.log"))
                ours.append(run_launcher(plan))
            print(f"pair {pair + 1}: launcher {ours[-1]:.4f} steps/s, direct {direct[-1]:.4f} steps/s", flush=True)
    ratios = [a / b for a, b in zip(ours, direct, strict=True)]
    print(f"steps/s median: launcher {statistics.median(ours):.4f}, direct {statistics.median(direct):.4f}; "
          f"per-pair ratios {', '.join(f'{r:.3f}' for r in ratios)}; median ratio launcher/direct = "
          f"{statistics.median(ratios):.3f} (goal >= 0.98); {args.pairs} pairs x {args.steps} steps, "
          f"{time.monotonic() - started:.0f} s total; load average {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    sys.exit(main())
