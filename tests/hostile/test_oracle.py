"""The oracle over every registered node (issue 23 item 5): each input of each node gets the generated
hostile corpus of its type (``oracle.hostile_values``), run as ComfyUI runs it, and the same five
properties must hold for every value, with no case written by hand:

1. nothing is opened, listed, written or connected to outside the allowed roots (audit hook);
2. a refusal at validation names the input;
3. no message shows an absolute server path (the server's folders, the pack's install);
4. an existing and a missing outside target get the same answer (no file-existence oracle);
5. no output is larger than the size cap (nor twice the value given), and no case passes the deadline;
6. NaN/inf, wrong socket types and over-long text never reach the node function (refused at validation,
   so they never enter ComfyUI's queue or history), and no run fails with a raw Python error
   (``IndexError``, ``'str' object has no attribute``, ``RecursionError``, ``Errno 36`` ...).

To bound CI time each input gets the first value of every family (all path families, each aimed at an
existing and a missing target); ``LF_ORACLE_FULL=1`` runs every value of the corpus. The counts are
printed per node.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import REPO, import_pack
from hostile import oracle

SIZE_CAP = 1 << 20
FULL = os.environ.get("LF_ORACLE_FULL") == "1"
NODES = sorted(import_pack().NODE_CLASS_MAPPINGS)
MODEL_FOLDERS = ("sam2", "lama", "open_clip", "rtmpose", "facedetection", "expression", "wd14", "loras",
                 "checkpoints", "diffusion_models", "text_encoders", "vae", "clip")


@pytest.fixture()
def stage(server, monkeypatch):
    """The server's folders with model folders, and an LF_FRAMES handle of two pictures."""
    models = server.tmp / "models"
    for folder in MODEL_FOLDERS:
        (models / folder).mkdir(parents=True, exist_ok=True)
    comfy = server.nodes._comfy
    monkeypatch.setattr(comfy, "model_folder_paths", lambda folder: [models / folder])
    monkeypatch.setattr(comfy, "list_models", lambda folder: sorted(
        p.name for p in (models / folder).iterdir()) if (models / folder).is_dir() else [])
    monkeypatch.delenv("LORA_FOUNDRY_MODELS", raising=False)
    monkeypatch.chdir(server.tmp)  # outside ComfyUI, <cwd>/models is a model folder (registry.search_dirs)
    for index in range(2):
        server.picture(server.input / "pics" / f"{index}.png", (60 + 40 * index, 90, 120))
    frames, _ = server.nodes.frames.LoadImageFolder().load("pics", "oracle_ws", 0, False)
    server.made.mkdir(exist_ok=True)
    (server.made / "weights.pt").write_bytes(b"a model a loader must never open")
    targets = oracle.Targets(server.private / "secret.png", server.private / "absent.png", server.private / "photos",
                             server.made / "weights.pt", server.made / "missing.pt", server.private / "absent")
    allowed = [server.tmp / name for name in ("input", "output", "models", "user", "temp")]
    forbidden = [server.private, server.made, Path("/etc/passwd")]  # and anything not allowed
    return server, {"LF_FRAMES": frames}, targets, allowed + oracle.system_roots() + [REPO], forbidden


def _sample(values: list[oracle.Value]) -> list[oracle.Value]:
    """The first value of each family, or all of them with ``LF_ORACLE_FULL=1``."""
    if FULL:
        return values
    families: dict[str, oracle.Value] = {}
    for value in values:
        families.setdefault(value.family, value)
    return list(families.values())


CUT_ENDS = ("...", "\u2026", "'", '"')


def _cut_forms(form: str, message: str) -> set[str]:
    """Starts of ``form`` that ``message`` quotes cut short: each followed there by an ellipsis or the
    closing quote (only those: a start of a path the value shares with a leaked one is not the value)."""
    found = set()
    for ellipsis in CUT_ENDS:
        end = message.find(ellipsis)
        while end != -1:
            for length in range(min(end, len(form)), 2, -1):
                if message[end - length:end] == form[:length]:
                    found.add(form[:length] + ellipsis)
                    break
            end = message.find(ellipsis, end + 1)
    return found


def _masked(message: str, value) -> str:
    """``message`` with the value the client gave taken out: whole or cut short (any length, ending in
    an ellipsis or a quote), as given or as repr."""
    text = str(value)
    forms = {text, repr(text)[1:-1]}
    for form in list(forms):
        forms |= _cut_forms(form, message)
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= 3:
            message = message.replace(form, "<value>")
    return message


def _server_paths(message: str, value, server) -> list[str]:
    """Absolute server paths in ``message`` once the value the client gave is taken out."""
    message = _masked(message, value)
    found = []
    for root in (server.tmp, REPO, Path(REPO).parent):
        # the root as a whole path: "/work" shows a server path, "output/lora_foundry/workspaces" does not
        if re.search(rf"(?<![\w.-]){re.escape(str(root))}(?![\w.-])", message):
            found.append(str(root))
    return found


@pytest.mark.parametrize("node_id", NODES)
def test_no_hostile_value_escapes(stage, node_id, capsys):
    server, sockets, targets, allowed, forbidden = stage
    cls = server.pack.NODE_CLASS_MAPPINGS[node_id]
    inputs = oracle.node_inputs(cls)
    base = {item.name: oracle.default_of(item, sockets) for item in inputs}
    keep = Path(sockets["LF_FRAMES"].workspace).parent  # every case starts from the workspaces alone (stages cached)
    baseline = oracle.run_case(cls, base, server.output, keep=keep)  # a refusal of the defaults is no input's doing
    problems, runs = [], 0
    for item in inputs:
        for value in _sample(oracle.hostile_values(item.kind, targets)):
            outcomes = []
            for given in (value.value, value.twin) if value.twin is not None else (value.value,):
                outcome = oracle.run_case(cls, {**base, item.name: given}, server.output, keep=keep)
                runs += 1
                outcomes.append(outcome)
                where = f"{node_id}.{item.name} [{value.family}] {str(given)[:60]!r}"
                bad = oracle.outside(outcome.touches, allowed, forbidden)
                if bad:
                    problems.append(f"{where}: touched {[(e, os.path.relpath(p, server.tmp)) for e, p in bad[:3]]}")
                if (outcome.refused_at == "validation" and item.name not in outcome.message
                        and outcome.message != baseline.message):
                    problems.append(f"{where}: refusal does not name the input: {outcome.message[:200]}")
                leaked = _server_paths(outcome.message, given, server)
                if leaked:
                    problems.append(f"{where}: message shows server paths {leaked}: {outcome.message[:300]}")
                if outcome.largest_output > max(SIZE_CAP, 2 * len(str(given))):
                    problems.append(f"{where}: wrote or returned {outcome.largest_output} bytes")
                if outcome.timed_out:
                    problems.append(f"{where}: {outcome.message}")
                if value.family in oracle.REFUSED_AT_VALIDATION and outcome.refused_at != "validation":
                    problems.append(f"{where}: not refused at validation ({outcome.refused_at}: {outcome.message[:200]})")
                if (outcome.refused_at == "run" and outcome.message != baseline.message
                        and any(raw in outcome.message for raw in oracle.RAW_ERRORS)):
                    problems.append(f"{where}: unclear error: {outcome.message[:200]}")
            if len(outcomes) == 2 and (outcomes[0].refused_at != outcomes[1].refused_at
                                       or _masked(outcomes[0].message, value.value)
                                       != _masked(outcomes[1].message, value.twin)):
                problems.append(f"{node_id}.{item.name} [{value.family}]: existing and missing targets answer "
                                f"differently: {outcomes[0].message[:200]!r} vs {outcomes[1].message[:200]!r}")
    with capsys.disabled():
        print(f"\noracle {node_id}: {len(inputs)} inputs, {runs} runs, {len(problems)} problems")
    assert not problems, "\n".join(problems[:40])


def test_the_leak_check_finds_a_server_path_but_not_a_folder_that_starts_like_one(tmp_path):
    """A repo checked out at /work made "output/lora_foundry/workspaces" read as the path "/work"."""
    server = type("Server", (), {"tmp": tmp_path})()
    root = Path(REPO).parent
    assert _server_paths(f"cannot read {REPO / 'nodes' / 'x.py'}", "v", server) == [str(REPO), str(root)]
    assert _server_paths(f"failed in {tmp_path}", "v", server) == [str(tmp_path)]
    shaped = f"images @ output/lora_foundry{root}spaces/oracle_ws{root}.bak x{root}"
    assert _server_paths(shaped, "v", server) == []


def test_a_value_quoted_back_cut_at_any_length_is_the_clients_own_text_but_a_leak_beside_it_is_not(tmp_path):
    """Twins that differ only after the cut answer alike; a server path that merely starts like the
    value (it shares the folder) still counts as shown."""
    server = type("Server", (), {"tmp": tmp_path})()
    existing, missing = f"../{tmp_path}/private/secret.txt", f"../{tmp_path}/private/absent.txt"
    differ = len(f"../{tmp_path}/private/")  # where the twins part
    for cut in (differ + 2, differ + 5):
        for end in ("...", "'"):
            said = [f"input 'x' '{value[:cut]}{end} is not one of a, b" for value in (existing, missing)]
            assert _masked(said[0], existing) == _masked(said[1], missing)
    leak = f"input 'x' {existing[:12]}... cannot be read: {tmp_path}/private/other.txt"
    assert _server_paths(leak, existing, server) == [str(tmp_path)]
