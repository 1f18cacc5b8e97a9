"""Missing weights fail at once, naming the file and the folder; nothing ever touches the network.

A proxy on 127.0.0.1 that accepts connections and never answers stands in for a network that drops
packets (where facexlib's and LaMa's usual downloaders hang forever). With HTTP(S)_PROXY pointing
at it, every loader must still raise its "put FILE in FOLDER" error, and the proxy must see no
connection at all.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from lora_foundry.models.lama_model import LAMA_SPEC, load_lama
from lora_foundry.models.registry import ModelMissingError, resolve
from lora_foundry.models.sam2_model import SAM2_SPEC, load_sam2

HANG_GUARD_S = 60.0  # a hang fails the test instead of blocking CI; not a speed requirement


class BlackHoleProxy:
    """Accepts TCP connections and never sends a byte; counts the connections it accepted."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.accepted.append(conn)  # held open, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.accepted:
            conn.close()
        self.server.close()


@pytest.fixture()
def black_hole_proxy(monkeypatch):
    proxy = BlackHoleProxy()
    url = f"http://127.0.0.1:{proxy.port}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    monkeypatch.delenv("LORA_FOUNDRY_MODELS", raising=False)
    yield proxy
    proxy.close()


def run_guarded(call):
    """Run ``call`` in a thread; return (exception, seconds). Fails the test if it never returns."""
    outcome: dict[str, object] = {}

    def target() -> None:
        start = time.monotonic()
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - the error is what we inspect
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "the loader hung"
    return outcome.get("error"), outcome["seconds"]


@pytest.mark.parametrize("spec", [SAM2_SPEC, LAMA_SPEC], ids=["sam2", "lama"])
def test_missing_file_names_file_and_folder(spec, tmp_path, monkeypatch, black_hole_proxy):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "models" / spec.folder
    error, seconds = run_guarded(lambda: resolve(spec, None, extra_dirs=[folder]))
    assert isinstance(error, ModelMissingError)
    message = str(error)
    assert spec.default_file() in message and str(folder) in message
    assert spec.urls[spec.default_file()] in message  # where to get it
    assert black_hole_proxy.accepted == []
    print(f"{spec.backend}: failed in {seconds:.3f} s: {message[:100]}...")


def test_openers_refuse_missing_files_without_network(tmp_path, black_hole_proxy):
    for opener in (lambda: load_sam2(tmp_path / "sam2.1_hiera_tiny.pt", "cpu"),
                   lambda: load_lama(tmp_path / "big-lama.pt", "cpu")):
        error, _ = run_guarded(opener)
        assert isinstance(error, ModelMissingError)
    assert black_hole_proxy.accepted == []


def test_loader_nodes_fail_fast_behind_a_dead_proxy(pack, tmp_path, monkeypatch, black_hole_proxy):
    """The nodes users run: both loaders raise the registry's error; the fallback still works."""
    monkeypatch.chdir(tmp_path)
    loaders = pack.nodes.loaders
    pack_missing_error = pack.lora_foundry.models.registry.ModelMissingError  # the pack's own class
    for call, name in ((lambda: loaders.SAM2Loader().load("sam2.1_hiera_tiny.pt", "auto (from file name)", "cpu"),
                        "sam2.1_hiera_tiny.pt"),
                       (lambda: loaders.LaMaLoader().load("big-lama.pt", "error", "cpu"), "big-lama.pt")):
        error, seconds = run_guarded(call)
        assert isinstance(error, pack_missing_error), error
        assert name in str(error) and "models/" in str(error)
        assert str(tmp_path) not in str(error)  # clients see folders relative to ComfyUI's (issue 23)
        print(f"{name}: node failed in {seconds:.3f} s")
    (fallback,) = loaders.LaMaLoader().load("big-lama.pt", "opencv fallback", "cpu")
    assert fallback.kind.startswith("opencv-telea") and "fallback" in fallback.kind
    assert black_hole_proxy.accepted == []


def test_lama_model_env_var_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "elsewhere" / "my-lama.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"x")
    monkeypatch.setenv("LAMA_MODEL", str(weights))
    assert resolve(LAMA_SPEC, None, extra_dirs=[tmp_path / "models" / "lama"]) == weights
    monkeypatch.setenv("LAMA_MODEL", str(tmp_path / "gone.pt"))
    with pytest.raises(ModelMissingError, match="LAMA_MODEL=.*gone.pt"):
        resolve(LAMA_SPEC, None)


def test_installed_file_is_found_in_a_comfyui_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LORA_FOUNDRY_MODELS", raising=False)
    extra = tmp_path / "extra_models" / "sam2"
    extra.mkdir(parents=True)
    (extra / "sam2.1_hiera_small.safetensors").write_bytes(b"x")
    found = resolve(SAM2_SPEC, "sam2.1_hiera_small.safetensors", extra_dirs=[extra])
    assert found == extra / "sam2.1_hiera_small.safetensors"


def test_no_backend_is_imported_to_report_a_missing_file(tmp_path):
    """The error comes from the registry before sam2/torch are touched (checked in a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lora_foundry.models.registry import resolve, ModelMissingError\n"
        "from lora_foundry.models.sam2_model import SAM2_SPEC\n"
        "from lora_foundry.models.lama_model import LAMA_SPEC\n"
        "for spec in (SAM2_SPEC, LAMA_SPEC):\n"
        "    try:\n"
        f"        resolve(spec, None, extra_dirs=[{str(tmp_path)!r}])\n"
        "    except ModelMissingError:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'sam2', 'cv2') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("LAMA_MODEL", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=HANG_GUARD_S, check=True)
    assert result.stdout.strip() == "[]"


def test_a_link_in_a_model_folder_to_a_file_outside_it_is_answered_as_missing(tmp_path, monkeypatch):
    """A name resolves only inside the model folders after links are followed (issue 23): a link to a
    file elsewhere gets the answer a missing file gets; a model folder that is itself a link works."""
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    monkeypatch.delenv("LORA_FOUNDRY_MODELS", raising=False)
    store, outside = tmp_path / "store", tmp_path / "private"
    store.mkdir()
    outside.mkdir()
    (store / "big-lama.pt").write_bytes(b"PK\x03\x04" + bytes(60))
    (outside / "secret.pt").write_bytes(b"PK\x03\x04" + bytes(60))
    linked_folder = tmp_path / "lama"
    linked_folder.symlink_to(store, target_is_directory=True)
    assert resolve(LAMA_SPEC, "big-lama.pt", extra_dirs=[linked_folder]).name == "big-lama.pt"
    (store / "other.pt").symlink_to(outside / "secret.pt")
    answers = []
    for name in ("other.pt", "missing.pt"):
        with pytest.raises(ModelMissingError) as refused:
            resolve(LAMA_SPEC, name, extra_dirs=[linked_folder])
        answers.append(str(refused.value).replace(name, "X"))
    assert answers[0] == answers[1] and "private" not in answers[0]


def test_a_folder_reached_two_ways_is_searched_and_named_once(tmp_path, monkeypatch):
    """ComfyUI's folder for LaMa and the working folder's ``models/lama`` were the same place spelled
    two ways, and the missing-file message listed it twice ("Searched: models/lama, models/lama")."""
    folder = tmp_path / "models" / "lama"
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spelled_again = tmp_path / "models" / ".." / "models" / "lama"
    with pytest.raises(ModelMissingError) as refused:
        resolve(LAMA_SPEC, "big-lama.pt", [spelled_again])
    searched = str(refused.value).split("Searched: ", 1)[1]
    assert searched.count("lama") == 1, searched
