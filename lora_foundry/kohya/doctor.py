"""What an operator needs to know about the configured sd-scripts, each line OK or what to do.

Asks the install itself: the checkout's commit (read from ``.git`` without running git, and looked
up among the repository's objects: a HEAD naming a commit the repository does not hold is not a
checkout of it), whether it is one of the two commits the docs pin (48d368f for LoRA training,
063ef100 for LECO), its Python's version, packages and device (one fixed ``python -c`` in sd-scripts'
own venv: the packages live there, not here), which training scripts exist, and whether the offline
tokenizer cache holds the files sd-scripts reads. Nothing is changed.

The probe gets ``PROBE_TIMEOUT_S`` by default so a hanging import (a broken driver, a network drive)
becomes a FIX line instead of a doctor that never ends; ``lf doctor --probe-timeout 0`` (and the
tests of the real probe) wait as long as it takes, so a slow machine never turns into a verdict.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .operator_config import SCRIPTS, TrainerInstall
from .preflight import LYCORIS_PIN, lycoris_breaks_sd1, lycoris_install_command
from .tokenizer_cache import CLIP_L_ID, cache_status, missing_tokenizer_command

OK, FIX, OPTIONAL, WARN = "OK", "FIX", "--", "WARN"
LORA_PIN = "48d368fa557731ad0488c07304dfeba8c07910eb"  # docs/training.md: LoRA/LyCORIS training, no LECO
LECO_PIN = "063ef100648c016b6b4d804a6de6f5afab7ebd58"  # docs/leco.md: the first pin with train_leco.py
PINS = {LORA_PIN: "the pin for LoRA training (no LECO scripts)", LECO_PIN: "the pin for LECO (and LoRA) training"}
REQUIRED_PACKAGES = ("torch", "torchvision", "accelerate", "transformers", "diffusers", "safetensors")
LECO_SCRIPTS = ("train_leco.py", "sdxl_train_leco.py")
PROBE_TIMEOUT_S = 120.0
IMPORTED = ("torch", "torchvision")  # installed is not enough: a torchvision built for another torch fails here
PROBE = ("import importlib, json, sys\nfrom importlib import metadata\nfound, broken = {}, {}\n"
         "for name in sys.argv[1:]:\n    try:\n        found[name] = metadata.version(name)\n"
         "    except metadata.PackageNotFoundError:\n        found[name] = None\n"
         f"for name in {IMPORTED!r}:\n    try:\n        importlib.import_module(name)\n"
         "    except Exception as exc:\n        broken[name] = f'{type(exc).__name__}: {exc}'[:300]\n"
         "device = None\ntry:\n    import torch\n    if torch.cuda.is_available():\n"
         "        device = 'cuda: ' + torch.cuda.get_device_name(0)\n"
         "    elif getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available():\n        device = 'mps'\n"
         "except Exception:\n    pass\n"
         "print(json.dumps({'python': sys.version.split()[0], 'packages': found, 'broken': broken, 'device': device}))\n")


@dataclass(frozen=True)
class Finding:
    """One line of the report: ``status`` is OK, FIX (training will fail) or -- (optional)."""

    status: str
    label: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.label}: {self.detail}"


def git_commit(folder: Path) -> str | None:
    """The checked-out commit of ``folder`` from ``.git/HEAD`` (refs and packed-refs), or None."""
    git = folder / ".git"
    if git.is_file():  # a worktree: "gitdir: <path>"
        git = Path(git.read_text(encoding="utf-8").split(":", 1)[1].strip())
    head = git / "HEAD"
    if not head.is_file():
        return None
    text = head.read_text(encoding="utf-8").strip()
    if not text.startswith("ref:"):
        return text
    ref = text.split(":", 1)[1].strip()
    if (git / ref).is_file():
        return (git / ref).read_text(encoding="utf-8").strip()
    packed = git / "packed-refs"
    for line in packed.read_text(encoding="utf-8").splitlines() if packed.is_file() else []:
        if line.endswith(" " + ref):
            return line.split()[0]
    return None


def _objects_dir(git: Path) -> Path:
    common = git / "commondir"  # a worktree's objects live in the main repository
    return (git / common.read_text(encoding="utf-8").strip()).resolve() / "objects" if common.is_file() else git / "objects"


def _packed(index: Path, sha: bytes) -> bool:
    """Whether a pack index (version 2) lists ``sha``: fan-out table, then sorted 20-byte names."""
    data = index.read_bytes()
    if data[:4] != b"\xfftOc" or int.from_bytes(data[4:8], "big") != 2:
        return False
    fanout = [int.from_bytes(data[8 + 4 * i: 12 + 4 * i], "big") for i in range(256)]
    low = fanout[sha[0] - 1] if sha[0] else 0
    names = data[8 + 1024:]
    return any(names[20 * i: 20 * i + 20] == sha for i in range(low, fanout[sha[0]]))


def commit_exists(folder: Path, commit: str) -> bool:
    """Whether the repository in ``folder`` holds object ``commit`` (loose or in a pack)."""
    git = folder / ".git"
    if git.is_file():
        git = Path(git.read_text(encoding="utf-8").split(":", 1)[1].strip())
    try:
        sha = bytes.fromhex(commit)
    except ValueError:
        return False
    objects = _objects_dir(git)
    if len(sha) != 20:
        return False
    if (objects / commit[:2] / commit[2:]).is_file():
        return True
    return any(_packed(index, sha) for index in (objects / "pack").glob("*.idx"))


def _commit_finding(folder: Path) -> Finding:
    commit = git_commit(folder)
    if commit is None:
        return Finding(OPTIONAL, "sd-scripts commit", "not a git checkout: cannot tell which version it is")
    if not commit_exists(folder, commit):
        return Finding(FIX, "sd-scripts commit", f"HEAD names {commit}, which is not a commit of this repository "
                       f"(a hand-edited .git?): git -C {folder} checkout {LECO_PIN[:8]}")
    if commit in PINS:
        return Finding(OK, "sd-scripts commit", f"{commit} ({PINS[commit]})")
    return Finding(WARN, "sd-scripts commit", f"{commit} is not a commit these docs were checked with ({LORA_PIN[:8]} "
                   f"for LoRA, {LECO_PIN[:8]} for LECO): it may work; if a run fails, check out one of them")


def _device_finding(device: object) -> Finding:
    if device:
        return Finding(OK, "device", str(device))
    return Finding(WARN, "device", "no GPU visible to sd-scripts' torch: training will run on the CPU (hours for a real "
                   "model); check the NVIDIA driver and that torch is a CUDA build (docs/training.md)")


def probe_python(install: TrainerInstall, timeout_s: float | None = PROBE_TIMEOUT_S) -> dict[str, object]:
    """Python version and package versions as sd-scripts' interpreter sees them; ``timeout_s`` None
    waits as long as it takes (a probe still running at the limit is killed: subprocess.TimeoutExpired)."""
    names = [*REQUIRED_PACKAGES, "lycoris-lora"]
    completed = subprocess.run(  # noqa: S603 - the operator's interpreter, fixed arguments
        [str(install.python), "-c", PROBE, *names], capture_output=True, text=True, timeout=timeout_s,
        cwd=install.sd_scripts_dir, env={**install.env, "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip()[-500:] or f"exit code {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _package_findings(install: TrainerInstall, packages: dict[str, str | None],
                      broken: dict[str, str]) -> list[Finding]:
    findings = []
    for name in REQUIRED_PACKAGES:
        version = packages.get(name)
        if version and name in broken:
            findings.append(Finding(FIX, name, f"{version} is installed but does not import ({broken[name]}): install "
                                    "the torch and torchvision builds made for each other (docs/training.md)"))
            continue
        findings.append(Finding(OK, name, version) if version else Finding(
            FIX, name, f"missing: cd {install.sd_scripts_dir} && {install.python} -m pip install -r requirements.txt "
            "(install torch and torchvision first, see docs/training.md)"))
    lycoris = packages.get("lycoris-lora")
    fix = lycoris_install_command(install.python)
    if lycoris is None:
        findings.append(Finding(OPTIONAL, "lycoris-lora", f"not installed (only for LoCon/LoHa/LoKr/DoRA): {fix}"))
    elif lycoris_breaks_sd1(lycoris):
        findings.append(Finding(FIX, "lycoris-lora", f"{lycoris} fails on SD1.5/SD2 ('duplicated lora name'): {fix}"))
    else:
        findings.append(Finding(OK, "lycoris-lora", lycoris + ("" if lycoris == LYCORIS_PIN else f" (tested: {LYCORIS_PIN})")))
    return findings


def _script_findings(install: TrainerInstall) -> list[Finding]:
    findings = []
    for script in sorted(set(SCRIPTS.values())):
        present = (install.sd_scripts_dir / script).is_file()
        findings.append(Finding(OK if present else FIX, script, "present" if present else
                                f"missing from {install.sd_scripts_dir}: update sd-scripts (git pull)"))
    for script in LECO_SCRIPTS:
        present = (install.sd_scripts_dir / script).is_file()
        findings.append(Finding(OK if present else OPTIONAL, script, "present" if present else
                                f"missing (LECO/slider training needs sd-scripts {LECO_PIN[:8]} or newer: "
                                f"git -C {install.sd_scripts_dir} checkout {LECO_PIN[:8]})"))
    return findings


def _tokenizer_findings(install: TrainerInstall) -> list[Finding]:
    cache = install.tokenizer_cache_dir
    if cache is None:
        return [Finding(FIX, "tokenizer cache", "not configured: set KOHYA_TOKENIZER_CACHE or tokenizer_cache_dir "
                        "in trainer.json, then run lora-foundry tokenizers --cache DIR")]
    findings = []
    for model_id, problems in cache_status(cache).items():
        if not problems:
            findings.append(Finding(OK, f"tokenizer {model_id}", str(cache / model_id.replace("/", "_"))))
        elif model_id == CLIP_L_ID:
            findings.append(Finding(FIX, f"tokenizer {model_id}", "; ".join(problems)
                                    + f": lora-foundry tokenizers --cache {cache}"))
        else:
            findings.append(Finding(OPTIONAL, f"tokenizer {model_id}", "; ".join(problems) + ". Needed for "
                                    f"{_users(model_id)}; where there is network run: "
                                    + missing_tokenizer_command(cache, model_id, str(install.python))))
    return findings


def _users(model_id: str) -> str:
    from .train_config import TOKENIZERS

    return "/".join(arch for arch, ids in TOKENIZERS.items() if model_id in ids)


def _hung_finding(install: TrainerInstall, timeout_s: float) -> Finding:
    return Finding(FIX, "python", f"{install.python} started but gave no answer in {timeout_s:g} s (it was stopped): "
                   f"run {install.python} -c 'import torch, torchvision' to see where it hangs, or, on a slow "
                   "machine, lf doctor --probe-timeout 0 to wait as long as it takes")


def diagnose(install: TrainerInstall, probe_timeout_s: float | None = PROBE_TIMEOUT_S) -> list[Finding]:
    """Every check, in the order an operator fixes them; ``probe_timeout_s`` as in ``probe_python``."""
    findings = [Finding(OK, "configured by", install.source or "(unknown)")]
    if not install.sd_scripts_dir.is_dir():
        return findings + [Finding(FIX, "sd-scripts", f"{install.sd_scripts_dir} does not exist: git clone it there")]
    findings.append(_commit_finding(install.sd_scripts_dir))
    try:
        probe = probe_python(install, probe_timeout_s)
    except subprocess.TimeoutExpired as exc:
        findings.append(_hung_finding(install, exc.timeout))
    except (OSError, RuntimeError, ValueError) as exc:
        findings.append(Finding(FIX, "python", f"{install.python} does not run ({exc}): create sd-scripts' venv"))
    else:
        findings.append(Finding(OK, "python", f"{install.python} ({probe['python']})"))
        findings += _package_findings(install, dict(probe["packages"]), dict(probe.get("broken", {})))  # type: ignore[arg-type]
        findings.append(_device_finding(probe.get("device")))
    return findings + _script_findings(install) + _tokenizer_findings(install)
