"""Load a dataset.toml with sd-scripts' own config loader and print what it found, as JSON.

Run with the interpreter of sd-scripts' virtual environment (never imported by the pack: it needs
sd-scripts' ``library`` package, which only exists there):

    <sd-scripts venv>/bin/python sdscripts_check.py --sd-scripts DIR --config dataset.toml [--masked-loss]

It goes through the same calls ``train_network.py`` makes before training: the argument parser,
``load_user_config``, ``ConfigSanitizer(True, True, masked_loss, True)``, ``BlueprintGenerator`` and
``generate_dataset_group_by_blueprint`` (which lists every subset's images and caption files). The
printed JSON gives each subset's image count, repeats, is_reg and alpha_mask as sd-scripts sees
them; a refused config exits non-zero with sd-scripts' error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def _subset_facts(subset: Any) -> dict[str, Any]:
    return {
        "image_dir": str(subset.image_dir), "img_count": int(subset.img_count),
        "num_repeats": int(subset.num_repeats), "is_reg": bool(getattr(subset, "is_reg", False)),
        "alpha_mask": bool(getattr(subset, "alpha_mask", False)),
        "conditioning_data_dir": getattr(subset, "conditioning_data_dir", None),
        "keep_tokens": int(subset.keep_tokens), "caption_extension": getattr(subset, "caption_extension", None),
    }


def _subsets(dataset: Any) -> list[Any]:
    """A ControlNet (mask folder) dataset keeps its subsets in a DreamBooth delegate."""
    delegate = getattr(dataset, "dreambooth_dataset_delegate", None)
    return list(dataset.subsets) or (list(delegate.subsets) if delegate is not None else [])


def _caption_sample(dataset: Any) -> list[str]:
    infos = list(getattr(dataset, "image_data", {}).values())[:3]
    return [str(getattr(info, "caption", "")) for info in infos]


def check(sd_scripts: Path, config: Path, masked_loss: bool) -> dict[str, Any]:
    sys.path.insert(0, str(sd_scripts))  # script context: sd-scripts is not an installed package
    import train_network  # noqa: PLC0415  (sd-scripts' own module)
    from library import config_util  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as out:
        argv = ["--dataset_config", str(config), "--pretrained_model_name_or_path", "unused",
                "--output_dir", out, "--network_module", "networks.lora"]
        args = train_network.setup_parser().parse_args(argv + (["--masked_loss"] if masked_loss else []))
    user_config = config_util.load_user_config(str(config))
    sanitizer = config_util.ConfigSanitizer(True, True, args.masked_loss, True)
    blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
    train_group, _ = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
    datasets = []
    for dataset in train_group.datasets:
        datasets.append({
            "kind": type(dataset).__name__, "num_train_images": int(dataset.num_train_images),
            "num_reg_images": int(getattr(dataset, "num_reg_images", 0)),
            "enable_bucket": bool(dataset.enable_bucket), "resolution": [int(dataset.width), int(dataset.height)],
            "subsets": [_subset_facts(s) for s in _subsets(dataset)], "captions": _caption_sample(dataset),
        })
    return {"datasets": datasets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--masked-loss", action="store_true")
    options = parser.parse_args()
    result = check(options.sd_scripts.resolve(), options.config.resolve(), options.masked_loss)
    print("LF_CHECK " + json.dumps(result))


if __name__ == "__main__":
    main()
