"""The project's safety rules, checked on every file so a slip fails CI instead of shipping.

A shared workflow is untrusted input: no shell strings, no eval/exec, no pickle loading of weights;
the engine never imports ComfyUI; requirements never touch torch or downgrade numpy/Pillow.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("lora_foundry", "nodes") for p in (REPO / folder).rglob("*.py"))
COMFY_MODULES = {"comfy", "comfy_extras", "comfy_api", "folder_paths", "server", "execution", "nodes"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_forbidden_calls(path):
    tree = ast.parse(path.read_text("utf-8"))
    problems = []
    for call in _calls(tree):
        name = _name(call.func)
        keywords = {k.arg: k.value for k in call.keywords}
        if name in {"eval", "exec", "os.system", "pickle.load", "pickle.loads"}:
            problems.append(f"line {call.lineno}: {name}()")
        shell = keywords.get("shell")
        if isinstance(shell, ast.Constant) and shell.value is True:
            problems.append(f"line {call.lineno}: shell=True")
        if name.endswith("torch.load") or name == "torch.load":
            weights_only = keywords.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                problems.append(f"line {call.lineno}: torch.load without weights_only=True")
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("path", [p for p in SOURCES if p.is_relative_to(REPO / "lora_foundry")],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_engine_never_imports_comfyui(path):
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots = {node.module.split(".")[0]}
        else:
            continue
        assert not roots & COMFY_MODULES, f"{path.name}:{node.lineno} imports {roots & COMFY_MODULES}"


def test_requirements_leave_torch_numpy_and_pillow_alone():
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    names = {re.split(r"[<>=!~\[ ;]", line)[0].lower(): line for line in lines if line}
    assert not {"torch", "torchvision", "torchaudio"} & set(names)
    assert "simple-lama-inpainting" not in names
    for package in ("numpy", "pillow"):
        spec = names.get(package, "")
        assert "<" not in spec, f"{spec} caps {package}"
