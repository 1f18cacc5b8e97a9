"""``lora-foundry train-leco``: a LECO prompt TOML through the operator's kohya ``train_leco.py``.

The same route as the LF Kohya Train LECO node (``kohya.leco_route``): the LECO script is detected
(a clear message when sd-scripts is too old), a dry run writes the files and prints the command,
training prints one loss line per step, and Ctrl-C cancels like the node's cancel (checkpoints kept).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..kohya.leco_route import (
    ATTENTION,
    LECO_RUNS,
    LECO_SCRIPTS,
    PRECISIONS,
    LecoRequest,
    describe_leco,
    launch_leco,
    plan_leco,
)
from ..kohya.operator_config import load_trainer_install
from ..kohya.train_config import PreflightError
from ..kohya.training import TRAINING_DIR
from ..leco.train import LecoConfig
from ..progress import PrintProgress
from . import locations
from .training import _CtrlC, _print_loss, _reported


def _request(args: argparse.Namespace) -> LecoRequest:
    base = args.base_model.expanduser().resolve()
    if base.suffix.lower() != ".safetensors":
        raise PreflightError(f"base model {base} is not a .safetensors file (pickle formats are refused)")
    prompts_path = args.prompts.expanduser().resolve()
    training = LecoConfig(steps=args.steps, learning_rate=args.lr, seed=args.seed, save_every=args.save_every,
                          max_denoising_steps=args.max_denoising_steps, denoise_guidance=args.denoise_guidance,
                          min_snr_gamma=args.min_snr_gamma, noise_offset=args.noise_offset)
    return LecoRequest(architecture=args.architecture, base_model=base,
                       prompts_toml=prompts_path.read_text(encoding="utf-8"), output_name=args.name or args.prompts.stem,
                       rank=args.rank, alpha=args.alpha, training=training, mixed_precision=args.mixed_precision,
                       attention=args.attention, gradient_checkpointing=args.gradient_checkpointing,
                       zero_terminal_snr=args.zero_terminal_snr, prompts_dir=prompts_path.parent)


@_reported
def run_train_leco(args: argparse.Namespace) -> int:
    install = load_trainer_install(locations.user_dir(args.user_dir))
    where = locations.outputs(args.out, args.loras_dir)
    print(where.note(), file=sys.stderr, flush=True)
    plan = plan_leco(_request(args), install, where.root.joinpath(*TRAINING_DIR[:-1], LECO_RUNS), where.loras)
    if args.dry_run:
        print(describe_leco(None, plan), flush=True)
        return 0
    with _CtrlC() as ctrl_c:
        result = launch_leco(plan, PrintProgress("train-leco"), lambda e: _print_loss(e, "loss"),
                             lambda: ctrl_c.requested)
    print(describe_leco(result, plan), flush=True)
    return 130 if result.status == "cancelled" else 0


def add_commands(commands: Any) -> None:
    """Register ``train-leco`` on the main parser's subcommands."""
    leco = commands.add_parser("train-leco", help="train a LECO / slider LoRA from a prompt TOML with the configured "
                               "sd-scripts' train_leco.py (Ctrl-C cancels)")
    leco.add_argument("--prompts", type=Path, required=True, help="LECO prompt TOML (sd-scripts' --prompts_file)")
    leco.add_argument("--base-model", type=Path, required=True, help="base model .safetensors")
    leco.add_argument("--architecture", default="sd15", choices=list(LECO_SCRIPTS))
    leco.add_argument("--name", help="LoRA file name (plain name; default: the prompts file's name)")
    leco.add_argument("--steps", type=int, default=500)
    leco.add_argument("--lr", type=float, default=1e-4)
    leco.add_argument("--rank", type=int, default=4)
    leco.add_argument("--alpha", type=float, default=1.0)
    leco.add_argument("--seed", type=int, default=0)
    leco.add_argument("--save-every", type=int, default=0, help="save an intermediate LoRA every N steps")
    leco.add_argument("--max-denoising-steps", type=int, default=40)
    leco.add_argument("--denoise-guidance", type=float, default=3.0)
    leco.add_argument("--dry-run", action="store_true", help="write prompts.toml, run.toml and the command only")
    leco.add_argument("--mixed-precision", default="no", choices=list(PRECISIONS),
                      help="sd-scripts' mixed_precision (bf16/fp16 on a GPU that has them; no = fp32)")
    leco.add_argument("--attention", default="sdpa", choices=list(ATTENTION))
    leco.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True)
    leco.add_argument("--min-snr-gamma", type=float, default=0.0, help="0 = off")
    leco.add_argument("--noise-offset", type=float, default=0.0, help="0 = off")
    leco.add_argument("--zero-terminal-snr", action="store_true")
    locations.add_output_arguments(leco)
    leco.set_defaults(run=run_train_leco)
