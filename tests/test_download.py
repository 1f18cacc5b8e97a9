"""The explicit download action against a local HTTP server: resume, checksum, atomic, timeouts."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from lora_foundry.models.download import DownloadError, download
from lora_foundry.progress import CallbackProgress

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /model.pt with Range support; can cut the first response short."""

    def __init__(self, cut_after: int | None = None) -> None:
        self.cut_after = cut_after
        self.ranges: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                header = self.headers.get("Range")
                outer.ranges.append(header)
                start = int(header.split("=")[1].rstrip("-")) if header else 0
                body = PAYLOAD[start:]
                self.send_response(206 if header else 200)
                if header:
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    cut, outer.cut_after = outer.cut_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the network drops mid-transfer
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/model.pt"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_interrupted_download_resumes_from_the_part_file(tmp_path, no_proxy):
    server = Server(cut_after=300_000)
    target = tmp_path / "models" / "sam2" / "model.pt"
    try:
        with pytest.raises(DownloadError, match="resume"):
            download(server.url, target, DIGEST, timeout_s=5)
        part = target.with_name("model.pt.part")
        assert not target.exists() and part.stat().st_size == 300_000
        seen: list[tuple[int, int]] = []
        download(server.url, target, DIGEST, progress=CallbackProgress(lambda d, t: seen.append((d, t))),
                 timeout_s=5)
    finally:
        server.close()
    assert target.read_bytes() == PAYLOAD and not part.exists()
    assert server.ranges == [None, "bytes=300000-"]  # the second request asked only for the rest
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and seen[0][0] > 300_000


def test_wrong_checksum_is_rejected_and_leaves_no_file(tmp_path, no_proxy):
    server = Server()
    target = tmp_path / "model.pt"
    try:
        with pytest.raises(DownloadError, match="does not match"):
            download(server.url, target, "0" * 64, timeout_s=5)
    finally:
        server.close()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_never_overwritten(tmp_path, no_proxy):
    target = tmp_path / "model.pt"
    target.write_bytes(b"mine")
    with pytest.raises(DownloadError, match="already exists"):
        download("http://127.0.0.1:9/model.pt", target, DIGEST)
    assert target.read_bytes() == b"mine"


def test_unverified_download_needs_consent(tmp_path):
    with pytest.raises(DownloadError, match="no sha256"):
        download("http://127.0.0.1:9/model.pt", tmp_path / "m.pt", None)


def test_a_server_that_never_answers_fails_instead_of_hanging(tmp_path, no_proxy):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts (kernel backlog) but never sends a byte
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/model.pt"
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            download(url, tmp_path / "model.pt", DIGEST, timeout_s=0.5)
        except BaseException as error:  # noqa: BLE001
            outcome.append(error)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(60)
    silent.close()
    assert not thread.is_alive(), "download hung on a silent server"
    assert isinstance(outcome[0], DownloadError)
    assert not (tmp_path / "model.pt").exists()


def test_cancel_keeps_the_part_file_for_a_later_resume(tmp_path, no_proxy, monkeypatch):
    from lora_foundry.models import download as download_module
    from lora_foundry.progress import Cancelled

    monkeypatch.setattr(download_module, "CHUNK_BYTES", 64 * 1024)

    server = Server()
    target = tmp_path / "model.pt"
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    try:
        with pytest.raises(Cancelled):
            download(server.url, target, DIGEST, progress=CallbackProgress(should_stop=stop), timeout_s=5)
        assert not target.exists() and target.with_name("model.pt.part").exists()
        download(server.url, target, DIGEST, timeout_s=5)
    finally:
        server.close()
    assert target.read_bytes() == PAYLOAD
