"""Code rules for jobs with one owner each (more live in test_code_rules.py).

- A missing optional extra (optuna, ray, ...): ``lora_foundry.extras.optional_extra`` wraps the plain
  import and says what needs the package and which extra installs it. A hand-written
  ``except ImportError: raise ...`` in the engine is how the Ray runner and the tuner came to word
  the same refusal two ways.
- A node's help: its class docstring (``nodes/_declare.node``). A literal ``description=`` beside it
  is a second place for the same text, which is how help and code drifted apart.
- The command line's output folder: ``--out`` is declared in ``lora_foundry/cli/locations.py`` alone.
  ``demo``, ``ingest`` and ``ingest-many`` once declared their own, defaulting to ``./out`` in
  whatever folder the shell was in (``custom_nodes/`` when run from the pack).
- "This value must be one of these choices": ``lora_foundry/choices.py`` (``one_of``, ``pick``,
  ``choice_refusal``). Some thirty checks once spelled their own test and message, each in its own
  words (``choose one of [...]``, ``must be one of (...), got``), so a mistyped choice read
  differently on every node."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest
from test_code_rules import SOURCES, _calls, _name
from test_owner_rules_files import assert_one_owner

REPO = Path(__file__).resolve().parents[1]
OWNER = "lora_foundry/extras.py"


def _import_errors(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def _raises(node: ast.AST) -> list[int]:
    """Lines of ``raise`` under ``node``, not counting those inside a nested ``try`` (the Windows
    fallback of a lock refuses its own error, not the missing import)."""
    if isinstance(node, ast.Raise):
        return [node.lineno]
    if isinstance(node, ast.Try):
        return []
    return [line for child in ast.iter_child_nodes(node) for line in _raises(child)]


def missing_import_refusals(source: str) -> list[int]:
    """Lines of ``raise`` statements inside ``except ImportError`` handlers."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler) and node.type is not None and _import_errors(node):
            lines += [line for statement in node.body for line in _raises(statement)]
    return lines


def test_only_extras_refuses_a_missing_optional_package():
    found = {str(p.relative_to(REPO)): lines for p in sorted((REPO / "lora_foundry").rglob("*.py"))
             if str(p.relative_to(REPO)) != OWNER and (lines := missing_import_refusals(p.read_text("utf-8")))}
    assert not found, f"a missing import refused outside {OWNER} (use extras.optional_extra): {found}"


def test_the_rule_sees_a_planted_second_owner():
    planted = "try:\n    import ray\nexcept ImportError as error:\n    raise RuntimeError('pip install ray') from error\n"
    assert missing_import_refusals(planted) == [4]
    assert missing_import_refusals("try:\n    import hdbscan\nexcept ImportError:\n    backend = 'sklearn'\n") == []


def test_a_configured_cluster_without_ray_says_which_extra(monkeypatch):
    """What the operator reads when a Ray address is set but Ray is not in ComfyUI's Python."""
    from lora_foundry.scale import ray_runner

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RuntimeError, match=r"a configured Ray cluster needs ray.*lora-foundry\[ray\]"):
        ray_runner._import_ray()


def literal_descriptions(source: str) -> list[int]:
    """Lines of ``@node(..., description=<a written-out string>)``: help that belongs in the docstring."""
    return [keyword.value.lineno for call in ast.walk(ast.parse(source)) if isinstance(call, ast.Call)
            and getattr(call.func, "id", None) == "node"
            for keyword in call.keywords if keyword.arg == "description"
            and isinstance(keyword.value, (ast.Constant, ast.JoinedStr))]


def test_a_nodes_help_is_written_only_in_its_docstring():
    found = {p.name: lines for p in sorted((REPO / "nodes").glob("*.py"))
             if (lines := literal_descriptions(p.read_text("utf-8")))}
    assert not found, f"help written in @node(description=...) instead of the class docstring: {found}"
    planted = '@node("LF_X", "LF X", category="c", function="f", description="Does X.")\nclass X:\n    pass\n'
    assert literal_descriptions(planted) == [1]


# Files that read the operator's settings (CLI arguments, environment variables, operator JSON):
# the only places a "~" may be expanded. A workflow's value never reaches them.
OPERATOR_SETTINGS = ("lora_foundry/cli", "lora_foundry/kohya/operator_config.py", "lora_foundry/read_roots.py",
                     "lora_foundry/models/registry.py", "lora_foundry/musubi/install.py")
# The one resolver of model names (registry.resolve) and the two functions allowed to call it.
MODEL_RESOLVER_CALLERS = ("nodes/_models.py", "lora_foundry/models/clip_model.py")


def test_only_operator_settings_expand_tilde():
    """``~user`` in a workflow value once turned a model name into any absolute path (issue 23)."""
    bad = [str(p.relative_to(REPO)) for p in SOURCES if "expanduser" in p.read_text("utf-8")
           and not str(p.relative_to(REPO)).startswith(OPERATOR_SETTINGS)]
    assert not bad, f"expanduser outside the operator's settings: {bad}"


def test_model_files_are_resolved_only_by_the_registry():
    """Every loader finds its file through ``registry.resolve`` (names only, one answer for outside and
    missing names): nobody else imports it, and every loader's ``locate`` goes through its callers."""
    importers, loose = [], []
    for path in SOURCES:
        rel = str(path.relative_to(REPO))
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.ImportFrom) and (node.module or "").endswith("registry")
                    and any(alias.name == "resolve" for alias in node.names) and rel not in MODEL_RESOLVER_CALLERS):
                importers.append(rel)
            if isinstance(node, ast.FunctionDef) and node.name == "locate" and rel.startswith("nodes/"):
                called = {_name(call.func).rsplit(".", 1)[-1] for call in _calls(node)}
                if not called & {"installed_path", "resolve_clip"}:
                    loose.append(f"{rel}:{node.lineno}")
    assert not importers, f"registry.resolve imported outside its callers: {importers}"
    assert not loose, f"a loader's locate() bypasses the registry: {loose}"


UNIT_WORK_CALLS = {"emit", "emit_all", "write_array", "write_image", "ingest_video", "sample_video"}
"""What a stage's units do (store and record items): in a module that has units, only inside them."""


def _unit_work_functions(tree: ast.AST) -> set[str]:
    """Names of the functions a module hands to ``Unit(name, work, ...)``."""
    return {call.args[1].id for call in _calls(tree)
            if _name(call.func) == "Unit" and len(call.args) > 1 and isinstance(call.args[1], ast.Name)}


@pytest.mark.parametrize("path", [p for p in SOURCES if "Unit(" in p.read_text("utf-8")],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_a_stage_with_units_does_its_work_only_in_them(path):
    """One implementation of each unit's work, wherever it runs: this process, worker processes or
    a Ray cluster all run the same unit function (``scale.local.runner_for``). A second path that
    stores items itself (the old in-process loops of ingest and embedding) fails here."""
    tree = ast.parse(path.read_text("utf-8"))
    units = _unit_work_functions(tree)
    problems = []
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name not in units):
        problems += [f"{function.name} line {call.lineno}: {_name(call.func)}" for call in _calls(function)
                     if _name(call.func).rsplit(".", 1)[-1] in UNIT_WORK_CALLS]
    assert units and not problems, f"{path.name}: work done outside its units {sorted(units)}: {problems}"


UNITS_OWNER = "lora_foundry/stages/units_stage.py"


def driver_side_calls(source: str) -> list[int]:
    """Lines that make the one bar (``CombinedProgress``) or commit what a unit sent (``remote.apply``,
    also when ``apply`` was imported from ``remote`` by name)."""
    tree = ast.parse(source)
    bare = any(isinstance(node, ast.ImportFrom) and (node.module or "").endswith("remote")
               and any(alias.name == "apply" for alias in node.names) for node in ast.walk(tree))
    return [call.lineno for call in _calls(tree)
            if _name(call.func).rsplit(".", 1)[-1] == "CombinedProgress" or _name(call.func).endswith("remote.apply")
            or (bare and _name(call.func) == "apply")]


def test_the_driver_side_of_a_stage_s_units_has_one_owner():
    """Which units are left, the one bar over them and committing what they send
    (``CombinedProgress``, ``remote.apply``) live in ``stages/units_stage``, for every stage with
    units: ingest, tracking and embedding each set them up by hand once."""
    assert_one_owner(driver_side_calls, {UNITS_OWNER}, "units_stage")
    assert len(driver_side_calls((REPO / UNITS_OWNER).read_text("utf-8"))) == 2, "the owner no longer does it"


def test_the_units_rule_sees_a_planted_driver_side():
    planted = ("from ..workspace.remote import apply\nfrom ..scale import units\n"
               "bar = units.CombinedProgress(None, [1])\napply(st, message)\n")
    assert driver_side_calls(planted) == [3, 4]
    assert driver_side_calls("from ..workspace import remote\nremote.apply(st, message)\n") == [2]
    assert driver_side_calls("def apply(x):\n    pass\napply(1)\n") == []


def test_a_nodes_help_is_its_docstring_and_a_node_without_one_is_refused(pack):
    """The help ComfyUI shows (DESCRIPTION) is the class docstring on one line; a subclass does not
    silently show its parent's help, and a node with no docstring is refused when it registers."""
    declare = importlib.import_module(f"{pack.nodes.__name__}._declare")

    @declare.node("LF_TestDoc", "LF Test Doc", category="test", function="go", inputs={})
    class Documented:
        """Does one thing,
        over two lines."""

        def go(self):
            return ("done",)

    assert Documented.DESCRIPTION == "Does one thing, over two lines."
    with pytest.raises(ValueError, match="LF_TestUndocumented needs a description"):
        declare.node("LF_TestUndocumented", "LF Test Undocumented", category="test", function="go",
                     inputs={})(type("Undocumented", (Documented,), {}))


OUT_OWNER = "lora_foundry/cli/locations.py"


def out_arguments(source: str) -> list[int]:
    """Lines of ``add_argument(..., "--out", ...)`` calls: an output folder option declared here."""
    return [call.lineno for call in _calls(ast.parse(source)) if _name(call.func).endswith("add_argument")
            and any(isinstance(arg, ast.Constant) and arg.value == "--out" for arg in call.args)]


def test_only_locations_declares_the_cli_output_folder():
    assert_one_owner(out_arguments, {OUT_OWNER}, "locations.add_out_argument")


def test_the_out_rule_sees_a_planted_second_declaration():
    planted = ("def _add(parser):\n    parser.add_argument('--workspace')\n"
               "    parser.add_argument('-o', '--out', type=Path, default=Path('out'))\n")
    assert out_arguments(planted) == [3]
    assert out_arguments("parser.add_argument('--outline')\nparser.add_argument('--loras-dir')\n") == []


CHOICES_OWNER = "lora_foundry/choices.py"
# Refusals the closed-choice rule sees that check no closed choice: (file, function) -> why.
NOT_CLOSED_CHOICES = {
    ("lora_foundry/evaluate/matrix.py", "_checked"): "at least one of the weights positive: numbers, not a name",
    ("lora_foundry/evaluate/metrics.py", "objective"): "at least one of the weights positive: numbers, not a name",
    ("lora_foundry/models/sam2_model.py", "config_for_file"): "a config guessed from a file name, not a typed choice",
    ("lora_foundry/models/expression_model.py", "_numbers"): "a model file's 1 or 3 normalisation values",
    ("lora_foundry/models/expression_model.py", "_layout"): "a model file's 1 or 3 input channels",
    ("lora_foundry/stages/layers/split_stage.py", "layers_from_masks"): "one mask or one per image: a count",
    ("lora_foundry/models/registry.py", "not_installed_message"): "a model file name, refused by its own owner "
                                                                  "(the registry) without listing the folder",
}
_ONE_OF = re.compile(r"\bone of\b", re.IGNORECASE)
_OWN_WORDING = re.compile(r"\b(must be|is not|choose) one of\b", re.IGNORECASE)  # a problem returned, not raised


def _says_one_of(node: ast.Raise) -> bool:
    return any(isinstance(part, ast.Constant) and isinstance(part.value, str) and _ONE_OF.search(part.value)
               for part in ast.walk(node.exc)) if node.exc is not None else False


def _not_in_literal_then_raise(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.NotIn)
            and isinstance(test.comparators[0], (ast.Set, ast.Tuple, ast.List))
            and any(isinstance(inner, ast.Raise) for statement in node.body for inner in ast.walk(statement)))


def closed_choice_refusals(source: str) -> list[tuple[str, int]]:
    """(function, line) of each ``raise`` whose message says "one of", each ``if x not in (a literal
    set, tuple or list): raise`` and each other text (not a docstring) saying "must be / is not /
    choose one of": a closed choice checked in its own words."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring describes, it refuses nothing
        if ((isinstance(node, ast.Raise) and _says_one_of(node))
                or (isinstance(node, ast.Constant) and isinstance(node.value, str) and _OWN_WORDING.search(node.value))):
            found.append((function, node.lineno))
            return
        if isinstance(node, ast.If) and _not_in_literal_then_raise(node):
            found.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(source), "<module>")
    return found


def assert_only_owner(rule, owner: str, allowed_list: dict, fix: str) -> None:
    """``rule`` finds nothing in any source but ``owner`` except its allow-listed (file, function)
    pairs, and finds each of those still (an entry no longer found is stale)."""
    found: dict[str, list[str]] = {}
    allowed: set[tuple[str, str]] = set()
    for path in SOURCES:
        rel = str(path.relative_to(REPO))
        for function, line in rule(path.read_text("utf-8")) if rel != owner else ():
            if (rel, function) in allowed_list:
                allowed.add((rel, function))
            else:
                found.setdefault(rel, []).append(f"{function} line {line}")
    assert not found, f"{fix}: {found}"
    assert allowed == set(allowed_list), f"allow-listed but gone: {set(allowed_list) - allowed}"


def test_only_choices_checks_a_closed_choice():
    assert_only_owner(closed_choice_refusals, CHOICES_OWNER, NOT_CLOSED_CHOICES,
                      f"a closed choice checked outside {CHOICES_OWNER} (use choices.one_of or pick)")


def test_the_choice_rule_sees_a_planted_second_owner():
    planted = ("def style(base_model):\n    if base_model not in STYLES:\n"
               "        raise ValueError(f'unknown base model {base_model!r}; choose one of {STYLES}')\n"
               "def tag(rating):\n    if rating not in ('omit', 'as tag'):\n        raise ValueError(rating)\n")
    assert closed_choice_refusals(planted) == [("style", 3), ("tag", 5)]
    returned = "def problem(value, choices):\n    return None if value in choices else f'must be one of {choices}'\n"
    assert closed_choice_refusals(returned) == [("problem", 2)]
    fine = ("def check(mode):\n    \"\"\"Refuses a mode that is not one of MODES.\"\"\"\n    one_of(mode, MODES, 'mode')\n"
            "    if not shown:\n        raise ValueError('none of the images has a face')\n"
            "    if size not in SIZES:\n        return 'missing'\n")
    assert closed_choice_refusals(fine) == []


QUOTED_OWNER = "lora_foundry/choices.py"
# Cuts the quoted-value rule sees that quote back no client's value: (file, function) -> why.
NOT_A_QUOTED_VALUE: dict[tuple[str, str], str] = {}


def _cut(node: ast.AST) -> bool:
    """``x[:N]``: a start of something kept, the rest dropped."""
    return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)
            and node.slice.lower is None and node.slice.upper is not None)


def _quotes_a_cut(node: ast.AST) -> bool:
    """An f-string part ``{x[:N]!r}`` / ``{repr(x)[:N]}`` or a ``repr(...)`` call that cuts its value."""
    if isinstance(node, ast.FormattedValue):
        inner = list(ast.walk(node.value))
        quotes = node.conversion == ord("r") or any(isinstance(n, ast.Call) and _name(n.func) == "repr" for n in inner)
        return quotes and any(_cut(n) for n in inner)
    if _cut(node) and isinstance(node.value, ast.Call) and _name(node.value.func) == "repr":
        return True
    return (isinstance(node, ast.Call) and _name(node.func) == "repr"
            and any(_cut(n) for arg in node.args for n in ast.walk(arg)))


def quoted_cuts(source: str) -> list[tuple[str, int]]:
    """(function, line) of each ``raise``, ``return`` or assignment (``shown = repr(x)[:80]``, raised
    a line later) that quotes a value cut short in its own way."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, (ast.Raise, ast.Return, ast.Assign)) and any(_quotes_a_cut(n) for n in ast.walk(node)):
            found.append((function, node.lineno))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(source), "<module>")
    return found


def test_only_choices_cuts_a_value_quoted_back():
    """A refusal quotes the client's value through ``choices.quoted`` (repr, cut to ``MAX_SHOWN``,
    "..."): six modules once cut it their own way, before or after ``repr``, with or without a mark."""
    assert_only_owner(quoted_cuts, QUOTED_OWNER, NOT_A_QUOTED_VALUE,
                      f"a value quoted back cut outside {QUOTED_OWNER} (use choices.quoted)")


def test_the_quoted_rule_sees_a_planted_second_cut():
    planted = ("def check(name, what):\n    raise ValueError(f'{what} {name[:120]!r} is bad')\n"
               "def problem(value):\n    return f'value {repr(value)[:80]}... is bad'\n"
               "def other(value):\n    raise ValueError('bad ' + repr(str(value)[:200]))\n"
               "def later(one):\n    shown = repr(one)[:80]\n    raise TypeError(f'got {shown}')\n")
    assert quoted_cuts(planted) == [("check", 2), ("problem", 4), ("other", 6), ("later", 8)]
    fine = ("def check(name, error):\n    raise ValueError(f'{quoted(name)} is bad ({str(error)[:200]})')\n"
            "def head(text):\n    return text[:40]\n")
    assert quoted_cuts(fine) == []


def test_a_long_value_is_quoted_back_cut_and_marked_a_short_one_whole():
    from lora_foundry.choices import MAX_SHOWN, quoted
    from lora_foundry.paths import UnsafeNameError, relative_parts

    assert quoted("lora/../x") == "'lora/../x'"
    pasted = "a/../" * 60_000
    with pytest.raises(UnsafeNameError) as refused:
        relative_parts(pasted, "dataset")
    assert str(refused.value) == (f"dataset {repr(pasted)[:MAX_SHOWN]}... is too long: a path may have 4096 bytes, "
                                  "each folder or file name 255 (UTF-8)")
