"""Where the Ray cluster address comes from, and that Ray stays unimported unless configured."""

from __future__ import annotations

import builtins
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lora_foundry.scale.config import ray_address, ray_runner

REPO = Path(__file__).resolve().parents[1]


def test_the_address_comes_from_the_command_line_then_the_environment_then_comfyui_user_config(tmp_path):
    (tmp_path / "lora_foundry.json").write_text(json.dumps({"ray_address": "10.0.0.5:6379"}))
    env = {"LF_RAY_ADDRESS": "127.0.0.1:6379"}
    assert ray_address("head:6379", tmp_path, env) == "head:6379"
    assert ray_address(None, tmp_path, env) == "127.0.0.1:6379"
    assert ray_address(None, tmp_path, {}) == "10.0.0.5:6379"
    assert ray_address(None, tmp_path / "elsewhere", {}) is None
    assert ray_runner(None) is None
    (tmp_path / "lora_foundry.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="lora_foundry.json"):
        ray_address(None, tmp_path, {})


def test_a_configured_cluster_without_ray_installed_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RuntimeError, match=r"pip install 'lora-foundry\[ray\]'"):
        ray_runner("127.0.0.1:6379")


def test_ray_is_never_imported_when_no_cluster_is_configured(tmp_path, media_dir):
    script = f"""
import sys
from pathlib import Path
from lora_foundry import cli
from lora_foundry.stages.frames.parallel_ingest_stage import ingest_videos
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions
from lora_foundry.workspace import Workspace
if __name__ == "__main__":
    assert cli.main(["ingest-many", "{media_dir / 'signer_book.mkv'}", "--long-side", "96",
                     "--out", "{tmp_path}", "--workers", "1"]) == 0
    print("ray" in sys.modules)
"""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_nodes_take_the_cluster_from_the_operator_config_never_elsewhere(pack, output_root, monkeypatch):
    """Outside ComfyUI the user folder is ``<output>/.user``; the environment wins over it; with
    neither the nodes run on this machine."""
    config = importlib.import_module(f"{pack.__name__}.lora_foundry.scale.config")
    monkeypatch.setattr(config, "ray_runner", lambda address: address and f"cluster at {address}")
    monkeypatch.delenv("LF_RAY_ADDRESS", raising=False)
    assert pack.nodes._comfy.ray_runner() is None
    (output_root / ".user" / "lora_foundry.json").write_text(json.dumps({"ray_address": "10.0.0.5:6379"}))
    assert pack.nodes._comfy.ray_runner() == "cluster at 10.0.0.5:6379"
    monkeypatch.setenv("LF_RAY_ADDRESS", "10.0.0.9:6379")
    assert pack.nodes._comfy.ray_runner() == "cluster at 10.0.0.9:6379"
