"""``lora-foundry train``, ``doctor`` and ``tokenizers``: the kohya launcher from the command line.

``train`` goes through the same sequence as the ComfyUI node (``kohya.training.train_lora``:
presets, preflight, dry run, verified output), prints progress and one loss line per step, and
Ctrl-C cancels the run like the node's cancel (the trainer's whole process group is stopped,
checkpoints are kept and listed). Here the person typing is the operator, so paths are taken as
given; the install still comes from ``KOHYA_SD_SCRIPTS`` or trainer.json like the node's.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..kohya import presets, train_config
from ..kohya.doctor import FIX, PROBE_TIMEOUT_S, diagnose
from ..kohya.launcher import TrainingFailed
from ..kohya.log_parse import LossPoint
from ..kohya.operator_config import TrainerNotConfigured, load_trainer_install, validate_extra_options
from ..kohya.tokenizer_cache import build_clip_l, cache_status, missing_tokenizer_command
from ..kohya.training import TRAINING_DIR, describe, train_lora
from ..progress import PrintProgress
from . import locations


class _CtrlC:
    """Turns the first Ctrl-C into a cancel request the launcher polls; the second one aborts."""

    def __init__(self, trainer: str = "sd-scripts") -> None:
        self.requested = False
        self.trainer = trainer
        self._previous: Any = None

    def __enter__(self) -> _CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\ncancelling: stopping {self.trainer} (Ctrl-C again to abort at once)", file=sys.stderr, flush=True)


def _print_loss(event: object, name: str = "avr_loss") -> None:
    """One line per step with its final loss (``avr_loss`` from train_network.py, ``loss`` from train_leco.py)."""
    if isinstance(event, LossPoint):
        print(f"step {event.step}/{event.total} {name} {event.loss:.4g}", flush=True)


def _request(args: argparse.Namespace) -> train_config.TrainRequest:
    preset = presets.get_preset(args.arch, args.type).with_overrides(
        max_train_steps=args.steps, learning_rate=args.lr, network_dim=args.rank, network_alpha=args.alpha,
        resolution=args.resolution)
    dataset_dir, dataset_toml = train_config.dataset_location(str(args.dataset))
    base = args.base_model.expanduser().resolve()
    if base.suffix.lower() != ".safetensors":
        raise train_config.PreflightError(f"base model {base} is not a .safetensors file (pickle formats are refused)")
    extras = {key: Path(value).expanduser().resolve() for key in ("clip_l", "clip_g", "t5xxl", "ae")
              if (value := getattr(args, key))}
    prompts = args.sample_prompts.read_text(encoding="utf-8") if args.sample_prompts else ""
    return train_config.TrainRequest(
        architecture=args.arch, dataset_dir=dataset_dir, dataset_toml=dataset_toml, base_model=base,
        output_name=args.name, preset=preset, variant=args.variant, seed=args.seed, extra_models=extras,
        extra_options=validate_extra_options("\n".join(args.option)), sample_prompts=prompts,
        save_every_n_steps=args.save_every, save_state=args.save_state)


def _reported(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Configuration and training failures end the command with their message, not a traceback."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (TrainerNotConfigured, TrainingFailed) as error:
            print(f"lora-foundry {args.command}: {error}", file=sys.stderr)
            return 1

    return wrapped


@_reported
def run_train(args: argparse.Namespace) -> int:
    install = load_trainer_install(locations.user_dir(args.user_dir))
    where = locations.outputs(args.out, args.loras_dir)
    print(where.note(), file=sys.stderr, flush=True)
    with _CtrlC() as ctrl_c:
        outcome = train_lora(_request(args), install, where.root.joinpath(*TRAINING_DIR), where.loras,
                             dry_run=args.dry_run, progress=PrintProgress("train"), on_event=_print_loss,
                             should_stop=lambda: ctrl_c.requested)
    print(describe(outcome), flush=True)
    return 130 if outcome.result is not None and outcome.result.status == "cancelled" else 0


@_reported
def run_doctor(args: argparse.Namespace) -> int:
    findings = diagnose(load_trainer_install(locations.user_dir(args.user_dir)), args.probe_timeout or None)
    for finding in findings:
        print(finding.line())
    return 1 if any(f.status == FIX for f in findings) else 0


def run_tokenizers(args: argparse.Namespace) -> int:
    cache = args.cache.expanduser().resolve()
    folder = build_clip_l(cache, args.bpe, replace=args.replace)
    print(f"OK   openai/clip-vit-large-patch14: {folder}")
    for model_id, problems in cache_status(cache).items():
        if model_id != "openai/clip-vit-large-patch14":
            print(f"OK   {model_id}" if not problems else
                  f"--   {model_id}: {'; '.join(problems)}. Where there is network: "
                  + missing_tokenizer_command(cache, model_id))
    print(f"set KOHYA_TOKENIZER_CACHE={cache} (or \"tokenizer_cache_dir\" in trainer.json)")
    return 0


def _add_train(commands: Any) -> None:
    train = commands.add_parser("train", help="train a LoRA with the configured sd-scripts (Ctrl-C cancels)")
    train.add_argument("dataset", type=Path, help="dataset folder (with dataset.toml) or the dataset.toml")
    train.add_argument("--base-model", type=Path, required=True, help="base model .safetensors")
    train.add_argument("--name", required=True, help="LoRA file name (plain name)")
    train.add_argument("--arch", default="sd15", choices=list(presets.ARCHITECTURES))
    train.add_argument("--type", default="character", choices=list(presets.LORA_TYPES), help="preset family")
    train.add_argument("--variant", default="lora", choices=list(train_config.VARIANTS))
    for flag, kind in (("--steps", int), ("--lr", float), ("--rank", int), ("--alpha", float), ("--resolution", int)):
        train.add_argument(flag, type=kind, default=0, help="0 = preset")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--save-every", type=int, default=0, help="save an intermediate LoRA every N steps")
    train.add_argument("--save-state", action="store_true")
    train.add_argument("--sample-prompts", type=Path, help="file with one sample prompt per line")
    for key in ("clip_l", "clip_g", "t5xxl", "ae"):
        train.add_argument(f"--{key.replace('_', '-')}", dest=key, help=f"{key} model file (Flux/SD3)")
    train.add_argument("--option", action="append", default=[], help="allow-listed sd-scripts option, 'key = value'")
    train.add_argument("--dry-run", action="store_true", help="write the TOMLs and the command, launch nothing")
    locations.add_output_arguments(train)
    train.set_defaults(run=run_train)


def add_commands(commands: Any) -> None:
    """Register ``train``, ``doctor`` and ``tokenizers`` on the main parser's subcommands."""
    _add_train(commands)
    doctor = commands.add_parser("doctor", help="check the configured sd-scripts install, line by line")
    doctor.add_argument("--user-dir", type=Path, help="ComfyUI user dir holding lora_foundry/trainer.json")
    doctor.add_argument("--probe-timeout", type=float, default=PROBE_TIMEOUT_S, metavar="SECONDS",
                        help="how long sd-scripts' Python may take to import torch before it counts as hung "
                        "(0 = wait as long as it takes)")
    doctor.set_defaults(run=run_doctor)
    tokenizers = commands.add_parser("tokenizers", help="build the offline CLIP-L tokenizer cache, check the others")
    tokenizers.add_argument("--cache", type=Path, required=True, help="the tokenizer cache folder")
    tokenizers.add_argument("--bpe", type=Path, help="CLIP's bpe_simple_vocab_16e6.txt.gz (default: open_clip's)")
    tokenizers.add_argument("--replace", action="store_true", help="rebuild an existing CLIP-L folder")
    tokenizers.set_defaults(run=run_tokenizers)
