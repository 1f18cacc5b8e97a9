"""Seconds per rendered cell of LF Evaluate LoRA vs plain ComfyUI sampling of the same cells
(goal: the evaluation adds <= 10 % over the sampling it does, i.e. ratio <= 1.10).

"Plain" is what a KSampler graph does for each cell, with ComfyUI's own node code: CLIPTextEncode,
the LoRA applied per strength (as LoraLoader does, once per strength), ``nodes.common_ksampler``
on an EmptyLatentImage, VAEDecode, and nothing else. "Evaluation" is ``evaluation.evaluate`` on a
fresh workspace: the same renders through ``nodes/_comfy_sampling.ComfyRenderer``, plus everything
the evaluation adds (cell keys, PNG files and manifest rows, reading the cells back, embeddings,
metrics, contact sheet, plot). The embedder is the pack's weights-free pixel features, so the
ratio measures our overhead, not a CLIP model's cost. Pairs are interleaved and alternate which
side runs first; the answer is the median of per-pair ratios of CPU time (the cores are shared:
wall time drifts with the neighbours' load, CPU time much less), with the spread printed (every
pair's ratio, the interquartile range, min and max) so one reading can be judged, and the load
average before and after (other jobs on the machine). Two pairs could not resolve 10 % here (one
run 1.40x, another 0.86x; per pair 0.60-2.04): the default is 9 pairs of 34 cells each. Torch runs
one thread by default (``--threads``): with the cores shared, idle OpenMP workers spin and bill
CPU time that is neither side's work.

Runs in ComfyUI's Python with this checkout imported the way ComfyUI imports it:
  COMFYUI_DIR=/path/to/ComfyUI $COMFYUI_DIR/venv/bin/python bench/evaluate.py TINY_SD15.safetensors \
      [--size 64] [--steps 4] [--pairs 9] [--seeds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def import_pack():
    spec = importlib.util.spec_from_file_location("lf_pack", REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["lf_pack"] = pack
    spec.loader.exec_module(pack)
    return pack


def plain(comfy_nodes, sd, model, clip, vae, lora_state, cells, size: int, steps: int) -> None:
    """Each cell as a KSampler graph would make it, grouped by strength as the evaluation renders
    them (switching patched models every cell would bill re-patching to the plain side only)."""
    import torch

    patched, conds = {}, {}
    with torch.inference_mode():
        for cell in sorted(cells, key=lambda c: c.strength):
            if cell.strength not in patched:
                patched[cell.strength] = (model, clip) if cell.strength == 0 else sd.load_lora_for_models(
                    model, clip, lora_state, cell.strength, cell.strength)
            m, c = patched[cell.strength]
            for text in (cell.prompt, ""):  # ComfyUI caches an unchanged CLIPTextEncode's output
                if (cell.strength, text) not in conds:
                    conds[(cell.strength, text)] = comfy_nodes.CLIPTextEncode().encode(c, text)[0]
            positive, negative = conds[(cell.strength, cell.prompt)], conds[(cell.strength, "")]
            latent = comfy_nodes.EmptyLatentImage().generate(size, size, 1)[0]
            samples = comfy_nodes.common_ksampler(m, cell.seed, steps, 5.0, "euler", "normal", positive, negative,
                                                  latent)[0]
            comfy_nodes.VAEDecode().decode(vae, samples)


def timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per cell (more cells per run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    comfy_dir = os.environ["COMFYUI_DIR"]
    sys.path.insert(0, comfy_dir)
    os.chdir(comfy_dir)
    from comfy.cli_args import args as comfy_args

    comfy_args.cpu = True
    import comfy.sd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import_pack()
    model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(args.checkpoint), output_vae=True,
                                                             output_clip=True)[:3]
    work = Path(tempfile.mkdtemp(prefix="lf_bench_eval_"))
    try:
        run_pairs(args, work, model, clip, vae)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_pairs(args, work: Path, model, clip, vae) -> None:
    """The interleaved pairs on cells of a fresh workspace per evaluation, and the summary."""
    import comfy.sd
    import comfy.utils
    import numpy as np
    from lf_pack.lora_foundry.evaluate import evaluation, matrix
    from lf_pack.lora_foundry.lora.synthetic import SD15_MODULES, SD15_TE_MODULES, write_kohya_lora
    from lf_pack.lora_foundry.stages.clusters.embedders import pixel_features
    from lf_pack.lora_foundry.workspace import Workspace
    from lf_pack.nodes import _comfy_sampling

    import nodes as comfy_nodes

    class Pixels:
        identity = "pixels"

        def images(self, pixels):
            return np.stack([pixel_features(p) for p in pixels])

        def texts(self, texts):
            return np.stack([pixel_features(np.full((64, 64, 3), hash(t) % 255, np.uint8)) for t in texts])

    lora = write_kohya_lora(work / "lora.safetensors", {**SD15_MODULES, **SD15_TE_MODULES}, seed=1)
    state = comfy.utils.load_torch_file(str(lora), safe_load=True)
    preset = matrix.load_preset("character", {"strengths": [0, 0.5, 1], "seeds": list(range(1, args.seeds + 1)),
                                              "held_out": ["in a snowy forest", "on the moon"]})
    cells = matrix.build_matrix("ohwx", preset)
    settings = matrix.RenderSettings(width=args.size, height=args.size, steps=args.steps, cfg=5.0)
    train = Pixels().images([np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8) for i in range(4)])

    def evaluate(run: int) -> None:
        renderer = _comfy_sampling.ComfyRenderer(model, clip, vae, [_comfy_sampling.LoraPart(lora)], settings,
                                                 "bench-model", "bench-lora")
        with Workspace.open(work / f"ws{run}") as ws:
            result = evaluation.evaluate(ws, renderer, Pixels(), train, "ohwx", preset, name="bench")
        assert result.rendered == len(cells)

    plain(comfy_nodes, comfy.sd, model, clip, vae, state, cells[:2], args.size, args.steps)  # warm-up
    evaluate(-1)
    ratios_cpu, ratios_wall, per_cell = [], [], []
    for pair in range(args.pairs):
        sides = {"plain": lambda: plain(comfy_nodes, comfy.sd, model, clip, vae, state, cells, args.size, args.steps),
                 "evaluation": lambda pair=pair: evaluate(pair)}
        order = ["plain", "evaluation"] if pair % 2 == 0 else ["evaluation", "plain"]
        times = {side: timed(sides[side]) for side in order}
        ratios_wall.append(times["evaluation"][0] / times["plain"][0])
        ratios_cpu.append(times["evaluation"][1] / times["plain"][1])
        per_cell.append((times["plain"][0] / len(cells), times["evaluation"][0] / len(cells)))
        print(f"pair {pair}: plain {times['plain'][0]:.2f} s wall / {times['plain'][1]:.2f} s CPU, evaluation "
              f"{times['evaluation'][0]:.2f} s wall / {times['evaluation'][1]:.2f} s CPU ({len(cells)} cells)")
    print(f"load average after: {load_average()}")
    plain_cell = statistics.median(p for p, _ in per_cell)
    eval_cell = statistics.median(e for _, e in per_cell)
    print(f"seconds per cell (wall): plain {plain_cell:.3f}, evaluation {eval_cell:.3f} "
          f"({args.size}x{args.size}, {args.steps} steps, {len(cells)} cells, {args.pairs} pairs)")
    print("per-pair CPU ratios: " + ", ".join(f"{r:.3f}" for r in ratios_cpu))
    print(f"ratio evaluation/plain: CPU median {statistics.median(ratios_cpu):.3f} "
          f"(IQR {spread(ratios_cpu)}, min {min(ratios_cpu):.3f}, max {max(ratios_cpu):.3f}); "
          f"wall median {statistics.median(ratios_wall):.3f} (IQR {spread(ratios_wall)}) (goal <= 1.10)")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (how busy the shared cores were)."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def spread(values: list[float]) -> str:
    """The interquartile range as ``low-high`` (the middle half of the pairs)."""
    if len(values) < 4:
        return f"{min(values):.3f}-{max(values):.3f}"
    quartiles = statistics.quantiles(values, n=4)
    return f"{quartiles[0]:.3f}-{quartiles[2]:.3f}"


if __name__ == "__main__":
    main()
