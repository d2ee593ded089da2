"""One JSON convention (docs/json.md), checked on what every command really prints with --json: a schema tag,
sizes in bytes, times in ISO 8601 UTC, `gen` not `eval`, errors as JSON, JSON-lines events for serve and worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import run_cli
from nethelp import free_port

pytestmark = pytest.mark.llama

DATA = Path(__file__).parent / "data" / "perf"
FLAPPY = Path(__file__).parent / "data" / "flappy" / "correct.md"
SCHEMA = re.compile(r"r1run\.[a-z]+(\.[a-z]+)?/\d+")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
FORBIDDEN = {"eval", "schema_version", "seconds", "size", "mib", "fetched", "resumed_from"}


def convention_problems(doc: object) -> list[str]:
    """What in one --json document breaks docs/json.md's rules."""
    if not isinstance(doc, dict) or not SCHEMA.fullmatch(str(next(iter(doc), "") and doc.get("schema"))):
        return ["no schema tag"]
    if next(iter(doc)) != "schema":
        return ["schema is not the first key"]
    problems: list[str] = []

    def walk(x: object, path: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                p = f"{path}.{k}"
                if k in FORBIDDEN or "mib" in k.lower() or k.endswith(("_gb", "_gib", "_mb")):
                    problems.append(f"{p}: not a convention name")
                if (k == "at" or k.endswith("_at")) and v is not None and not ISO_UTC.fullmatch(str(v)):
                    problems.append(f"{p}: {v!r} is not ISO 8601 UTC")
                if (k == "bytes" or k.endswith("_bytes")) and v is not None and not isinstance(v, int):
                    problems.append(f"{p}: {v!r} is not a whole number of bytes")
                walk(v, p)
        elif isinstance(x, list):
            for v in x:
                walk(v, path + "[]")

    walk(doc, "")
    return problems


def _json(res: subprocess.CompletedProcess) -> dict:
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


@pytest.fixture()
def env(r1run_home: Path, llama_bin: Path, smollm2_wheels: Path, tmp_path: Path) -> dict[str, str]:
    return {"R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin), "HF_ENDPOINT": "http://127.0.0.1:9",
            "HF_HOME": str(tmp_path / "hf"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(smollm2_wheels)}


def test_every_command_follows_the_convention(env: dict[str, str]) -> None:
    docs = {"download": _json(run_cli("download", "smollm2", "--json", env=env))}
    path = docs["download"]["files"][0]["local_path"]
    docs["quickstart"] = _json(run_cli("quickstart", "-n", "8", "--json", env=env))
    docs["chat"] = _json(run_cli("chat", "-p", "Hi", "-n", "8", "-t", "2", "--json", env=env))
    docs["bench"] = _json(run_cli("bench", "--prompt-tokens", "8", "-n", "4", "-r", "1", "-t", "2", "--json", env=env))
    for command in (("models",), ("list",), ("ps",), ("doctor",), ("inspect", path), ("plan",), ("build", "--list"),
                    ("perf", str(DATA / "b11434-server.err"), str(DATA / "b11434-cli-st-lv4.err"))):
        docs[command[0]] = _json(run_cli(*command, "--json", env=env))
    docs["eval"] = _json(run_cli("eval", "flappy", "--score", str(FLAPPY), "--json", env=env))
    error = run_cli("chat", "no-such-model", "-p", "x", "--json", env=env)
    assert error.returncode == 2
    docs["error"] = json.loads(error.stdout)

    assert {name: convention_problems(doc) for name, doc in docs.items()} == {name: [] for name in docs}
    assert docs["chat"]["summary"]["gen"]["tps"] > 0 and docs["quickstart"]["summary"]["gen"]["tps"] > 0
    assert docs["perf"]["runs"][0]["gen"]["tps"] > 0
    assert any(b["bytes"] > 0 for r in docs["perf"]["runs"] for b in r["buffers"])


def _events(argv: list[str], env: dict[str, str], first: str) -> tuple[dict, dict]:
    """Start a long-running command with --json, read its first event, SIGTERM it, read the last one."""
    p = subprocess.Popen([sys.executable, "-m", "r1run", *argv, "--json"], env={**os.environ, **env},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line, p.stderr.read() if p.stderr else ""
        start = json.loads(line)
        assert start["event"] == first
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    return start, json.loads(out.strip().splitlines()[-1])


def test_serve_and_worker_print_json_lines_events(env: dict[str, str], smollm2: Path) -> None:
    port = free_port()
    ready, stopped = _events(["serve", str(smollm2), "--port", str(port), "-c", "512", "-t", "1"], env, "ready")
    assert convention_problems(ready) == [] and convention_problems(stopped) == []
    assert (ready["schema"], ready["url"], ready["model"]) == ("r1run.serve/1", f"http://127.0.0.1:{port}",
                                                               "SmolLM2-135M-Instruct.Q4_1")
    assert ready["web_ui"] == f"http://127.0.0.1:{port}/" and ready["load_s"] > 0
    assert (stopped["event"], stopped["reason"]) == ("stopped", "SIGTERM")

    port = free_port()
    listening, stopped = _events(["worker", "--port", str(port), "-t", "1"], env, "listening")
    assert convention_problems(listening) == [] and convention_problems(stopped) == []
    assert listening["endpoint"] == f"127.0.0.1:{port}" and listening["devices"][0]["total_bytes"] > 0
    assert stopped["event"] == "stopped"
