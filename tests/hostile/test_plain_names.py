"""One rule for a plain relative name, run through every entry point that takes one from outside.

A name reaches the engine from a workflow (a model name, a LoRA name, a model file for training)
or from a file a client could have rewritten (a workspace manifest's ``relpath``). Each entry point
once had its own checker with its own rules; this table sends the same hostile names through all
of them. A row says, per entry point, ``R`` (refused) or ``a`` (accepted: a name, looked up inside
its folder, whatever is or is not there).

Entry points, in column order:
- ``registry``: ``models.registry.name_parts`` (every model loader's name)
- ``manifest``: ``workspace.manifest.checked_relpath`` (a stored item path read back)
- ``inside``: ``paths.inside_by_name`` (LoRA names, training model files)
- ``train``: ``kohya.train_config.resolve_model_file`` (LF Kohya Train LoRA's base and extra models)
- ``read``: ``read_roots.ReadRoots.resolve`` (a path typed into a folder/video input: absolute and
  ``..`` are allowed there when they resolve inside the roots, so only text rules apply)
"""

from __future__ import annotations

import sys
import unicodedata

import pytest

from lora_foundry.kohya.preflight import PreflightError
from lora_foundry.kohya.train_config import resolve_model_file
from lora_foundry.models.registry import name_parts
from lora_foundry.paths import CONTROL, inside_by_name
from lora_foundry.read_roots import ReadRoots
from lora_foundry.workspace.manifest import checked_relpath

LONG_PART = "x" * 256  # one name over NAME_MAX (255 bytes)
OVER_PATH_MAX = "d/" * 2100 + "x"  # 4201 bytes: over PATH_MAX (4096) in all
LONG_PATH = "d/" * 130 + "x"  # 261 bytes of short parts (a model name was once capped at 255 in all)
# registry, manifest, inside, train, read. The first four are the one rule (``paths.name_problem``).
# Registry, manifest and inside once disagreed on 20 of these 32 rows (commit e3ef592 recorded their
# answers): drives and UNC paths, ~, backslashes, a/../b, DEL and C1 controls, line breaks, byte caps,
# '.', empty parts, ':' and lookalikes.
TABLE = {
    "/etc/passwd": "RRRRR",
    "C:\\Windows\\x": "RRRRa",
    "C:/x": "RRRRa",
    "C:x": "RRRRa",
    "\\\\srv\\share\\x": "RRRRa",
    "..": "RRRRR",
    "../x": "RRRRR",
    "a/../b": "RRRRa",
    "a/..": "RRRRa",
    "~user": "RRRRa",
    "~/x": "RRRRa",
    "a\\b": "aaaaa",  # a separator, as on Windows: the same name on every server
    "a\\..\\..\\x": "RRRRa",
    "a\x00b": "RRRRR",
    "a\x7fb": "RRRRR",
    "a\x85b": "RRRRR",
    "a\nb": "RRRRR",
    LONG_PART: "RRRRR",
    LONG_PATH: "aaaaa",  # short parts: fine (4096 bytes in all)
    OVER_PATH_MAX: "RRRRR",
    "": "RRRRR",
    ".": "RRRRa",
    "./x": "RRRRa",
    "a/./b": "RRRRa",
    "a/": "aRRRa",  # a folder: only a model name may be one (open_clip local-dir installs)
    "a//b": "RRRRa",
    "file:stream": "RRRRa",
    "\uff0e\uff0e/x": "RRRRa",  # fullwidth dots: ".." once NFKC-normalized
    "a\uff0fb": "RRRRa",  # fullwidth solidus
    "a\u2215b": "RRRRa",  # division slash
    "ok/name.bin": "aaaaa",
    " a ": "aaaaa",
}


def _registry(root, name):
    return name_parts(name) is not None


def _manifest(root, name):
    try:
        checked_relpath(name, "items.relpath")
    except ValueError:
        return False
    return True


def _inside(root, name):
    try:
        inside_by_name(root, name)
    except ValueError:
        return False
    return True


def _train(root, name):
    try:
        resolve_model_file(name, [root], "base model")
    except PreflightError as refused:
        return "must be a file listed" not in str(refused) and "choose a" not in str(refused)
    except FileNotFoundError:
        return True
    return True


def _read(root, name):
    try:
        ReadRoots.of([root]).resolve(name, "folder")
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return True


ENTRY_POINTS = (_registry, _manifest, _inside, _train, _read)


@pytest.mark.parametrize("name", list(TABLE), ids=[repr(n)[:30] for n in TABLE])
def test_every_entry_point_answers_a_hostile_name_as_the_table_says(tmp_path, name):
    got = "".join("a" if entry(tmp_path, name) else "R" for entry in ENTRY_POINTS)
    assert got == TABLE[name]


def test_the_name_entry_points_give_one_answer_except_for_a_folder():
    differ = {name: answers[:4] for name, answers in TABLE.items() if len(set(answers[:4])) > 1}
    assert differ == {"a/": "aRRR"}


def test_the_control_pattern_is_exactly_unicodes_control_and_separator_characters():
    """Every name check refuses characters by ``paths.CONTROL``; it must be Unicode's Cc, Zl and Zp
    categories, no more and no fewer, over every code point (a hand-written range can drift)."""
    by_category = {c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Cc", "Zl", "Zp")}
    by_pattern = {c for c in range(sys.maxunicode + 1) if CONTROL.match(chr(c))}
    assert by_pattern == by_category and len(by_category) == 67

