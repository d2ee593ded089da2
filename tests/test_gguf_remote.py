"""Remote inspect: headers read with HTTP Range through huggingface_hub, against a real local HTTP server."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from gguf_samples import write_small_deepseek
from r1run.errors import BadInput, GGUFError, R1runError
from r1run.gguf import read_model, read_remote_model
from r1run.gguf.remote import remote_files

REPO = "someone/Tiny-R1-GGUF"


class Hub(BaseHTTPRequestHandler):
    """The two hub endpoints remote inspect uses: the tree listing and ranged file reads."""

    root: Path
    honour_range = True
    busy = 0  # answer this many file reads with 503 first
    log: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        path = unquote(urlparse(self.path).path)
        type(self).log.append((path, self.headers.get("Range")))
        tree = re.match(rf"^/api/models/{REPO}/tree/[^/]+/?(.*)$", path)
        if tree:
            base = self.root / tree[1]
            if not base.exists():
                return self._send(404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"})
            files = [p for p in sorted(base.rglob("*")) if p.is_file()]
            body = json.dumps([{"type": "file", "path": str(p.relative_to(self.root)), "size": p.stat().st_size,
                                "oid": "0" * 40} for p in files]).encode()
            return self._send(200, body, {"Content-Type": "application/json"})
        resolve = re.match(rf"^/{REPO}/resolve/[^/]+/(.+)$", path)
        if not resolve or not (self.root / resolve[1]).is_file():
            return self._send(404, b"not found", {"X-Error-Code": "RepoNotFound" if not resolve else "EntryNotFound"})
        if type(self).busy:
            type(self).busy -= 1
            return self._send(503, b"busy", {})
        data = (self.root / resolve[1]).read_bytes()
        rng = re.match(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if rng and self.honour_range:
            a, b = int(rng[1]), min(int(rng[2]), len(data) - 1)
            return self._send(206, data[a:b + 1], {"Content-Range": f"bytes {a}-{b}/{len(data)}"})
        return self._send(200, data, {})

    def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: expected for a 200 body
            pass


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    root = tmp_path / "repo"
    write_small_deepseek(root / "Tiny-UD-IQ1_S" / "Tiny-UD-IQ1_S.gguf", "mla", shards=3)
    write_small_deepseek(root / "Tiny-Q4_K_M.gguf", "original")
    handler = type("H", (Hub,), {"root": root, "log": [], "honour_range": True, "busy": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", root, handler
    server.shutdown()
    server.server_close()


def test_remote_shard_set_equals_local(hub):
    endpoint, root, handler = hub
    remote = read_remote_model(REPO, "Tiny-UD-IQ1_S", endpoint=endpoint, chunk=16384)
    local = read_model(root / "Tiny-UD-IQ1_S")
    assert remote.source == f"hf://{REPO}/Tiny-UD-IQ1_S/Tiny-UD-IQ1_S-00001-of-00003.gguf"
    assert remote.model_dump(exclude={"source", "shards"}) == local.model_dump(exclude={"source", "shards"})
    assert [s.file_bytes for s in remote.shards] == [s.file_bytes for s in local.shards]
    ranged = [r for p, r in handler.log if "/resolve/" in p]
    assert ranged and all(r and r.startswith("bytes=") for r in ranged)
    fetched = sum(int(b) - int(a) + 1 for a, b in (re.match(r"bytes=(\d+)-(\d+)", r).groups() for r in ranged))
    assert fetched <= sum(s.header_bytes + 16384 for s in local.shards)  # headers, not tensor data


def test_remote_any_shard_or_single_file(hub):
    endpoint, _, _ = hub
    shard = "Tiny-UD-IQ1_S/Tiny-UD-IQ1_S-00003-of-00003.gguf"
    assert [f for f, _ in remote_files(REPO, shard, endpoint=endpoint)][0].endswith("00001-of-00003.gguf")
    single = read_remote_model(REPO, "Tiny-Q4_K_M.gguf", endpoint=endpoint)
    assert single.kv_layout == "original" and len(single.shards) == 1


def test_remote_errors_are_clean(hub):
    endpoint, root, handler = hub
    with pytest.raises(GGUFError, match="holds 2 models"):
        remote_files(REPO, "", endpoint=endpoint)
    (root / "Tiny-UD-IQ1_S" / "Tiny-UD-IQ1_S-00002-of-00003.gguf").unlink()
    with pytest.raises(GGUFError, match="shard 2 of 3 missing"):
        read_remote_model(REPO, "Tiny-UD-IQ1_S", endpoint=endpoint)
    with pytest.raises(BadInput, match="repository nobody/missing not found"):
        read_remote_model("nobody/missing", "x.gguf", endpoint=endpoint)
    with pytest.raises(BadInput, match="has no file or folder 'Tiny-Q9'"):
        remote_files(REPO, "Tiny-Q9", endpoint=endpoint)


def test_server_ignoring_range_is_refused_not_downloaded(hub):
    endpoint, _, handler = hub
    handler.honour_range = False
    with pytest.raises(R1runError, match="ignored the Range request"):
        read_remote_model(REPO, "Tiny-Q4_K_M.gguf", endpoint=endpoint, chunk=4096)


def test_a_busy_hub_is_asked_again(hub):
    endpoint, _, handler = hub
    handler.busy = 1
    single = read_remote_model(REPO, "Tiny-Q4_K_M.gguf", endpoint=endpoint)
    assert single.kv_layout == "original" and handler.busy == 0
