"""``lora-foundry train-leco``: a LECO prompt TOML through the operator's kohya ``train_leco.py``.

The same route as the LF Kohya Train LECO node (``kohya.leco_route``): the LECO script is detected
(a clear message when sd-scripts is too old), a dry run writes the files and prints the command,
training prints one loss line per step, and Ctrl-C cancels like the node's cancel (checkpoints kept).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..kohya.leco_route import LECO_SCRIPTS, LecoRequest, describe_leco, launch_leco, plan_leco
from ..kohya.operator_config import load_trainer_install
from ..kohya.train_config import PreflightError
from ..leco.train import LecoConfig
from ..progress import PrintProgress
from .training import _CtrlC, _print_loss, _reported


def _request(args: argparse.Namespace) -> LecoRequest:
    base = args.base_model.expanduser().resolve()
    if base.suffix.lower() != ".safetensors":
        raise PreflightError(f"base model {base} is not a .safetensors file (pickle formats are refused)")
    prompts = args.prompts.expanduser().read_text(encoding="utf-8")
    training = LecoConfig(steps=args.steps, learning_rate=args.lr, seed=args.seed, save_every=args.save_every,
                          max_denoising_steps=args.max_denoising_steps, denoise_guidance=args.denoise_guidance)
    return LecoRequest(architecture=args.architecture, base_model=base, prompts_toml=prompts,
                       output_name=args.name or args.prompts.stem, rank=args.rank, alpha=args.alpha,
                       training=training)


@_reported
def run_train_leco(args: argparse.Namespace) -> int:
    install = load_trainer_install(args.user_dir)
    out = args.out.resolve()
    spec, final = plan_leco(_request(args), install, out / "leco_training", out / "loras")
    if args.dry_run:
        print(describe_leco(None, spec), flush=True)
        return 0
    with _CtrlC() as ctrl_c:
        result = launch_leco(spec, final, PrintProgress("train-leco"), _print_loss, lambda: ctrl_c.requested)
    print(describe_leco(result, spec), flush=True)
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
    leco.add_argument("--out", type=Path, default=Path("out"), help="output root (runs and loras/, default ./out)")
    leco.add_argument("--user-dir", type=Path, help="ComfyUI user dir holding lora_foundry/trainer.json")
    leco.set_defaults(run=run_train_leco)
