"""A local Hugging Face hub on 127.0.0.1 for tests and benchmarks, with faults on demand.

It speaks what huggingface_hub 2.x asks (checked against its source):

    GET  /api/models/{repo}[/revision/{rev}]        {"id", "sha", "gated", "private", "siblings": [...]}
    GET  /api/models/{repo}/tree/{rev}[/{path}]?recursive=True&expand=False
         [{"type": "directory", "oid", "size": 0, "path"},
          {"type": "file", "oid": <git blob sha1>, "size", "path",
           "lfs": {"oid": <sha256>, "size", "pointerSize"}}]      pages of `page_size`, `Link: <...>; rel="next"`
    HEAD|GET /{repo}/resolve/{rev}/{path}
         X-Repo-Commit, ETag (sha256 for LFS, git oid otherwise), X-Linked-Etag, X-Linked-Size,
         Accept-Ranges: bytes; `Range: bytes=a-[b]` -> 206 + Content-Range; past the end -> 416
    GET  /_cdn/{sha256}    where LFS files redirect (302) when `cdn_host` is set, as the real hub does

Errors carry `X-Error-Code` / `X-Error-Message` like the hub: RepoNotFound (404, or 401
for a private repo without a token), RevisionNotFound, EntryNotFound, GatedRepo (401
without a token, 403 with one not granted), and 401 "Invalid credentials in
Authorization header" for a token the server does not know.

Faults (`inject`) hit file body GETs (never HEAD), `times` requests in a row:

    "500"           answer 500 before any byte
    "close"         send `at` body bytes of a full Content-Length, then close cleanly (FIN)
    "reset"         send `at` bytes, then reset the connection (RST)
    "stall"         send `at` bytes, then go silent for `stall_s` seconds, then close
    "corrupt"       send the full length with the byte at file offset `at` flipped
    "short"         a well-formed response that ends `at` bytes into the range (honest Content-Length)
    "ignore-range"  answer a ranged request with 200 and the whole file

`bytes_sent` counts body bytes written per repo path; `requests` logs every request
(method, target, Range, status, whether an Authorization header came).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

FAULT_KINDS = ("500", "429", "close", "reset", "stall", "corrupt", "short", "ignore-range")
SEND_CHUNK = 1 << 20


@dataclass
class Blob:
    path: str
    size: int
    sha256: str
    git_oid: str
    lfs: bool
    pointer_size: int
    file: Path


@dataclass
class Repo:
    repo_id: str
    commit: str
    files: dict[str, Blob]
    gated: bool = False
    private: bool = False
    granted: set[str] = field(default_factory=set)  # tokens with access to a gated/private repo


@dataclass
class Fault:
    kind: str
    path: Optional[str] = None  # repo path it applies to; None: any file
    times: int = 1
    at: Optional[int] = None  # see the module docstring; None: half of the body
    stall_s: float = 30.0


@dataclass
class Request:
    method: str
    target: str
    range: Optional[str]
    status: int
    auth: bool


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


class HubServer:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, *, page_size: int = 1000, cdn_host: str | None = None, throttle: int | None = None,
                 tokens: set[str] | None = None, workdir: Path | None = None) -> None:
        self.page_size = page_size
        self.cdn_host = cdn_host
        self.throttle = throttle  # body bytes per second per response, None = unlimited
        self.tokens = set(tokens or ())
        self.repos: dict[str, Repo] = {}
        self.faults: list[Fault] = []
        self.overrides: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.bytes_sent: Counter[str] = Counter()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._own_dir = workdir is None
        self._dir = Path(workdir or tempfile.mkdtemp(prefix="r1run-hub-"))
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- setup -----------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes | Path], *, gated: bool = False,
                 private: bool = False, granted: set[str] | None = None) -> Repo:
        """Publish (or replace, as a new commit) a repository; LFS for .gguf files and anything over 1 MB."""
        blobs: dict[str, Blob] = {}
        for path, content in files.items():
            if isinstance(content, Path):
                size, sha = content.stat().st_size, _hash_file(content)
                store = self._dir / "blobs" / sha
                if not store.exists():
                    store.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(content, store)
                    except OSError:
                        shutil.copyfile(content, store)
                small = None
            else:
                size, sha = len(content), hashlib.sha256(content).hexdigest()
                store = self._dir / "blobs" / sha
                store.parent.mkdir(parents=True, exist_ok=True)
                store.write_bytes(content)
                small = content
            lfs = path.endswith(".gguf") or size > 1_000_000 or small is None
            pointer = _lfs_pointer(sha, size)
            git_oid = git_blob_sha1(pointer) if lfs else git_blob_sha1(small or b"")
            blobs[path] = Blob(path, size, sha, git_oid, lfs, len(pointer), store)
        commit = hashlib.sha1(
            repo_id.encode() + b"".join(f"{p}:{b.sha256}".encode() for p, b in sorted(blobs.items()))
            + str(time.time_ns()).encode()
        ).hexdigest()
        repo = Repo(repo_id, commit, blobs, gated=gated, private=private, granted=set(granted or ()))
        with self._lock:
            self.repos[repo_id] = repo
        return repo

    def inject(self, kind: str, path: str | None = None, *, times: int = 1, at: int | None = None,
               stall_s: float = 30.0) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        fault = Fault(kind, path, times, at, stall_s)
        with self._lock:
            self.faults.append(fault)
        return fault

    def override(self, prefix: str, status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        """Answer every request whose path starts with `prefix` with this raw reply (a hostile or broken hub:
        HTML instead of JSON, a malformed tree, a redirect loop)."""
        with self._lock:
            self.overrides[prefix] = (status, body, headers or {})

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_sent.clear()
            self.requests.clear()

    def file_gets(self, path: str | None = None) -> list[Request]:
        """Body GETs of files (resolve or CDN), optionally of one repo path."""
        with self._lock:
            reqs = list(self.requests)
        return [r for r in reqs if r.method == "GET" and ("/resolve/" in r.target or r.target.startswith("/_cdn/"))
                and (path is None or r.target.endswith("/" + quote(path)) or f"path={quote(path, safe='')}" in r.target)]

    # --- lifecycle ---------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "HubServer":
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        httpd.hub = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="r1run-hubserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- used by the handler -----------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.path is None or fault.path == path):
                    fault.times -= 1
                    return fault
        return None

    def _log(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def _count(self, path: str, n: int) -> None:
        with self._lock:
            self.bytes_sent[path] += n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "r1run-hubserver"

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, fmt, *args) -> None:  # keep test output clean
        pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    # --- plumbing ------------------------------------------------------------------
    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               ctype: str = "application/json") -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status)

    def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._reply(status, json.dumps({"error": message}).encode(), headers)

    def _record(self, status: int) -> None:
        self.hub._log(Request(self.command, self.path, self.headers.get("Range"), status,
                              "authorization" in {k.lower() for k in self.headers.keys()}))

    def _token(self) -> tuple[bool, str | None]:
        """(ok, token): ok is False when a token was sent that the server does not know."""
        auth = self.headers.get("Authorization")
        if not auth:
            return True, None
        token = auth.removeprefix("Bearer ").strip()
        return token in self.hub.tokens, token

    # --- routing -------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        split = urlsplit(self.path)
        for prefix, (status, body, headers) in list(self.hub.overrides.items()):
            if unquote(split.path).startswith(prefix):
                ctype = "text/html" if body.lstrip().startswith(b"<") else "application/json"
                return self._reply(status, body, headers, ctype=ctype)
        parts = [unquote(p) for p in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        if parts[:1] == ["_cdn"] and len(parts) == 2:
            return self._cdn(parts[1], query)
        ok, token = self._token()
        if not ok:
            return self._error(401, None, "Invalid credentials in Authorization header")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = self._repo("/".join(parts[2:4]), token)
            if repo is None:
                return
            rest = parts[4:]
            if not rest:
                return self._info(repo)
            if rest[0] == "revision" and len(rest) == 2:
                return self._info(repo, rest[1])
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo, rest[1], "/".join(rest[2:]), query)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = self._repo("/".join(parts[:2]), token)
            if repo is None:
                return
            return self._resolve(repo, parts[3], "/".join(parts[4:]), token)
        self._error(404, None, "Not Found")

    def _repo(self, repo_id: str, token: str | None) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.private and token not in repo.granted:
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _commit(self, repo: Repo, rev: str) -> str | None:
        if rev in ("main", repo.commit):
            return repo.commit
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", {"X-Repo-Commit": repo.commit})
        return None

    def _info(self, repo: Repo, rev: str = "main") -> None:
        if self._commit(repo, rev) is None:
            return
        body = {
            "_id": repo.commit[:24], "id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit,
            "private": repo.private, "gated": "manual" if repo.gated else False, "disabled": False,
            "lastModified": "2025-01-20T00:00:00.000Z", "tags": ["gguf"], "library_name": "gguf",
            "downloads": 0, "likes": 0, "siblings": [{"rfilename": p} for p in sorted(repo.files)],
        }
        self._reply(200, json.dumps(body).encode())

    def _tree(self, repo: Repo, rev: str, under: str, query: dict) -> None:
        if self._commit(repo, rev) is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = under.rstrip("/") + "/" if under else ""
        entries: dict[str, dict] = {}
        for path, blob in sorted(repo.files.items()):
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix):].split("/")
            for depth in range(1, len(rel)):
                folder = prefix + "/".join(rel[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder, {"type": "directory", "oid": hashlib.sha1(folder.encode()).hexdigest(),
                                                "size": 0, "path": folder})
            if recursive or len(rel) == 1:
                entry = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
                if blob.lfs:
                    entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
                entries[path] = entry
        if under and not entries:
            return self._error(404, "EntryNotFound", f"{under} does not exist on {rev}", {"X-Repo-Commit": repo.commit})
        listing = sorted(entries.values(), key=lambda e: e["path"])
        start = int(query.get("cursor", ["0"])[0])
        page = listing[start:start + self.hub.page_size]
        headers = {}
        if start + self.hub.page_size < len(listing):
            base = f"http://{self.headers.get('Host')}" + urlsplit(self.path).path
            nxt = f"{base}?recursive={'True' if recursive else 'False'}&expand=False&cursor={start + self.hub.page_size}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._reply(200, json.dumps(page).encode(), headers)

    def _resolve(self, repo: Repo, rev: str, path: str, token: str | None) -> None:
        commit = self._commit(repo, rev)
        if commit is None:
            return
        blob = repo.files.get(path)
        if blob is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", {"X-Repo-Commit": commit})
        if repo.gated and token not in repo.granted:
            status = 403 if token else 401
            return self._error(status, "GatedRepo",
                               f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                               "authenticated to access it. Please log in.")
        etag = blob.sha256 if blob.lfs else blob.git_oid
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers |= {"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)}
        if blob.lfs and self.hub.cdn_host:
            location = (f"http://{self.hub.cdn_host}:{self.hub.port}/_cdn/{blob.sha256}"
                        f"?repo={quote(repo.repo_id, safe='')}&path={quote(path, safe='')}")
            self.send_response(302)
            for k, v in (headers | {"Location": location}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._record(302)
            return
        self._send_blob(blob, headers)

    def _cdn(self, sha: str, query: dict) -> None:
        repo = self.hub.repos.get(query.get("repo", [""])[0])
        path = query.get("path", [""])[0]
        blob = repo.files.get(path) if repo else None
        if blob is None or blob.sha256 != sha:
            return self._error(404, None, "NoSuchKey")
        self._send_blob(blob, {"ETag": f'"{sha}"', "Accept-Ranges": "bytes"})

    # --- bodies ------------------------------------------------------------------------
    def _send_blob(self, blob: Blob, headers: dict[str, str]) -> None:
        start, end = 0, blob.size - 1
        rng = self.headers.get("Range")
        fault = self.hub._take_fault(blob.path) if self.command == "GET" else None
        if fault is not None and fault.kind == "500":
            return self._error(500, None, "Internal Error")
        if fault is not None and fault.kind == "429":  # rate limited; stall_s is the Retry-After it sends
            return self._error(429, None, "Too Many Requests", {"Retry-After": f"{fault.stall_s:g}"})
        ranged = rng is not None and not (fault is not None and fault.kind == "ignore-range")
        if ranged:
            try:
                unit, spec = rng.split("=", 1)
                a, b = spec.split("-", 1)
                start, end = int(a), (int(b) if b else blob.size - 1)
                assert unit.strip() == "bytes"
            except (ValueError, AssertionError):
                return self._error(400, None, f"bad Range {rng}")
            if start >= blob.size:
                return self._error(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{blob.size}"})
            end = min(end, blob.size - 1)
        length = end - start + 1
        if fault is not None and fault.kind == "short":
            cut = fault.at if fault.at is not None else length // 2
            length = max(1, min(length, cut))
            end = start + length - 1
        self.send_response(206 if ranged else 200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{blob.size}")
        self.end_headers()
        self._record(206 if ranged else 200)
        if self.command == "HEAD":
            return
        cut_at = None
        if fault is not None and fault.kind in ("close", "reset", "stall"):
            cut_at = fault.at if fault.at is not None else length // 2
            cut_at = min(cut_at, length)
        with open(blob.file, "rb") as f:
            try:
                if fault is not None and fault.kind == "corrupt":
                    self._send_corrupt(f, blob, start, length, fault.at if fault.at is not None else blob.size // 2)
                else:
                    self._send_range(f, blob, start, cut_at if cut_at is not None else length)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
        if cut_at is not None:
            self._break(fault)

    def _send_range(self, f, blob: Blob, offset: int, count: int) -> None:
        sock = self.connection
        throttle = self.hub.throttle
        while count > 0 and not self.hub._stopping.is_set():
            step = min(count, SEND_CHUNK if throttle is None else max(1, throttle // 20))
            began = time.monotonic()
            sent = sock.sendfile(f, offset, step)
            if sent == 0:
                raise BrokenPipeError()
            self.hub._count(blob.path, sent)
            offset += sent
            count -= sent
            if throttle is not None:
                time.sleep(max(0.0, sent / throttle - (time.monotonic() - began)))

    def _send_corrupt(self, f, blob: Blob, start: int, length: int, flip: int) -> None:
        f.seek(start)
        data = bytearray(f.read(length))
        if start <= flip < start + length:
            data[flip - start] ^= 0xFF
        self.wfile.write(bytes(data))
        self.hub._count(blob.path, len(data))

    def _break(self, fault: Fault) -> None:
        self.close_connection = True
        sock = self.connection
        if fault.kind == "stall":
            self.hub._stopping.wait(fault.stall_s)
        if fault.kind == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        sock.close()


def make_shard_set(folder: Path, stem: str, count: int, shard_bytes: int, *, seed: int = 0,
                   arch: str = "deepseek2") -> dict[str, Path]:
    """Write a split GGUF set as llama-gguf-split names it, `{stem}/{stem}-0000i-of-0000n.gguf`.

    Each part is a valid GGUF file (split.no / split.count / split.tensors.count set)
    holding one int8 tensor of seeded random bytes, about `shard_bytes` long.
    Returns {repo path: file}.
    """
    import gguf
    import numpy as np

    out: dict[str, Path] = {}
    for i in range(count):
        rel = f"{stem}/{stem}-{i + 1:05d}-of-{count:05d}.gguf" if count > 1 else f"{stem}.gguf"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        w = gguf.GGUFWriter(path, arch=arch)
        if count > 1:
            w.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_NO, i)
            w.add_uint16(gguf.Keys.Split.LLM_KV_SPLIT_COUNT, count)
            w.add_int32(gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT, count)
        data = np.random.default_rng(seed * 1000 + i).integers(-128, 128, size=shard_bytes, dtype=np.int8)
        w.add_tensor(f"blk.{i}.ffn_down_exps.weight", data)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        out[rel] = path
    return out
