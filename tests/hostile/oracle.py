"""The hostile-input oracle (issue 23): generated hostile values for every input of every node,
run the way ComfyUI runs them, with an audit hook recording every file the pack touches.

Nothing here names a node or an input: ``node_inputs`` reads each class's ``INPUT_TYPES``,
``hostile_values`` makes values per input type, ``run_case`` validates (ComfyUI's own checks as
0.3.64/0.8.0 do them, then the node's ``VALIDATE_INPUTS``) and, when validation passes, calls the
node function. A new node or input is covered with no edit here.

What an ``Outcome`` lets a test assert:
- ``touches``: every path opened, listed, renamed, removed or connected to (``sys.addaudithook``:
  ``open``, ``os.listdir``/``os.scandir``, ``os.rename``/``os.replace``/``os.remove``/``os.mkdir``,
  ``shutil.*``, ``sqlite3.connect``, ``glob.glob``, plus ``lora_foundry.read`` which the pack raises
  before a C library opens a file);
- ``message``: the refusal or the error, to check that it names the input, shows no absolute server
  path, and is the same for an existing and a missing outside target;
- ``refused_at``: "validation" (never queued, as ComfyUI would answer HTTP 400) or "run";
- ``largest_output``: the largest file written or string returned (a size cap);
- a per-case deadline (``CASE_DEADLINE_S``, SIGALRM) so no value hangs the suite.
"""

from __future__ import annotations

import getpass
import inspect
import math
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CASE_DEADLINE_S = 30
AUDITED = frozenset({
    "open", "os.listdir", "os.scandir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir",
    "os.symlink", "os.link", "os.truncate", "os.chmod", "os.utime", "shutil.copyfile", "shutil.copymode",
    "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.rmtree", "shutil.unpack_archive",
    "sqlite3.connect", "glob.glob", "lora_foundry.read",
})
WIDGETS = ("INT", "FLOAT", "STRING", "BOOLEAN")
_recorders: list[list[tuple[str, str]]] = []  # the hook cannot be removed: it records only inside ``recording``


TWO_PATHS = frozenset({"os.rename", "os.replace", "os.symlink", "os.link", "shutil.copyfile", "shutil.copymode",
                       "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.unpack_archive"})


def _hook(event: str, args: tuple) -> None:
    if not _recorders or event not in AUDITED:
        return
    for arg in args[:2] if event in TWO_PATHS else args[:1]:
        if isinstance(arg, (str, bytes, os.PathLike)):
            text = os.fsdecode(arg)
            if text and "\x00" not in text:
                _recorders[-1].append((event, os.path.abspath(text)))


def _install_hook() -> None:
    if not getattr(sys, "_lf_oracle_hook", False):
        sys.addaudithook(_hook)
        sys._lf_oracle_hook = True


@contextmanager
def recording() -> Iterator[list[tuple[str, str]]]:
    """Every (event, absolute path) the code inside touches, from any thread."""
    _install_hook()
    touches: list[tuple[str, str]] = []
    _recorders.append(touches)
    try:
        yield touches
    finally:
        _recorders.remove(touches)


@dataclass(frozen=True)
class Targets:
    """Outside targets in a folder no workflow may read, each existing one with a missing twin whose
    name has the same length (so a message cut short cuts both alike): a picture, a model-like file
    (a loader that accepted it would open it) and a folder."""

    existing: Path
    missing: Path
    folder: Path
    model: Path | None = None
    model_missing: Path | None = None
    folder_missing: Path | None = None


@dataclass(frozen=True)
class Value:
    """A hostile value of a family; ``twin`` is the same value aimed at the missing target."""

    family: str
    value: Any
    twin: Any = None


def slash_home_user() -> str | None:
    """A system user whose home is ``/`` (``~user/srv/x`` is then ``/srv/x``), if there is one."""
    try:
        import pwd

        return next((entry.pw_name for entry in pwd.getpwall() if entry.pw_dir == "/"), None)
    except ImportError:
        return None


def _aimed_at(target: Path) -> dict[str, str]:
    text = str(target)
    rel = text.lstrip("/")
    user = slash_home_user()
    return {
        "absolute": text,
        "tilde_user": f"~{user}/{rel}" if user else f"~/{rel}",
        "traversal": "../" * 16 + rel,
        "traversal_backslash": "..\\" * 16 + rel.replace("/", "\\"),
        "url_encoded": "%2e%2e%2f" * 16 + rel,
        "file_url": "file://" + text,
    }


def _aimed(targets: Targets, model_names: bool) -> list[Value]:
    """Each path family aimed at every existing target, with its missing twin; model-like files and
    folders only for combo inputs (where model names go)."""
    pairs = [("", targets.existing, targets.missing)]
    if model_names and targets.model is not None:
        pairs.append(("_model", targets.model, targets.model_missing))
    if model_names and targets.folder_missing is not None:
        pairs.append(("_folder", targets.folder, targets.folder_missing))
    values = []
    for suffix, existing, missing in pairs:
        one, other = _aimed_at(existing), _aimed_at(missing)
        values += [Value(family + suffix, one[family], other[family]) for family in one]
    return values


TEXT_FAMILIES: dict[str, list[Any]] = {
    "control": ["a\nb", "x\r\ny", "\x1b[2J"],
    "nul": ["name\x00.png"],
    "over_long": ["\u00e9" * 300, "\U0001d49c" * 120],
    "format_string": ["{trigger:x>3000000}", "{trigger!r} {class_word[0]}", "{0.__class__.__mro__}", "%s%s%n"],
    "deep_nesting": ["[" * 5000 + "]" * 5000, "a = " + "[" * 5000 + "]" * 5000, "{" * 5000],
    "windows": ["C:\\Windows\\win.ini", "\\\\server\\share\\x.pt"],
    "colour": ["#GGGGGG", "#12345"],
    "huge": ["x" * 300_000],
}
NUMBER_FAMILIES: dict[str, dict[str, list[Any]]] = {
    "FLOAT": {"nan_inf": [math.nan, math.inf, -math.inf], "huge_number": [1e308, -1e308]},
    "INT": {"huge_number": [2 ** 64, -(2 ** 64), 10 ** 30]},
}
SOCKET_FAMILIES: dict[str, list[Any]] = {"wrong_socket_type": ["/etc/passwd", {"samples": 1}, [1, 2, 3], 3.5]}


def hostile_values(kind: Any, targets: Targets) -> list[Value]:
    """The generated corpus for an input of ``kind`` (a V1 type name, or a list for a combo)."""
    if isinstance(kind, list) or kind == "STRING":
        return _aimed(targets, isinstance(kind, list)) + [
            Value(family, value) for family, values in TEXT_FAMILIES.items() for value in values]
    if kind in NUMBER_FAMILIES:
        return [Value(family, value) for family, values in NUMBER_FAMILIES[kind].items() for value in values]
    if kind in WIDGETS:
        return []
    return [Value(family, value) for family, values in SOCKET_FAMILIES.items() for value in values]


@dataclass
class Input:
    name: str
    kind: Any
    options: dict[str, Any]
    required: bool


def node_inputs(cls: type) -> list[Input]:
    declared = cls.INPUT_TYPES()
    found = []
    for section in ("required", "optional"):
        for name, spec in declared.get(section, {}).items():
            found.append(Input(name, spec[0], dict(spec[1]) if len(spec) > 1 and spec[1] else {}, section == "required"))
    return found


def default_of(item: Input, sockets: dict[str, Any]) -> Any:
    """The value a fresh node would hold: the widget default, the first choice, a socket fixture."""
    if isinstance(item.kind, list):
        return item.options.get("default", item.kind[0] if item.kind else "")
    if item.kind in WIDGETS:
        return item.options.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[item.kind])
    return sockets.get(item.kind)


# Families no node function may ever receive: ComfyUI's validation plus the node's must refuse them.
REFUSED_AT_VALIDATION = frozenset({"nan_inf", "wrong_socket_type", "huge"})
# Exceptions that tell a user nothing (a value reached code that did not expect it).
RAW_ERRORS = ("builtins.IndexError", "builtins.KeyError", "builtins.AttributeError", "builtins.TypeError",
              "builtins.RecursionError", "builtins.ZeroDivisionError", "builtins.OverflowError",
              "builtins.UnicodeEncodeError", "builtins.NameError", "invalid literal for int()",
              "cannot convert float NaN", "could not convert string to float", "[Errno 36]")


@dataclass
class Outcome:
    refused_at: str | None = None  # "validation", "run" or None (ran to the end)
    message: str = ""
    touches: list[tuple[str, str]] = field(default_factory=list)
    largest_output: int = 0
    timed_out: bool = False


def comfy_validation(cls: type, inputs: list[Input], values: dict[str, Any]) -> str | None:
    """ComfyUI's own checks before ``VALIDATE_INPUTS`` (execution.validate_inputs, 0.3.64/0.8.0): an
    input named by ``VALIDATE_INPUTS`` (or all, when it takes ``**kwargs``) skips min/max and the
    combo list; INT/FLOAT/STRING are converted; sockets given a literal are not checked at all."""
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    spec = inspect.getfullargspec(validate) if validate is not None else None
    listed = set(spec.args) if spec else set()
    for item in inputs:
        if item.name not in values or values[item.name] is None:
            continue
        value = values[item.name]
        try:
            if item.kind in ("INT", "FLOAT", "STRING"):
                value = {"INT": int, "FLOAT": float, "STRING": str}[item.kind](value)
        except (ValueError, TypeError, OverflowError) as error:
            return f"Failed to convert an input value to a {item.kind} value: {item.name}, {error}"
        if item.name in listed or (spec is not None and spec.varkw):
            continue
        if "min" in item.options and item.kind in ("INT", "FLOAT") and value < item.options["min"]:
            return f"Value smaller than min: {item.name}"
        if "max" in item.options and item.kind in ("INT", "FLOAT") and value > item.options["max"]:
            return f"Value bigger than max: {item.name}"
        if isinstance(item.kind, list) and value not in item.kind:
            return f"Value not in list: {item.name}"
    return None


def custom_validation(cls: type, values: dict[str, Any]) -> str | None:
    """The node's ``VALIDATE_INPUTS`` called as ComfyUI calls it (only the inputs it names); an exception
    it raises is a refusal at validation too, as ComfyUI's ``validate_prompt`` treats it."""
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    if validate is None:
        return None
    spec = inspect.getfullargspec(validate)
    given = {k: v for k, v in values.items() if spec.varkw or k in spec.args}
    try:
        answer = validate(**given)
    except Exception as error:  # noqa: BLE001 - ComfyUI lists any exception here as the node's refusal
        named = type(error).__name__ == "InputRefused"
        return str(error) if named else f"{type(error).__module__}.{type(error).__name__}: {error}"
    return None if answer is True else str(answer)


class _Deadline(Exception):
    pass


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise _Deadline(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _size(result: Any) -> int:
    """The longest text a node returned (reports, names), in characters."""
    if isinstance(result, str):
        return len(result)
    if isinstance(result, dict):
        return max([_size(v) for v in result.values()] or [0])
    if isinstance(result, (list, tuple)):
        return max([_size(v) for v in result[:50]] or [0])
    return 0


def run_case(cls: type, values: dict[str, Any], watch: Path, seconds: int = CASE_DEADLINE_S,
             keep: Path | None = None) -> Outcome:
    """Validate ``values`` as ComfyUI would, then run the node; record what it touched and wrote.
    With ``keep``, files the case created under ``watch`` outside ``keep`` are removed afterwards, so
    each case meets the same state (a dataset written by one case would make the next one stop at
    "already exists" before reaching the value under test)."""
    inputs = node_inputs(cls)
    outcome = Outcome()
    before = {p: p.stat().st_size for p in watch.rglob("*") if p.is_file()}
    with recording() as touches:
        try:
            with deadline(seconds):
                refusal = comfy_validation(cls, inputs, values) or custom_validation(cls, values)
                if refusal is not None:
                    outcome.refused_at, outcome.message = "validation", refusal
                else:
                    result = getattr(cls(), cls.FUNCTION)(**{k: v for k, v in values.items() if v is not None})
                    outcome.largest_output = _size(result)
        except _Deadline as error:
            outcome.timed_out, outcome.refused_at, outcome.message = True, "run", str(error)
        except Exception as error:  # noqa: BLE001 - the error is what the oracle inspects
            outcome.refused_at, outcome.message = "run", f"{type(error).__module__}.{type(error).__name__}: {error}"
    outcome.touches = list(touches)
    written = [p for p in watch.rglob("*") if p.is_file() and before.get(p) != p.stat().st_size]
    outcome.largest_output = max([outcome.largest_output, *(p.stat().st_size for p in written)])
    if keep is not None:
        _remove_new(watch, before, keep)
    return outcome


def _remove_new(watch: Path, before: dict[Path, int], keep: Path) -> None:
    """Delete the files created under ``watch`` (a test's temporary folder) since ``before``, except
    inside ``keep``, then the folders left empty."""
    for path in sorted(watch.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path == keep or keep in path.parents or path in before:
            continue
        if path.is_file() or path.is_symlink():
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()) and not any(path in b.parents for b in before):
            path.rmdir()


def outside(touches: list[tuple[str, str]], allowed: list[Path], forbidden: list[Path]) -> list[tuple[str, str]]:
    """The touches (symlinks resolved) inside a forbidden folder or outside every allowed one."""
    allowed_real = [Path(os.path.realpath(p)) for p in allowed]
    forbidden_real = [Path(os.path.realpath(p)) for p in forbidden]
    bad = []
    for event, path in touches:
        real = Path(os.path.realpath(path))
        if any(real == f or f in real.parents for f in forbidden_real) or not any(
                real == a or a in real.parents for a in allowed_real):
            bad.append((event, path))
    return bad


def system_roots() -> list[Path]:
    """Where Python, its libraries and the kernel's files live: reading them is not the workflow's doing."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path("/usr"), Path("/lib"),
             Path("/lib64"), Path("/proc"), Path("/sys"), Path("/dev"), Path("/etc/ssl"), Path("/etc/localtime"),
             Path("/etc/mime.types"), Path("/etc/ld.so.cache")}
    roots |= {Path(p) for p in sys.path if p and Path(p).is_dir() and "site-packages" in p}
    roots.add(Path(tempfile.gettempdir()) / f"torchinductor_{getpass.getuser()}")  # torch's own compile cache
    return sorted(roots)
