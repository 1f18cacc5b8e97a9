"""Run inside musubi-tuner's own environment: load a dataset TOML with its config loader and list the
items its dataset code makes for latent caching (no model is loaded). Prints one JSON line."""

import argparse
import json
import sys

from musubi_tuner.dataset import config_utils

parser = argparse.ArgumentParser()
parser.add_argument("dataset_config")
parser.add_argument("architecture")  # "wan" or "hv", as the caching scripts pass it
args = parser.parse_args()

sanitizer = config_utils.ConfigSanitizer()
user_config = config_utils.load_user_config(args.dataset_config)
blueprint = config_utils.BlueprintGenerator(sanitizer).generate(
    user_config, argparse.Namespace(), architecture=args.architecture)
group = config_utils.generate_dataset_group_by_blueprint(blueprint.dataset_group)
found = []
for dataset in group.datasets:
    for _, batch in dataset.retrieve_latent_cache_batches(1):
        for item in batch:
            found.append({"key": item.item_key, "frames": item.frame_count, "caption": item.caption,
                          "size": list(item.content.shape)})
json.dump({"datasets": len(group.datasets), "items": found}, sys.stdout)
