"""LECO nodes: build a prompt set from widgets, and train a LECO / slider LoRA inside the graph.

The prompt set is sd-scripts' ``--prompts_file`` TOML (lora_foundry/leco/prompts.py), so the same
text can go to kohya's ``train_leco.py``. Training runs on the graph's MODEL and CLIP through
nodes/_comfy_leco.py (imported only when a node runs: it imports ComfyUI and torch).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..lora_foundry.fileio import atomic_write_text
from ..lora_foundry.leco import checkpoints, memory, presets, prompt_set, train, weight_network
from ..lora_foundry.leco.prompts import PromptSetting, read_prompt_set
from ..lora_foundry.lora.stack import StackEntry
from ..lora_foundry.progress import StepClock, format_duration
from . import _comfy
from ._declare import boolean, choice, integer, logger, mappings, node, number, socket, text
from .training import LOSS_EVENT, loras_dir

SAVE_DTYPES = ("fp16", "bf16", "fp32")
TOML_INPUT = socket("STRING", "LECO prompt set: sd-scripts' --prompts_file TOML (from LF LECO Prompts).",
                    forceInput=True)


@node("LF_LECOPrompts", "LF LECO Prompts", category="training", function="build",
      outputs=[("STRING", "prompts_toml"), ("STRING", "summary")],
      inputs={
          "mode": choice(prompt_set.MODES, "erase / enhance a concept, or a slider between two."),
          "target": text("erase/enhance: the prompt whose meaning changes (e.g. 'van gogh'); slider: the class the "
                         "slider acts on (e.g. 'person').", "van gogh"),
          "positive": text("The concept to erase/enhance (empty = the target itself); slider: the +strength side "
                           "(e.g. 'old person').", ""),
          "negative": text("Slider only: the -strength side (e.g. 'young person'). Empty = one-sided slider.", ""),
          "neutral": text("Prompt the target is measured against (empty = the unconditional prompt).", ""),
          "guidance_scale": number("How far to push: the target moves g × (positive − unconditional).",
                                   1.0, 0.0, 20.0, 0.1),
          "resolution": integer("Training size of the generated latents (square).", 512, 64, 2048, 64),
          "batch_size": integer("Images per step for this setting.", 1, 1, 16),
          "multiplier": number("LoRA strength this setting trains at (sliders also train at -multiplier).",
                               1.0, 0.05, 4.0, 0.05),
          "weight": number("Loss weight of this setting among the others.", 1.0, 0.0, 10.0, 0.1),
      },
      optional={"prompts_toml": socket("STRING", "A prompt set to append this setting to.", forceInput=True)})
class LECOPrompts:
    """Builds a LECO prompt set (kohya sd-scripts' --prompts_file TOML, usable with train_leco.py too).
    erase: the target prompt stops producing the concept; enhance: it produces more of it; slider: one
    LoRA that moves target_class toward 'positive' at +strength and toward 'negative' at -strength.
    Chain builders to train several settings into one LoRA."""

    def build(self, mode: str, target: str, positive: str, negative: str, neutral: str, guidance_scale: float,
              resolution: int, batch_size: int, multiplier: float, weight: float, prompts_toml: str = "",
              unique_id: str | None = None) -> tuple[str, str]:
        item = prompt_set.PromptItem(mode, target, positive, negative, neutral, guidance_scale, resolution,
                                     batch_size, multiplier, weight)
        toml_text, settings = prompt_set.build_prompt_toml(item, prompts_toml or "")
        return toml_text, summarize(settings)


def summarize(settings: list[PromptSetting]) -> str:
    lines = [f"{len(settings)} training settings:"]
    lines += [f"- {s.action} '{s.target}' by '{s.positive}' vs '{s.unconditional}' (neutral '{s.neutral}') "
              f"g={s.guidance_scale:g} at {s.multiplier:+g}, {s.resolution[1]}×{s.resolution[0]}" for s in settings[:12]]
    return "\n".join(lines)


@node("LF_TrainLECO", "LF Train LECO", category="training", function="train", output_node=True,
      outputs=[("LORA_STACK", "lora_stack"), ("STRING", "lora_name"), ("STRING", "report")],
      inputs={
          "model": socket("MODEL", "The diffusion model to train a LoRA for (SD1.x, SDXL, ...)."),
          "clip": socket("CLIP", "Its text encoder: encodes the prompts (it is not trained)."),
          "prompts_toml": TOML_INPUT,
          "name": text("LoRA file name (plain name): models/loras/lora_foundry/<name>.safetensors.", "my_leco"),
          "steps": integer("Training steps.", 500, 1, 100000),
          "learning_rate": number("AdamW learning rate.", 1e-4, 1e-6, 1e-1, 1e-5, round=False),
          "rank": integer("LoRA rank (network_dim).", 4, 1, 256),
          "alpha": number("LoRA alpha (network_alpha); the update is scaled by alpha/rank.", 1.0, 0.01, 256.0),
          "max_denoising_steps": integer("Partial-denoise schedule length (sd-scripts' max_denoising_steps).",
                                         40, 2, 200),
          "denoise_guidance": number("CFG of the partial denoise (sd-scripts' leco_denoise_guidance_scale).",
                                     3.0, 1.0, 20.0, 0.1),
          "seed": integer("Seed: the same seed and settings give the same LoRA.", 0, 0, 2**32 - 1),
          "save_every": integer("Save a checkpoint every N steps (kept on cancel; resume starts there); 0 = only "
                                "at the end.", 50, 0, 100000),
          "resume": boolean("Continue from this name's last checkpoint when its settings match.", True),
          "overwrite": boolean("Replace an existing LoRA with this name.", False),
          "dtype": choice(SAVE_DTYPES, "Precision of the saved weights.", "fp16"),
          "gradient_checkpointing": boolean("Recompute the model's blocks in backward instead of keeping their "
                                            "activations: less memory, slower steps (where ComfyUI allows).",
                                            True),
      },
      optional={
          "preset": choice(presets.PRESETS, "full: train with the steps above and the prompt set's resolutions. "
                           f"quick: {presets.QUICK_STEPS} steps at {presets.QUICK_SIZE} px, saved as "
                           f"<name>{presets.QUICK_SUFFIX}: see the whole loop work in about a minute on a CPU, "
                           "then switch to full.", presets.FULL),
          "denoise_gradients": boolean("Off: the partial denoise runs without gradients, as in the original LECO "
                                       "(less memory). On: the loss also backpropagates through it, as sd-scripts' "
                                       "train_leco.py does (more memory, slower).", False),
          "min_snr_gamma": number("Min-SNR-gamma loss weighting (0 = off).", 0.0, 0.0, 20.0, 0.5),
          "noise_offset": number("Noise offset added per channel to the starting noise (0 = off).",
                                 0.0, 0.0, 1.0, 0.01),
      })
class TrainLECO:
    """Trains a LECO or concept-slider LoRA from prompts alone, on this graph's MODEL and CLIP (no
    dataset), with ComfyUI's own LoRA adapters and samplers. Saves a kohya-format LoRA with ss_leco_*
    metadata in models/loras/lora_foundry/, checkpoints every N steps (cancel keeps the last; re-queue
    resumes it). Refuses a batch/resolution that cannot fit in memory and says what would."""

    def train(self, model: Any, clip: Any, prompts_toml: str, name: str, steps: int, learning_rate: float,
              rank: int, alpha: float, max_denoising_steps: int, denoise_guidance: float, seed: int,
              save_every: int, resume: bool, overwrite: bool, dtype: str, gradient_checkpointing: bool = True,
              preset: str = presets.FULL, denoise_gradients: bool = False, min_snr_gamma: float = 0.0,
              noise_offset: float = 0.0, unique_id: str | None = None) -> dict[str, Any]:
        from . import _comfy_leco

        prompt_set = read_prompt_set(prompts_toml, "prompts_toml", None, _comfy.read_roots())
        settings = supported_here(prompt_set.settings)
        name, steps, settings = presets.apply_preset(preset, name, steps, settings)
        config = train.LecoConfig(steps=steps, learning_rate=learning_rate, max_denoising_steps=max_denoising_steps,
                                  denoise_guidance=denoise_guidance, seed=seed, save_every=save_every, resume=resume,
                                  denoise_gradients=denoise_gradients, min_snr_gamma=min_snr_gamma,
                                  noise_offset=noise_offset)
        with weight_network.training_mode():
            network = _comfy_leco.lora_network(model, rank, alpha, seed)
            need = _check_memory(_comfy_leco, model, network, settings)
            files = _run_files(name, settings, network, config, dtype, overwrite,
                               _comfy_leco.base_model_version(model))
            files.check_can_start(resume)
            atomic_write_text(files.folder / f"{files.stem}.toml", prompts_toml)
            conds = _comfy_leco.encode_prompts(clip, [p for s in settings for p in s.prompts()])
            patcher = network.host.patcher
            backend = _comfy_leco.ComfyBackend(patcher, conds, _comfy.check_interrupt)
            with weight_network.gradient_checkpointing(network.host.diffusion_model,
                                                       _comfy_leco.checkpoint_helpers(),
                                                       gradient_checkpointing) as checkpointing:
                result = train.train_leco(backend, network, settings, config, files,
                                          _comfy.ComfyProgress(unique_id), _LossEvents(unique_id, steps))
        path = files.save_final(network, result.steps_done)
        lora_name = f"{path.parent.name}/{path.name}"
        report = "\n".join([_report(result, path, len(settings), need), f"gradient checkpointing: {checkpointing}",
                            f"partial denoise: {'with' if denoise_gradients else 'without'} gradients",
                            *(f"WARNING: {w}" for w in prompt_set.warnings)])
        kind = "slider" if any(s.multiplier < 0 for s in settings) else "leco"
        stack = [StackEntry(lora_name, 1.0, 0.0, kind)]
        return {"ui": {"text": [report]}, "result": (stack, lora_name, report)}


def supported_here(settings: list[PromptSetting]) -> list[PromptSetting]:
    """Refuse what this trainer does not do rather than ignore it: ``dynamic_crops`` randomises SDXL's
    crop conditioning per step in sdxl_train_leco.py; here the conditioning is encoded once."""
    if any(s.dynamic_crops for s in settings):
        raise ValueError("dynamic_crops = true is not supported by LF Train LECO (it encodes the SDXL size "
                         "conditioning once, without random crops): remove it, or train this prompt set with LF "
                         "Kohya Train LECO (sdxl_train_leco.py)")
    return settings


def _check_memory(bridge: Any, model: Any, network: Any, settings: list[PromptSetting]) -> int:
    """Refuse the largest setting's batch and size when they cannot fit (see leco/memory.py)."""
    largest = max(settings, key=lambda s: s.batch_size * s.resolution[0] * s.resolution[1])
    estimate = bridge.memory_model(model, network.parameter_count())
    need = estimate.estimate(largest.batch_size, *largest.resolution)
    free = bridge.free_memory_for(model, need)
    return memory.check_fits(estimate, largest.batch_size, largest.resolution[0], largest.resolution[1], free)


def _run_files(name: str, settings: list[PromptSetting], network: Any, config: train.LecoConfig, dtype: str,
               overwrite: bool, base_version: str) -> checkpoints.RunFiles:
    stem = Path(name.strip()).stem or name
    meta = checkpoints.leco_metadata(settings, f"{stem}.toml", network, name=stem, steps=config.steps,
                                     learning_rate=config.learning_rate, seed=config.seed,
                                     base_model_version=base_version)
    return checkpoints.RunFiles(loras_dir(), name, meta, dtype, overwrite)


def _report(result: train.LecoResult, path: Path, count: int, need: int) -> str:
    losses = result.losses
    head = f"trained {result.steps_done} steps" + (f" (resumed at step {result.start_step})" if result.start_step else "")
    lines = [f"{head} on {count} settings; saved {path}",
             f"memory estimate {need / memory.GIB:.2f} GB"]
    if len(losses) >= 10:
        lines.append(f"loss: first-5 mean {sum(losses[:5]) / 5:.4g}, last-5 mean {sum(losses[-5:]) / 5:.4g}")
    if result.saved_steps:
        lines.append(f"checkpoints at steps {', '.join(map(str, result.saved_steps))}")
    return "\n".join(lines)


class _LossEvents:
    """The loss of each step to the node's chart (js/loss_chart.js), with the pace and time left measured
    from the run's own steps; the estimate also goes to the server log every ``LOG_EVERY_S`` seconds."""

    LOG_EVERY_S = 30.0

    def __init__(self, node_id: str | None, total: int) -> None:
        self._node_id, self._total = node_id, total
        self._clock = StepClock(total)
        self._logged_at: float | None = None

    def __call__(self, step: int, loss: float) -> None:
        rate, left = self._clock.tick(step)
        _comfy.send_event(LOSS_EVENT, {"node": self._node_id, "step": step, "total": self._total, "loss": loss,
                                       "steps_per_s": rate, "remaining_s": left})
        now = time.monotonic()
        if left is not None and (self._logged_at is None or now - self._logged_at >= self.LOG_EVERY_S):
            self._logged_at = now
            logger.info("LF Train LECO: step %d/%d, %.1f s a step, about %s left", step, self._total, 1 / rate,
                        format_duration(left))


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(LECOPrompts, TrainLECO)
