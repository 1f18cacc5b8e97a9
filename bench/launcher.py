"""What the launcher itself costs: its own CPU time, and the latency it adds to each step's report.

Comparing a launched run's steps/s with a direct run's cannot show a 2 % overhead on a shared
2-core machine, where identical direct runs of sd-scripts vary 0.5-3.4 steps/s (FIELD_NOTES). The
launcher's costs are measured directly instead:

1. Latency and CPU per step (always runs): a synthetic trainer prints sd-scripts' tqdm output
   (two redraws per step, the checkpoint line, the layout of tests/data/sd_scripts_tqdm_excerpt.log)
   with the system-wide monotonic clock written as each redraw's tqdm rate (``<t>s/it``, so the
   parser's ``steps_per_s`` is ``1/t``); the launcher's ``on_event`` sees
   each step ``now - printed_at`` later (pipe + reader thread + queue + parsing). The launcher
   process's CPU time (``getrusage(RUSAGE_SELF)``, all its threads) over the run, divided by steps.
2. CPU ratio on real sd-scripts (needs KOHYA_SD_SCRIPTS, KOHYA_TOKENIZER_CACHE and a base model):
   one run through the launcher; launcher CPU (RUSAGE_SELF) against the trainer's CPU
   (RUSAGE_CHILDREN: sd-scripts and the children it waited for).

  python bench/launcher.py [--steps 2000] [--step-ms 5]
  KOHYA_SD_SCRIPTS=... KOHYA_TOKENIZER_CACHE=... python bench/launcher.py --real BASE.safetensors [--real-steps 8]
Optional operator wrapper for the real run (e.g. a tiny-UNet shim): --python-arg SHIM.py, --env KEY=VALUE.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from lora_foundry.kohya import presets, train_config
from lora_foundry.kohya.launcher import LaunchSpec, run_training
from lora_foundry.kohya.log_parse import StepEvent
from lora_foundry.kohya.operator_config import load_trainer_install

SYNTHETIC = r'''
import os, sys, time
total, pause = int(sys.argv[1]), float(sys.argv[2])
loss = 0.15
for step in range(1, total + 1):
    time.sleep(pause)
    for postfix in (f"avr_loss={loss:.3g}", None):
        if postfix is None:
            loss = 0.1 + 0.05 / step
            postfix = f"avr_loss={loss:.3g}"
        sent = time.monotonic()
        sys.stderr.write(f"\rsteps: {100 * step // total:3d}%|{'#' * (10 * step // total):<10}| {step}/{total} "
                         f"[00:10<00:10, {sent:.6f}s/it, {postfix}]")
        sys.stderr.flush()
    if step % 500 == 0:
        print(f"\nsaving checkpoint: /nowhere/step{step}.safetensors", flush=True)
open(sys.argv[3], "wb").close()
'''


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def synthetic(root: Path, steps: int, step_ms: float) -> None:
    """Latency from the trainer's print to our event, and launcher CPU per step."""
    out = root / "synthetic.safetensors"
    spec = LaunchSpec(argv=(sys.executable, "-c", SYNTHETIC, str(steps), str(step_ms / 1000), str(out)),
                      cwd=root, env={"PATH": os.environ.get("PATH", "")}, output_file=out,
                      log_path=root / "synthetic.log", loss_path=root / "synthetic.loss")
    latencies: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, StepEvent) and event.steps_per_s:
            latencies.append(time.monotonic() - 1.0 / event.steps_per_s)

    cpu0, wall0 = _cpu_self(), time.monotonic()
    try:
        run_training(spec, on_event=on_event)
    except Exception as exc:  # noqa: BLE001 - the empty output file is refused; the timing stands
        if "safetensors" not in str(exc) and "no tensors" not in str(exc):
            raise
    cpu, wall = _cpu_self() - cpu0, time.monotonic() - wall0
    latencies.sort()
    print(f"synthetic trainer: {steps} steps ({2 * steps} tqdm redraws) in {wall:.1f} s; launcher CPU "
          f"{cpu:.2f} s = {1000 * cpu / steps:.3f} ms per step; added latency per redraw median "
          f"{1000 * statistics.median(latencies):.2f} ms, p95 {1000 * latencies[int(0.95 * len(latencies))]:.2f} ms, "
          f"max {1000 * latencies[-1]:.1f} ms (n={len(latencies)})", flush=True)


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


def real(root: Path, args: argparse.Namespace) -> None:
    """Launcher CPU against sd-scripts' CPU over one real run."""
    install = load_trainer_install(None)
    extra_env = dict(item.split("=", 1) for item in args.env)
    install = dataclasses.replace(install, python_args=tuple(args.python_arg), env={**install.env, **extra_env})
    dataset = make_dataset(root / "dataset")
    preset = presets.get_preset("sd15", "character").with_overrides(
        max_train_steps=args.real_steps, resolution=64, network_dim=4, mixed_precision="no")
    request = train_config.TrainRequest(
        architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml", base_model=args.real,
        output_name="bench", preset=preset, extra_options={"network_train_unet_only": True})
    plan = train_config.plan_run(request, install, root / "runs", root / "loras")
    self0, child0, wall0 = _cpu_self(), _cpu_children(), time.monotonic()
    result = run_training(plan.spec)
    ours, theirs = _cpu_self() - self0, _cpu_children() - child0
    print(f"real sd-scripts: {result.steps_done} steps in {time.monotonic() - wall0:.1f} s; launcher CPU {ours:.2f} s, "
          f"trainer CPU {theirs:.1f} s; launcher/trainer CPU ratio = {ours / theirs:.5f} "
          f"({100 * ours / theirs:.3f} %); load average {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="synthetic steps")
    parser.add_argument("--step-ms", type=float, default=5.0, help="synthetic time per step")
    parser.add_argument("--real", type=Path, help="base model: also measure a real sd-scripts run")
    parser.add_argument("--real-steps", type=int, default=8)
    parser.add_argument("--python-arg", action="append", default=[])
    parser.add_argument("--env", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lf_bench_") as tmp:
        synthetic(Path(tmp), args.steps, args.step_ms)
        if args.real is None:
            print("real sd-scripts ratio: skipped (give --real BASE.safetensors with KOHYA_SD_SCRIPTS set)")
        elif not os.environ.get("KOHYA_SD_SCRIPTS"):
            print("real sd-scripts ratio: skipped (set KOHYA_SD_SCRIPTS and KOHYA_TOKENIZER_CACHE)")
        else:
            real(Path(tmp), args)


if __name__ == "__main__":
    sys.exit(main())
