"""`r1run serve` with the real llama-server: health, OpenAI API, API key, the model's name, the web UI, SIGTERM,
bad input. (The browser and the OpenAI client: tests/test_webui.py.)"""

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
from r1run.llama.manifest import BuildManifest
from r1run.run import serve as core

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
        assert "model:   SmolLM2-135M-Instruct.Q4_1\n" in lines  # a file given by path: its name without .gguf
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
        assert data["model"] == "SmolLM2-135M-Instruct.Q4_1"
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


def _serve_lines(*args: str, until: str = "example:") -> tuple[subprocess.Popen, list[str]]:
    """`r1run serve ARGS` started, and what it printed on stdout up to the line starting with `until`."""
    proc = subprocess.Popen([sys.executable, "-m", "r1run", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    assert proc.stdout is not None
    lines: list[str] = []
    while not any(line.startswith(until) for line in lines):
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"serve ended early: {proc.stderr.read() if proc.stderr else ''}")
        lines.append(line)
    return proc, lines


def test_alias_names_the_model_and_a_server_without_ui_says_so(home: Path, smollm2: Path) -> None:
    port = free_port()
    proc, lines = _serve_lines(str(smollm2), "--port", str(port), "--alias", "tiny-chat", "--", "--no-ui")
    try:
        printed = "".join(lines)
        assert "web UI:  off (--no-ui given to llama-server)" in printed and f":{port}/\n" not in printed
        assert "model:   tiny-chat" in printed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as resp:
            assert [m["id"] for m in json.loads(resp.read())["data"]] == ["tiny-chat"]
        status, data = _post(f"http://127.0.0.1:{port}/v1/chat/completions",
                             {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        assert status == 200 and data["model"] == "tiny-chat"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_no_web_ui_says_why_and_how_to_get_one(llama_home: Path) -> None:
    from r1run.home import Home
    from r1run.llama import manifest

    built = manifest.default_build(Home(llama_home))
    assert built is not None and built.ui is not None
    without = BuildManifest.model_validate({**built.model_dump(), "ui": {
        "source": "none", "reason": "npm run build failed (1); built without a web UI"}})
    said = core.no_web_ui(without, ())
    assert said.startswith("no web UI in this build (npm run build failed (1); built without a web UI)")
    assert "`r1run build --ui npm --force`" in said and "--ui prebuilt" in said
    assert core.no_web_ui(None, ()).startswith("no web UI in this build (GET / found no page)")
    assert core.no_web_ui(without, ("--no-webui",)) == "off (--no-ui given to llama-server)"


def test_dry_run_binds_loopback_and_asks_for_separate_reasoning(r1run_home: Path, llama_bin: Path, r1_tiny) -> None:
    res = invoke("serve", str(r1_tiny.path), "--dry-run", env={"R1RUN_LLAMA_BIN": str(llama_bin)})
    assert res.exit_code == 0, res.stderr
    line = res.stdout.strip()
    assert "--host 127.0.0.1" in line and "--port 8080" in line and "--reasoning-format deepseek" in line
    assert "-ctk q4_0" in line
    assert f"--alias {r1_tiny.path.stem}" in line  # a file's name without .gguf
    renamed = invoke("serve", str(r1_tiny.path), "--dry-run", "--alias", " r1 ", env={"R1RUN_LLAMA_BIN": str(llama_bin)})
    assert "--alias r1 " in renamed.stdout


@pytest.mark.parametrize(("alias", "text"), [("", "--alias is empty"), ("  ", "--alias is empty"),
                                             ("a,b", "--alias 'a,b' holds a comma")])
def test_bad_alias(alias: str, text: str, r1run_home: Path, llama_bin: Path, smollm2: Path) -> None:
    res = invoke("serve", str(smollm2), "--alias", alias, "--dry-run", env={"R1RUN_LLAMA_BIN": str(llama_bin)})
    assert res.exit_code == 2 and f"error: {text}" in res.stderr and "hint:" in res.stderr
    assert "Traceback" not in res.stderr


def test_help_says_how_the_model_is_named_and_where_extra_flags_go() -> None:
    res = invoke("serve", "--help")
    text = " ".join(res.stdout.split())  # as wrapped for any terminal width
    assert res.exit_code == 0
    assert "Extra llama-server flags go after --" in text and "--alias" in text and "MODEL:QUANT" in text


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
