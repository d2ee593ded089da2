"""`r1run serve` with the real llama-server: health, OpenAI API, API key, SIGTERM, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from clihelp import invoke
from nethelp import free_port

pytestmark = pytest.mark.llama



def _post(url: str, body: dict, key: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_serve_answers_enforces_the_key_and_stops_on_sigterm(r1run_home: Path, llama_bin: Path, smollm2: Path) -> None:
    port = free_port()
    key = "test-key-0123456789"
    env = {**os.environ, "R1RUN_LLAMA_BIN": str(llama_bin), "R1RUN_API_KEY": key}
    proc = subprocess.Popen([sys.executable, "-m", "r1run", "serve", str(smollm2), "--port", str(port), "-c", "2048"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        while not any(line.startswith("example:") for line in lines):
            line = proc.stdout.readline()
            assert line, f"serve ended early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        assert f"web UI:  http://127.0.0.1:{port}/" in "".join(lines)
        servers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "llama-server" in c.name()]
        assert servers
        cmdline = " ".join(servers[0].cmdline())
        assert key not in cmdline and "--api-key-file" in cmdline  # the key never shows in `ps`
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert resp.status == 200

        body = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16}
        status, _ = _post(f"http://127.0.0.1:{port}/v1/chat/completions", body)
        assert status == 401
        status, data = _post(f"http://127.0.0.1:{port}/v1/chat/completions", body, key)
        assert status == 200 and data["choices"][0]["message"]["content"].strip()
        assert data["timings"]["predicted_per_second"] > 0

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not [s for s in servers if s.is_running() and s.status() != psutil.STATUS_ZOMBIE]
    assert not list((r1run_home / "run").glob("api-key-*"))  # the key file is removed


def test_dry_run_binds_loopback_and_asks_for_separate_reasoning(r1run_home: Path, llama_bin: Path, r1_tiny) -> None:
    res = invoke("serve", str(r1_tiny.path), "--dry-run", env={"R1RUN_LLAMA_BIN": str(llama_bin)})
    assert res.exit_code == 0, res.stderr
    line = res.stdout.strip()
    assert "--host 127.0.0.1" in line and "--port 8080" in line and "--reasoning-format deepseek" in line
    assert "-ctk q4_0" in line


def test_port_in_use(r1run_home: Path, llama_bin: Path, smollm2: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = invoke("serve", str(smollm2), "--port", str(port), env={"R1RUN_LLAMA_BIN": str(llama_bin)})
    assert res.exit_code == 2 and f"port {port} on 127.0.0.1 is already in use" in res.stderr


def test_public_host_needs_a_key(r1run_home: Path, llama_bin: Path, smollm2: Path) -> None:
    res = invoke("serve", str(smollm2), "--host", "0.0.0.0", env={"R1RUN_LLAMA_BIN": str(llama_bin)})
    assert res.exit_code == 2 and "without an API key" in res.stderr and "--insecure" in res.stderr
