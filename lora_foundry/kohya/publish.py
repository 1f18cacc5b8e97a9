"""Publishing a trained LoRA into the loras folder, and the one refusal of a name already published.

Every trainer ends here: kohya (``train_config.plan_run``), LECO through sd-scripts
(``leco_route.plan_leco``) and built in (``leco.checkpoints.RunFiles``), musubi
(``musubi.launcher.train_video_lora``, before any step) and the tuner's best-trial copy (``tune_report.publish_best``).
A merged LoRA and the built-in trainer's final save (``lora.files.write_lora``) are refused here too.
They once each wrote the check themselves, with two error types (a ``PreflightError`` the tuner
turns into one failed trial, a ``FileExistsError`` it did not catch) and four wordings. The refusal
is made only here (``tests/test_owner_rules_files.py`` holds it)."""

from __future__ import annotations

from pathlib import Path

from ..fileio import atomic_copy
from ..paths import confined, safe_name
from .preflight import PreflightError


class PublishedError(PreflightError, FileExistsError):
    """A LoRA of that name is already published. Both kinds at once so every caller's except-clause
    keeps working: the tuner fails one trial on a ``PreflightError`` (it does not stop the study),
    and code that protects files catches ``FileExistsError``."""


def published_path(loras_dir: Path, output_name: str) -> Path:
    """Where a LoRA called ``output_name`` (a plain name from a workflow, never a path) is published."""
    return confined(loras_dir, f"{safe_name(output_name, 'output name')}.safetensors")


def refuse_published(dst: Path, replace_option: str = "", kept: Path | None = None) -> None:
    """Refuse a LoRA name already published, before any training: found after hours of training,
    the clash would leave the new LoRA only in its run folder. ``replace_option`` names the input
    that would replace it, for a trainer that has one (the built-in LECO trainer's ``overwrite``);
    ``kept`` is where a LoRA trained meanwhile stays (the name was published while it trained)."""
    if dst.exists():
        also = f" or turn {replace_option} on" if replace_option else ""
        where = f"; this run's LoRA is kept at {kept}: copy it under another name" if kept is not None else ""
        raise PublishedError(f"a LoRA named {dst.name} already exists in {dst.parent}; choose another output "
                             f"name{also}{where}")


def publish_lora(src: Path, dst: Path, replace_existing: bool) -> Path:
    """Copy the verified LoRA into the loras folder atomically (temp file + rename); a name published
    while it trained is refused saying where the LoRA stays (``src``, in its run folder)."""
    if not replace_existing:
        refuse_published(dst, kept=src)
    return atomic_copy(src, dst)
