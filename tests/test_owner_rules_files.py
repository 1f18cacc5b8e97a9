"""Code rules for file jobs with one owner each (more live in test_owner_rules.py and test_code_rules.py).

- Refusing a LoRA name already published: ``kohya/publish.refuse_published``. The kohya and LECO
  planners, musubi's node and the tuner's best-trial copy once each wrote the check, with two error
  types (one the tuner caught, one it did not) and three wordings.
- Renaming a finished file into place: ``fileio`` (``AtomicFile``: temp beside the target, fsync,
  rename, temp removed on error). ``Mp4Writer`` once repeated ``atomic_write``'s steps by hand.
- Whether a name or path from outside is acceptable: ``paths`` (``name_problem`` for a plain
  relative name, ``text_problem`` for what every typed path shares). Four checkers (model names, a
  manifest's paths, ``inside_by_name``, read roots) once answered the same hostile names four ways
  (tests/hostile/test_plain_names.py).
- A dataset's version folders (``name``, ``name_v2``, ...): ``kohya/dataset_versions``. musubi's
  writer once had its own copy that made a new version on every run.
- Assembling a dataset in a staging folder and renaming it into place: ``kohya/staging.write_staged``.
  The kohya and musubi writers each spelled out the staging, the clean-up on error and the lost
  race."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_code_rules import SOURCES, _calls, _name

REPO = Path(__file__).resolve().parents[1]
PUBLISH_OWNER = "lora_foundry/kohya/publish.py"
# any refusal of an existing file that offers another name or the overwrite input: write_lora's own
# "<path> exists; choose another name or set overwrite" (merges, the built-in LECO trainer's final
# save) once slipped past a rule that knew only publish's wording
PUBLISHED_REFUSAL = re.compile(r"\bexists\b.*(another (output )?name|overwrite)", re.DOTALL)
# a dataset folder and a stack preset, not LoRAs (dataset versions have their own owner, below)
NOT_A_LORA = {"lora_foundry/kohya/dataset_versions.py", "lora_foundry/lora/presets.py"}


def found_outside(owners: set[str], finder: Callable[[str], list[int]]) -> dict[str, list[int]]:
    """The lines ``finder`` reports in each engine or node module other than ``owners``."""
    return {rel: lines for path in SOURCES if (rel := str(path.relative_to(REPO))) not in owners
            and (lines := finder(path.read_text("utf-8")))}


def assert_one_owner(finder: Callable[[str], list[int]], owners: set[str], use: str) -> None:
    """Nothing but ``owners`` does what ``finder`` looks for, and each owner still does it (else
    the rule would pass by seeing nothing)."""
    found = found_outside(owners, finder)
    assert not found, f"{finder.__name__} outside {sorted(owners)} (use {use}): {found}"
    quiet = [owner for owner in owners if not finder((REPO / owner).read_text("utf-8"))]
    assert not quiet, f"{quiet} no longer do what the rule looks for: update the rule"


def _text(node: ast.AST) -> str:
    """The literal text of everything under ``node`` (f-string parts included, values left out)."""
    return "".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def published_refusals(source: str) -> list[int]:
    """Lines of ``raise`` statements whose message refuses a name as already published."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Raise) and node.exc is not None and PUBLISHED_REFUSAL.search(_text(node.exc))]


def test_only_publish_refuses_a_published_lora_name():
    assert_one_owner(published_refusals, {PUBLISH_OWNER, *NOT_A_LORA}, "kohya.publish.refuse_published")


RENAME_OWNER = "lora_foundry/fileio.py"
RENAMERS_ALLOWED = {
    # the ``.part`` file outlives the run so a download resumes; it is renamed once its sha256 is checked
    "lora_foundry/models/download.py",
    # a whole folder (a dataset version) is renamed, so it appears complete or not at all
    "lora_foundry/kohya/staging.py",
}


def renames(source: str) -> list[int]:
    """Lines calling ``os.replace``/``os.rename``/``os.renames``/``shutil.move`` or a one-argument
    ``.replace(x)``/``.rename(x)`` (``Path``'s; ``str.replace`` takes two)."""
    return [call.lineno for call in _calls(ast.parse(source))
            if _name(call.func) in ("os.replace", "os.rename", "os.renames", "shutil.move")
            or (isinstance(call.func, ast.Attribute) and call.func.attr in ("replace", "rename")
                and len(call.args) == 1 and not call.keywords)]


def test_only_fileio_renames_a_file_into_place():
    assert_one_owner(renames, {RENAME_OWNER, *RENAMERS_ALLOWED}, "fileio.AtomicFile")


VERSIONS_OWNER = "lora_foundry/kohya/dataset_versions.py"
VERSION_PATTERN = re.compile(r"_v\\d|_v\[0-9")


def version_spellings(source: str) -> list[int]:
    """Lines that build a ``<name>_v<N>`` folder name (an f-string with ``_v{...}``) or match one
    (a regex with ``_v\\d``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            lines += [node.lineno for before, after in zip(parts, parts[1:], strict=False)
                      if isinstance(before, ast.Constant) and str(before.value).endswith("_v")
                      and isinstance(after, ast.FormattedValue)]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and VERSION_PATTERN.search(node.value):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_only_dataset_versions_names_a_datasets_versions():
    assert_one_owner(version_spellings, {VERSIONS_OWNER}, "kohya.dataset_versions.version_folder")


NAMES_OWNER = "lora_foundry/paths.py"


def _constants(node: ast.AST) -> list[object]:
    elements = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [e.value for e in elements if isinstance(e, ast.Constant)]


def _is_ord(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ord"


def name_checks(source: str) -> list[int]:
    """Lines comparing text with ``".."`` or ``"~"``, looking for a NUL, or comparing ``ord(ch)``
    with a number: the pieces every hand-written name checker was made of."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            values = [v for operand in operands for v in _constants(operand)]
            if (any(v in ("..", "~") or (isinstance(v, str) and "\x00" in v) for v in values)
                    or any(_is_ord(operand) for operand in operands)):
                lines.append(node.lineno)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
                and any(v in ("~", "..") for arg in node.args for v in _constants(arg))):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_only_paths_decides_whether_a_name_is_plain():
    assert_one_owner(name_checks, {NAMES_OWNER}, "paths.name_problem or paths.text_problem")


STAGING_OWNER = "lora_foundry/kohya/staging.py"


def staging_steps(source: str) -> list[int]:
    """Lines making a dataset's staging folder (``make_staging``) or renaming one into place
    (``publish``) by hand instead of through ``write_staged``."""
    tree = ast.parse(source)
    steps = {"make_staging", "staging.publish"} | {  # ``publish`` imported from the staging module
        alias.asname or alias.name for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("staging")
        for alias in node.names if alias.name == "publish"}
    return [call.lineno for call in _calls(tree)
            if _name(call.func) in steps or _name(call.func).endswith((".make_staging", ".staging.publish"))]


def test_only_staging_assembles_a_dataset_folder():
    assert_one_owner(staging_steps, {STAGING_OWNER}, "kohya.staging.write_staged")


PLANTED = [  # (rule, source, the lines it must report): each rule fails on a planted second owner
    (published_refusals, 'if final.exists():\n    raise PreflightError(f"a LoRA named {final.name} already exists in "\n'
                         '                         f"{loras_dir}; choose another output name")\n', [2]),
    (published_refusals, 'raise FileExistsError(f"{dst} already exists; choose another output name")', [1]),
    (published_refusals, 'raise ValueError("other settings differ: choose another output name, or restore them")', []),
    (renames, "os.chmod(self._tmp, FILE_MODE)\nos.replace(self._tmp, self.path)\n", [2]),
    (renames, "temporary.replace(target)\nPath(a).rename(b)\n", [1, 2]),
    (renames, "name.replace('-', '_')\ndataclasses.replace(plan, steps=3)\n", []),
    (version_spellings, 'for version in range(1, 1000):\n'
                        '    candidate = confined(root, name if version == 1 else f"{name}_v{version}")\n', [2]),
    (version_spellings, 'base = re.sub(r"_v\\d+$", "", target.name)', [1]),
    (version_spellings, 'label = f"{model}_video {count}"\nkey = "kv_v"\n', []),
    (name_checks, 'if (not text or text.startswith(("/", "~")) or "\\\\" in text\n'
                  '        or any(ord(ch) < 32 for ch in text) or any(part in (".", "..") for part in parts)):\n'
                  '    raise ValueError(text)\n', [1, 2]),
    (name_checks, 'if ".." in Path(name).parts:\n    pass\n', [1]),
    (name_checks, 'if "\\x00" in value:\n    pass\n', [1]),
    (name_checks, 'if suffix == ".png" and name.startswith("shot"):\n    pass\n', []),
    (staging_steps, "from ..kohya.staging import make_staging, publish\nstaging = make_staging(root, name)\n"
                    "published = publish(staging, target)\n", [2, 3]),
    (staging_steps, "ok = kohya.staging.publish(staging, target)\n", [1]),
    (staging_steps, "best = publish(study, name, folder)\nwritten, ok = write_staged(root, target, write)\n", []),
]


@pytest.mark.parametrize(("rule", "source", "lines"), PLANTED,
                         ids=[f"{rule.__name__}-{number}" for number, (rule, _, _) in enumerate(PLANTED)])
def test_each_rule_sees_a_planted_second_owner(rule, source, lines):
    assert rule(source) == lines
