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
# The only modules that import ComfyUI, and why each must: a list, not a pattern, so a new bridge
# module is a decision taken here in review. Each holds ComfyUI calls only; the work they serve
# lives in the engine.
COMFYUI_IMPORTERS = {
    "nodes/_comfy.py": "progress bars, interrupts, folders, model memory management, LoRA patching, "
                       "events to the front end",
    "nodes/_comfy_sampling.py": "rendering images with ComfyUI's sampler (LF Evaluate, LF Tune)",
    "nodes/_comfy_leco.py": "LECO's host: the graph's model and CLIP, ComfyUI's trainable LoRA adapters, "
                            "its guider and k-diffusion sampling",
}


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


def _dynamic_import(node: ast.AST) -> str | None:
    """The module an ``importlib.import_module(...)``/``__import__(...)`` call names: the string, or
    "<dynamic>" for a name held in a variable (it could be any module). f-strings are not counted:
    the two in the tree build names under our own package (nodes/__init__, scale/engine_name)."""
    if not (isinstance(node, ast.Call) and _name(node.func).split(".")[-1] in {"import_module", "__import__"}):
        return None
    argument = node.args[0] if node.args else None
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
    return None if isinstance(argument, ast.JoinedStr) else "<dynamic>"


def _comfyui_imports(path: Path) -> list[str]:
    """``line N: module`` of every absolute import of a ComfyUI module in ``path``, lazy and
    ``importlib`` ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (name := _dynamic_import(node)) is not None:
            found.append((node.lineno, name))
    return [f"line {line}: {name}" for line, name in found
            if name == "<dynamic>" or name.split(".")[0] in COMFY_MODULES]


def _comfyui_importers(root: Path) -> dict[str, list[str]]:
    """{path relative to ``root``: its ComfyUI imports} over the entry point, the nodes and the engine."""
    paths = [root / "__init__.py", *(p for folder in ("lora_foundry", "nodes") for p in (root / folder).rglob("*.py"))]
    found = {str(p.relative_to(root)): _comfyui_imports(p) for p in paths if p.is_file()}
    return {name: imports for name, imports in found.items() if imports}


def test_only_the_listed_bridge_modules_import_comfyui():
    """The engine never imports ComfyUI (it runs from the command line and in CI without it), and of
    the nodes only the bridge modules in ``COMFYUI_IMPORTERS`` do: the few places that know
    ComfyUI's module layout are the ones to update when it moves. The list names no module that no
    longer needs to be on it."""
    found = _comfyui_importers(REPO)
    unlisted = {name: imports for name, imports in found.items() if name not in COMFYUI_IMPORTERS}
    assert not unlisted, f"modules importing ComfyUI that are not bridge modules: {unlisted}"
    assert set(COMFYUI_IMPORTERS) == set(found), f"listed but import no ComfyUI: {set(COMFYUI_IMPORTERS) - set(found)}"


def test_the_bridge_rule_catches_a_planted_importer(tmp_path):
    """A lazy ``import folder_paths`` in a node module, a ``from comfy import ...`` in the engine and
    an ``importlib.import_module("server")`` are all found; a relative ``from .nodes import x`` (our
    own package) and an f-string import under our own package are not."""
    (tmp_path / "nodes").mkdir()
    (tmp_path / "lora_foundry" / "leco").mkdir(parents=True)
    (tmp_path / "nodes" / "extra.py").write_text("def f():\n    import folder_paths\n    return folder_paths\n")
    (tmp_path / "lora_foundry" / "leco" / "x.py").write_text("from comfy import model_management\n")
    (tmp_path / "nodes" / "own.py").write_text("import importlib\nimportlib.import_module(f'{__name__}.x')\n")
    (tmp_path / "nodes" / "late.py").write_text("import importlib\nSERVER = importlib.import_module('server')\n")
    (tmp_path / "__init__.py").write_text("from .nodes import NODE_CLASS_MAPPINGS\n")
    assert _comfyui_importers(tmp_path) == {"nodes/extra.py": ["line 2: folder_paths"],
                                            "nodes/late.py": ["line 2: server"],
                                            "lora_foundry/leco/x.py": ["line 1: comfy"]}


def test_requirements_leave_torch_numpy_and_pillow_alone():
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    names = {re.split(r"[<>=!~\[ ;]", line)[0].lower(): line for line in lines if line}
    assert not {"torch", "torchvision", "torchaudio"} & set(names)
    assert "simple-lama-inpainting" not in names
    for package in ("numpy", "pillow"):
        spec = names.get(package, "")
        assert "<" not in spec, f"{spec} caps {package}"


def _imports(tree: ast.AST, package: str) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, names) of every import, relative ones resolved against ``package``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def _package_of(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])


STAGE_ALGORITHMS = [p for p in (REPO / "lora_foundry" / "stages").rglob("*.py")
                    if not p.stem.endswith("_stage") and p.name != "__init__.py"]


@pytest.mark.parametrize("path", STAGE_ALGORITHMS, ids=lambda p: str(p.relative_to(REPO)))
def test_stage_algorithms_never_import_the_workspace(path):
    """In stages/<family>/, only ``*_stage`` modules drive the workspace; algorithms work on arrays."""
    imports = _imports(ast.parse(path.read_text("utf-8")), _package_of(path))
    bad = [f"line {line}: {module}" for line, module, names in imports
           if module.startswith("lora_foundry.workspace") or module.endswith("_stage")
           or any(name.endswith("_stage") for name in names)]
    assert not bad, f"{path.name} is an algorithm module but imports the workspace side: {bad}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_images_are_opened_only_by_media_images(path):
    """media/images owns reading: its size guard, EXIF handling and modes hold for every reader."""
    if path == REPO / "lora_foundry" / "media" / "images.py":
        return
    calls = [call.lineno for call in _calls(ast.parse(path.read_text("utf-8")))
             if _name(call.func) in {"Image.open", "PIL.Image.open"}]
    assert not calls, f"{path.name} opens images itself (lines {calls}): use media.images"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_one_letter_module_aliases(path):
    """``from .x import y as C`` hides what is imported; modules keep their names (``np`` is a convention)."""
    tree = ast.parse(path.read_text("utf-8"))
    short = [f"line {node.lineno}: {alias.name} as {alias.asname}" for node in ast.walk(tree)
             if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names
             if alias.asname and (len(alias.asname) == 1 or (alias.asname.isupper() and len(alias.asname) <= 3))]
    assert not short, f"{path.name}: {short}"


def test_engine_has_no_import_cycles():
    """No two engine modules import each other, directly or through others (lazy imports count too:
    media/video and media/animated once did, through a function-level import)."""
    graph: dict[str, set[str]] = {}
    engine = [p for p in SOURCES if p.is_relative_to(REPO / "lora_foundry")]
    names = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__") for p in engine}
    for path in engine:
        me = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text("utf-8"))
        package = me if path.name == "__init__.py" else _package_of(path)
        targets = set()
        for _, module, imported in _imports(tree, package):
            submodules = {f"{module}.{n}" for n in imported if f"{module}.{n}" in names}
            targets |= submodules
            if module in names and len(submodules) < max(1, len(imported)):
                targets.add(module)
        graph[me] = targets - {me}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, set()) and not m.endswith("__init__"))
    assert not cycles, f"modules on an import cycle: {cycles}"


# --- One owner per job: each job below has one home; a second way fails here, not in review. ---

def _owned_elsewhere(path: Path, owners: set[str]) -> bool:
    return str(path.relative_to(REPO)) not in owners


IMAGE_SUFFIX_SPELLINGS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@pytest.mark.parametrize("path", [p for p in SOURCES if _owned_elsewhere(p, {"lora_foundry/media/images.py"})],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_image_suffixes_are_listed_only_by_media_images(path):
    """``images.IMAGE_SUFFIXES`` / ``images.is_image_name``: six hand-written lists once disagreed
    about which files were images (a TIFF was a training image in one place, skipped in another)."""
    found = [node.lineno for node in ast.walk(ast.parse(path.read_text("utf-8")))
             if isinstance(node, ast.Set | ast.Tuple | ast.List)
             and sum(isinstance(e, ast.Constant) and e.value in IMAGE_SUFFIX_SPELLINGS for e in node.elts) >= 2]
    assert not found, f"{path.name} lists image suffixes itself (lines {found}): use media.images"


def _weights_of_blend(node: ast.AST) -> bool:
    """``a * w + b * (1 - w)``: compositing over a background (the order of terms does not matter)."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)):
        return False
    sides = [n for n in (node.left, node.right) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)]
    inverse = [ast.dump(n.right) for side in sides for n in ast.walk(side) if isinstance(n, ast.BinOp)
               and isinstance(n.op, ast.Sub) and isinstance(n.left, ast.Constant) and n.left.value == 1]
    return len(sides) == 2 and any(w in ast.dump(side) for w in inverse for side in sides)


def _long_side_resizers(tree: ast.AST) -> list[int]:
    """Functions that scale by ``side / max(h, w)`` and call ``cv2.resize``: a resize to a long side."""
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        scales = any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and isinstance(n.right, ast.Call)
                     and _name(n.right.func) == "max" and len(n.right.args) == 2
                     and not any(isinstance(a, ast.Constant) for a in n.right.args) for n in ast.walk(func))
        if scales and any(_name(call.func) == "cv2.resize" for call in _calls(func)):
            found.append(func.lineno)
    return found


@pytest.mark.parametrize("path", [p for p in SOURCES if _owned_elsewhere(p, {"lora_foundry/media/images.py"})],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_flattening_and_long_side_resizing_live_in_media_images(path):
    """``images.flatten`` composites a cut-out over a colour and ``images.resize_long_side`` shrinks
    to a long side: kohya/subsets and the lighting tagger once carried copies of each."""
    tree = ast.parse(path.read_text("utf-8"))
    blends = [node.lineno for node in ast.walk(tree) if _weights_of_blend(node)]
    assert not blends, f"{path.name} composites over a background itself (lines {blends}): use images.flatten"
    resizers = _long_side_resizers(tree)
    assert not resizers, f"{path.name} resizes to a long side itself (lines {resizers}): use images.resize_long_side"


@pytest.mark.parametrize("path", [p for p in SOURCES if _owned_elsewhere(p, {"lora_foundry/cache.py"})],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_least_recently_used_caches_are_bounded_caches(path):
    """``cache.BoundedCache`` is the one LRU (eviction, hit counting): sam2's frame window
    (``video_tracking.ShotFrames``) once kept a hand-written OrderedDict LRU beside it."""
    found = [call.lineno for call in _calls(ast.parse(path.read_text("utf-8")))
             if isinstance(call.func, ast.Attribute) and (call.func.attr == "move_to_end" or (
                 call.func.attr == "popitem" and any(k.arg == "last" for k in call.keywords)))]
    assert not found, f"{path.name} evicts least recently used entries itself (lines {found}): use cache.BoundedCache"


@pytest.mark.parametrize("path", [p for p in SOURCES if _owned_elsewhere(p, {"lora_foundry/workspace/stage.py"})],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_stage_files_are_written_by_stage_folder(path):
    """``workspace.stage.StageFolder`` writes a stage's files for a local run and for a worker
    (``remote.RemoteStage`` once repeated every method): one place decides names and atomicity."""
    methods = {"path_for", "write_file", "write_image", "write_array"}
    found = [f"line {f.lineno}: {cls.name}.{f.name}" for cls in ast.walk(ast.parse(path.read_text("utf-8")))
             if isinstance(cls, ast.ClassDef) for f in cls.body if isinstance(f, ast.FunctionDef) and f.name in methods]
    assert not found, f"{path.name} writes stage files itself ({found}): subclass workspace.stage.StageFolder"


def _safetensors_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("safetensors"):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Attribute) and _name(node).startswith("safetensors."):
            found.add(node.attr)
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_lora_files_are_written_by_lora_files_and_read_by_weights_file(path):
    """LoRA safetensors are written by ``lora.files.write_lora`` (kohya's dtype layout, atomic; merge
    and LECO once had a copy each) and read by ``models.weights_file`` (the header check first)."""
    where = str(path.relative_to(REPO))
    imported = _safetensors_imports(path)
    if where != "lora_foundry/lora/files.py":
        assert not imported & {"save", "save_file"}, f"{path.name} writes safetensors itself: use lora.files.write_lora"
    comfy_reader = [call.lineno for call in _calls(ast.parse(path.read_text("utf-8")))
                    if _name(call.func).endswith("load_torch_file")]  # ComfyUI's reader: a second way
    if where != "lora_foundry/models/weights_file.py":
        assert not imported & {"load", "load_file", "safe_open"} and not comfy_reader, \
            f"{path.name} reads safetensors itself: use models.weights_file (load_safetensors, open_safetensors)"


def _allow_list_loops(tree: ast.AST) -> list[int]:
    """``for key, value in table.items(): if key not in allowed: <refuse>``: a table checked by hand."""
    found = []
    for loop in ast.walk(tree):
        if not (isinstance(loop, ast.For) and isinstance(loop.iter, ast.Call) and _name(loop.iter.func).endswith(".items")
                and isinstance(loop.target, ast.Tuple) and isinstance(loop.target.elts[0], ast.Name)):
            continue
        key = loop.target.elts[0].id
        looked_up = {t.id for n in ast.walk(loop) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                     and _name(n.value.func).endswith(".get") and n.value.args
                     and isinstance(n.value.args[0], ast.Name) and n.value.args[0].id == key
                     for t in n.targets if isinstance(t, ast.Name)}  # check = ALLOWED.get(key); if check is None
        for test in (n.test for n in ast.walk(loop) if isinstance(n, ast.If)):
            if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and (
                    (test.left.id == key and isinstance(test.ops[0], ast.NotIn))
                    or (test.left.id in looked_up and isinstance(test.ops[0], ast.Is))):
                found.append(loop.lineno)
    return found


TOML_READERS = [p for p in SOURCES if "tomllib" in p.read_text("utf-8")
                and _owned_elsewhere(p, {"lora_foundry/kohya/toml_schema.py"})]


@pytest.mark.parametrize("path", TOML_READERS, ids=lambda p: str(p.relative_to(REPO)))
def test_toml_tables_are_checked_by_table_problems(path):
    """A module that reads TOML checks a table's keys and values with ``kohya.toml_schema.table_problems``
    (dataset config, LECO prompt file, extra training options): the hand-written loops once differed
    in what they did with a key they did not know."""
    loops = _allow_list_loops(ast.parse(path.read_text("utf-8")))
    assert not loops, f"{path.name} checks a table's keys by hand (lines {loops}): use toml_schema.table_problems"


@pytest.mark.parametrize("path", [p for p in SOURCES if _owned_elsewhere(p, {"lora_foundry/models/clip_model.py"})],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_open_clip_is_embedded_through_clip_embedder(path):
    """``clip_model.Embedder`` is the one embedder type and ``ClipEmbedder`` the one open_clip adapter:
    clustering, selection, text choice and evaluation once had two abstractions and three adapters."""
    calls = [call.lineno for call in _calls(ast.parse(path.read_text("utf-8")))
             if _name(call.func).split(".")[-1] in {"embed_pil_batch", "embed_texts"}]
    assert not calls, f"{path.name} calls open_clip's embedding itself (lines {calls}): use clip_model.ClipEmbedder"


@pytest.mark.parametrize("path", [p for p in SOURCES if _owned_elsewhere(p, {"nodes/_preview.py", "nodes/_comfy.py"})],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_previews_are_written_and_shown_by_the_preview_module(path):
    """``nodes/_preview.py`` writes preview pictures (atomically, into ComfyUI's temp folder) and builds
    ``ui.images`` entries: three writers (one not atomic) and four entry builders once did it their way."""
    tree = ast.parse(path.read_text("utf-8"))
    entries = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Dict)
               and any(isinstance(k, ast.Constant) and k.value == "subfolder" for k in node.keys)]
    temp = [call.lineno for call in _calls(tree) if _name(call.func).split(".")[-1] == "temp_root"]
    assert not entries, f"{path.name} builds ui.images entries itself (lines {entries}): use nodes/_preview"
    assert not temp, f"{path.name} writes into ComfyUI's temp folder itself (lines {temp}): use nodes/_preview"


@pytest.mark.parametrize("path", [p for p in SOURCES if p.is_relative_to(REPO / "nodes") and p.name != "_tensors.py"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_nodes_convert_tensors_only_through_the_tensors_module(path):
    """IMAGE/MASK/embedding tensors become numpy (and back) in the tensors module only: the grid, the
    renderer, CLIP_VISION and the fingerprints once converted (and scaled, and rounded) each their way."""
    calls = [call.lineno for call in _calls(ast.parse(path.read_text("utf-8")))
             if _name(call.func).split(".")[-1] in {"numpy", "from_numpy"}]
    assert not calls, f"{path.name} converts tensors itself (lines {calls}): use the tensors module"


OUTSIDE_CHECKOUT = re.compile(r"""["']shared["']\s*/|\.\./shared/|parent\s*/\s*["']shared""")


@pytest.mark.parametrize("path", sorted(p for folder in ("tests", "bench") for p in (REPO / folder).rglob("*.py")
                                        if p.name != "test_code_rules.py"), ids=lambda p: str(p.relative_to(REPO)))
def test_tests_and_benches_read_nothing_beside_the_checkout(path):
    """A fresh clone has nothing beside it: tests and benches use the bundled clip or clips they make
    (tests/media_clips.py), never a ``../shared`` folder (89 tests once skipped in a bare clone)."""
    found = [n for n, line in enumerate(path.read_text("utf-8").splitlines(), 1) if OUTSIDE_CHECKOUT.search(line)]
    assert not found, f"{path.name} reads ../shared (lines {found})"
