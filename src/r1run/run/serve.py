"""`r1run serve`: llama-server with r1run's tuning, bound to loopback unless asked, health-checked."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

from r1run import proc
from r1run.errors import BadInput, LlamaFailed, ModelNotLoaded
from r1run.home import log_path_for
from r1run.llama import args
from r1run.llama.args import RunSpec
from r1run.llama.manifest import BuildManifest
from r1run.llama.probe import Capabilities
from r1run.net import check_listen, is_loopback
from r1run.perf import loadfail
from r1run.run.target import Target

# Loading reads the whole model once; allow for a slow disk (150 MB/s) on top of a fixed start-up.
LOAD_FLOOR_S = 60.0
LOAD_BYTES_PER_S = 150e6


def check_bind(host: str, port: int, api_key: str | None, insecure: bool) -> None:
    if not is_loopback(host) and not api_key and not insecure:
        raise BadInput(f"--host {host} would expose the model to the network without an API key",
                       "add --api-key KEY, or --insecure if this network is trusted")
    check_listen(host, port, in_use_hint="choose another with --port")


def model_name(target: Target, alias: str | None) -> str:
    """The model's name in the API (`/v1/models`, every response's `model`) and the web UI: `--alias`, else
    `<catalog key>:<quant>`, else the file's name without `.gguf`."""
    if alias is None:
        return target.served_name or target.path.stem
    name = alias.strip()
    if not name:
        raise BadInput("--alias is empty",
                       f"give the model a name, or leave --alias out to call it {target.served_name}")
    if "," in name:
        raise BadInput(f"--alias {alias!r} holds a comma",
                       "llama-server reads a comma as a list of names: give one name")
    return name


def load_timeout(model_bytes: int) -> float:
    return LOAD_FLOOR_S + model_bytes / LOAD_BYTES_PER_S


@dataclass
class Server:
    child: proc.Child
    url: str
    log_path: Path
    key_file: Path | None

    def stop(self) -> int:
        code = self.child.stop()
        self.forget_key()
        return code

    def forget_key(self) -> None:
        """Remove the API-key file: llama-server read it when it started (call once it is ready)."""
        if self.key_file is not None:
            self.key_file.unlink(missing_ok=True)


def clean_stale_keys(run_dir: Path) -> list[Path]:
    """Remove API-key files left by r1run servers that died without cleaning up (SIGKILL, a crash); returns them.
    A file is stale when the pid in its name is gone, or belongs to a process started after the file was written."""
    removed = []
    for f in run_dir.glob("api-key-*") if run_dir.is_dir() else ():
        try:
            pid, written = int(f.name.rsplit("-", 1)[1]), f.stat().st_mtime
        except (ValueError, OSError):
            continue
        try:
            stale = psutil.Process(pid).create_time() > written + 1
        except psutil.Error:
            stale = True
        if stale:
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def uses_key_file(caps: Capabilities) -> bool:
    """The API key goes to llama-server in a file (out of the process list) when it takes --api-key-file."""
    server = caps.programs.get("server")
    return server is not None and server.has("--api-key-file")


def key_file_path(run_dir: Path) -> Path:
    return run_dir / f"api-key-{os.getpid()}"


def start(spec: RunSpec, caps: Capabilities, *, host: str, port: int, api_key: str | None, run_dir: Path,
          logs: Path, alias: str | None = None, on_line: Callable[[str], None] | None = None,
          own_session: bool = False, quiet: bool = False) -> Server:
    """llama-server started (not yet ready); `own_session` keeps the terminal's Ctrl-C from it, `quiet` keeps what
    it prints on stdout (ik_llama.cpp's `INFO [...]` request lines) off the terminal."""
    key_file = None
    clean_stale_keys(run_dir)
    if api_key and uses_key_file(caps):
        run_dir.mkdir(parents=True, exist_ok=True)
        key_file = key_file_path(run_dir)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(api_key + "\n")
    argv = args.server_argv(spec, caps, host=host, port=port, api_key=None if key_file else api_key,
                            api_key_file=key_file, alias=alias)
    log_path = log_path_for(logs, "serve")
    child = proc.Child(argv, log_path=log_path, on_line=on_line, stdout=subprocess.DEVNULL if quiet else None,
                       cwd=log_path.parent if args.writes_trace_log(caps, "server") else None, own_session=own_session)
    shown = f"[{host}]" if ":" in host else host
    return Server(child, f"http://{shown}:{port}", log_path, key_file)


def health(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """GET /health: (status, body). 503 while loading, 200 when ready."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def served_models(url: str, api_key: str | None, timeout: float = 10.0) -> list[str]:
    """The model names llama-server reports at /v1/models (what OpenAI clients see)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/v1/models", headers=headers), timeout=timeout) as resp:
        data = json.loads(resp.read())
    return [m["id"] for m in data.get("data", []) if isinstance(m, dict) and "id" in m]


def has_web_ui(url: str, timeout: float = 10.0) -> bool:
    """Whether llama-server serves its web UI at `/`: 200, where a build without one answers 404 (401 with an
    API key, since only the UI's own pages are public). Its assets are gzip-compressed, served only to a
    client that accepts gzip (others get 415), as every browser does."""
    req = urllib.request.Request(f"{url}/", headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status == 200
    except OSError:  # an HTTP error status (URLError is an OSError), or no answer: no page to point a browser at
        return False


def no_web_ui(build: BuildManifest | None, extra: tuple[str, ...]) -> str:
    """Why `has_web_ui` found none (the build's manifest says, where r1run built it), and what gives one."""
    if {"--no-ui", "--no-webui"} & set(extra):
        return "off (--no-ui given to llama-server)"
    why = build.ui.reason if build is not None and build.ui is not None else "GET / found no page"
    return (f"no web UI in this build ({why}); rebuild with `r1run build --ui npm --force` (needs Node.js and npm) "
            "or `--ui prebuilt` (downloads it); the API works without it")


def wait_ready(server: Server, timeout: float, on_wait: Callable[[float], None] | None = None) -> float:
    """Poll /health until 200; raise LlamaFailed (quoting llama-server) if it dies or times out."""
    t0 = time.monotonic()
    while True:
        code = server.child.poll()
        if code is not None:
            server.stop()
            last = [line for line in server.child.tail if line.strip()]
            errors = [line for line in last if " E " in line or "error" in line.lower()] or last
            quoted = errors[-1].strip() if errors else f"exit code {code}"
            message, hint = f"llama-server stopped (exit {code}): {quoted}", f"full log: {server.log_path}"
            not_loaded = loadfail.failure(server.child.tail, code)
            if not_loaded is not None:
                raise ModelNotLoaded(message, hint, reason=not_loaded)
            raise LlamaFailed(message, hint)
        try:
            status, _ = health(server.url)
            if status == 200:
                return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        elapsed = time.monotonic() - t0
        if elapsed > timeout:
            server.stop()
            raise LlamaFailed(f"llama-server was not ready after {elapsed:.0f} s", f"full log: {server.log_path}")
        if on_wait is not None:
            on_wait(elapsed)
        time.sleep(0.25)


def curl_example(url: str, with_key: bool) -> str:
    body = json.dumps({"messages": [{"role": "user", "content": "Hello!"}]})
    auth = ' -H "Authorization: Bearer $R1RUN_API_KEY"' if with_key else ""
    return f"curl {url}/v1/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'"
