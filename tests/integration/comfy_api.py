"""A tiny stdlib client for a real ComfyUI, and a launcher for a throw-away server.

Only what the integration tests need: start ComfyUI on a free port with its own output, input,
temp and user folders; GET /object_info; POST /prompt; poll GET /history/<id> until the prompt
finished. No websocket: polling the history is enough to know a prompt's outcome.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class PromptRejected(RuntimeError):
    """POST /prompt answered 400: the graph did not validate (``node_errors`` says why)."""

    def __init__(self, body: dict) -> None:
        super().__init__(json.dumps(body, indent=1)[:4000])
        self.body = body


class ComfyClient:
    def __init__(self, base_url: str, timeout: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _request(self, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data,
                                         headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")

    def get(self, path: str) -> Any:
        return self._request(path)

    def view(self, image: dict) -> bytes:
        """The bytes the front end shows for a ``{filename, subfolder, type}`` ui image."""
        query = urllib.parse.urlencode({k: image.get(k, "") for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(f"{self.base_url}/view?{query}", timeout=self.timeout) as response:
            return response.read()

    def object_info(self) -> dict[str, dict]:
        return self.get("/object_info")

    def submit(self, prompt: dict, client_id: str = "lf-tests") -> dict:
        """POST /prompt; its answer: ``prompt_id`` and ``node_errors`` (ComfyUI queues the outputs
        that validate and lists the others there)."""
        try:
            return self._request("/prompt", {"prompt": prompt, "client_id": client_id})
        except urllib.error.HTTPError as error:
            if error.code == 400:
                raise PromptRejected(json.loads(error.read() or b"{}")) from None
            raise

    def queue(self, prompt: dict, client_id: str = "lf-tests") -> str:
        return self.submit(prompt, client_id)["prompt_id"]

    def ended(self, prompt_id: str) -> dict | None:
        """The history entry of ``prompt_id`` if it has finished (success or error), else None."""
        entry = self.get(f"/history/{prompt_id}").get(prompt_id)
        return entry if entry and entry.get("status", {}).get("status_str") in ("success", "error") else None

    def wait(self, prompt_id: str, timeout: float = 600, poll: float = 0.5) -> dict:
        """The history entry of ``prompt_id`` once it finished (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if entry := self.ended(prompt_id):
                return entry
            time.sleep(poll)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        return self.wait(self.queue(prompt), timeout)


def status_messages(entry: dict, kind: str) -> list[dict]:
    """The payloads of one kind of status message (execution_cached, execution_error, ...)."""
    return [data for name, data in entry.get("status", {}).get("messages", []) if name == kind]


def screenshot_folder(default: Path) -> Path:
    """Where a browser check keeps its screenshots: the folder ``LF_UI_SCREENSHOT`` names, else
    ``default``; made if missing. One folder for every check, each writing its own file names (a
    file name in that variable made the other checks fail on a folder, or write over each other)."""
    folder = Path(os.environ.get("LF_UI_SCREENSHOT") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComfyServer:
    """``python main.py --cpu`` from ``comfy_dir`` on 127.0.0.1 (port ``$COMFYUI_PORT``, else a free
    one), with every folder it writes under ``work_dir`` (so the checkout is never written to),
    stopped on exit. ``extra_args`` are added to the command line (e.g.
    ``--extra-model-paths-config FILE``)."""

    def __init__(self, comfy_dir: Path, python: Path, work_dir: Path, port: int | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.comfy_dir, self.python, self.work_dir = Path(comfy_dir), Path(python), Path(work_dir)
        self.extra_args = tuple(str(arg) for arg in extra_args)
        self.port = port or int(os.environ.get("COMFYUI_PORT") or 0) or free_port()
        self.dirs = {name: self.work_dir / name for name in ("output", "input", "temp", "user")}
        self.log_path = self.work_dir / "comfyui.log"
        self.process: subprocess.Popen | None = None
        self.client = ComfyClient(f"http://127.0.0.1:{self.port}")

    def command(self) -> list[str]:
        return [str(self.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                "--disable-auto-launch",
                "--output-directory", str(self.dirs["output"]), "--input-directory", str(self.dirs["input"]),
                "--temp-directory", str(self.dirs["temp"]), "--user-directory", str(self.dirs["user"]),
                *self.extra_args]

    def start(self, timeout: float = 300) -> "ComfyServer":
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        self._returning_user()
        env = {k: v for k, v in os.environ.items() if k != "LORA_FOUNDRY_OUTPUT"}
        env["HF_HUB_OFFLINE"] = "1"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.comfy_dir, stdout=log,
                                            stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                self.client.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log()[-4000:]}")

    def _returning_user(self) -> None:
        """Front-end settings of a user who has opened ComfyUI before: on a first visit both front
        ends open the template browser over the graph, and 1.35.9 no longer closes it on Escape, so
        every browser check's screenshot on ComfyUI 0.8.0 showed the dialog instead of the graph."""
        settings = self.dirs["user"] / "default" / "comfy.settings.json"
        if not settings.exists():
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}), encoding="utf-8")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    @classmethod
    def for_pack(cls, comfy_dir: Path, work: Path, repo: Path, *extra_args: str) -> "ComfyServer":
        """A server of ComfyUI's own Python whose ``--base-directory`` (``pack_base``, kept as ``base``)
        holds ``repo`` as its one custom node pack, with all it writes under ``work``."""
        base = pack_base(work, repo)
        server = cls(comfy_dir, comfy_python(comfy_dir), work / "comfyui",
                     extra_args=("--base-directory", str(base), *extra_args))
        server.base = base
        return server

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pack_base(work: Path, repo: Path) -> Path:
    """A ``--base-directory`` under ``work`` whose ``custom_nodes/lora_foundry`` links to ``repo``, so
    the ComfyUI checkout is never written to and needs no link of its own."""
    base = work / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "lora_foundry").symlink_to(repo, target_is_directory=True)
    return base


def comfy_python(comfy_dir: str | Path) -> Path:
    """The Python that runs ComfyUI: ``$COMFYUI_PYTHON``, else the checkout's ``venv``, else this one
    (a test run from ComfyUI's own environment)."""
    venv = Path(comfy_dir) / "venv" / "bin" / "python"
    return Path(os.environ.get("COMFYUI_PYTHON") or (venv if venv.exists() else sys.executable))
