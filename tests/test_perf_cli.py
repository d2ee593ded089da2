"""`r1run perf` through typer's CliRunner: table, --json, --csv, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1run.cli.app import make_app

DATA = Path(__file__).parent / "data" / "perf"
runner = CliRunner()


def perf(*args: str, input: str | None = None):
    return runner.invoke(make_app(), ["perf", *args], input=input)


def test_table(r1run_home):
    res = perf(str(DATA / "b11434-completion.err"))
    assert res.exit_code == 0, res.output
    assert "completion" in res.stdout and "57.7" in res.stdout and "29.7" in res.stdout


def test_table_several_files_reports_failures_on_stderr(r1run_home):
    res = perf(str(DATA / "b11434-server.err"), str(DATA / "b11434-rpc-oom.err"), str(DATA / "b11434-bench.md"))
    assert res.exit_code == 0
    assert "b11434-server.err" in res.stdout and "186.0" in res.stdout and "pp16" in res.stdout
    assert "b11434-rpc-oom.err:1 failed: out of memory allocating KV cache on RPC0" in res.stderr


def test_json_schema(r1run_home):
    res = perf("--json", str(DATA / "b11434-server.err"), str(DATA / "b11434-bench.jsonl"))
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["schema"] == "r1run.perf/2"
    assert [r["format"] for r in doc["runs"]] == ["server_slot", "server_slot", "bench_jsonl", "bench_jsonl"]
    run = doc["runs"][0]
    for key in ("source", "index", "line", "format", "program", "status", "error", "errors", "oom", "command", "build",
                "model", "load_ms", "prompt", "gen", "sampling", "total_ms", "total_tokens", "offload", "buffers",
                "kv_cache", "memory", "devices", "threads", "bench"):
        assert key in run
    assert set(run["prompt"]) == {"ms", "tokens", "ms_per_token", "tps"}


def test_csv(r1run_home):
    res = perf("--csv", str(DATA / "b11434-bench.csv"))
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].startswith("source,index,line,program,format,status") and len(lines) == 3
    assert ",pp16," in lines[1] and ",tg8," in lines[2]


def test_stdin(r1run_home):
    res = perf("-", input=(DATA / "main-2024.log").read_text())
    assert res.exit_code == 0 and "281.0" in res.stdout


@pytest.mark.parametrize("name, message", [
    ("empty.log", "empty.log is empty"),
    ("unknown.txt", "nothing in"),
    ("does-not-exist.log", "no such file"),
])
def test_bad_input_one_line_and_hint(r1run_home, name, message):
    res = perf(str(DATA / name))
    assert res.exit_code == 2
    err_lines = res.stderr.strip().splitlines()
    assert len(err_lines) == 2 and message in err_lines[0] and err_lines[1].startswith("hint:")
    assert "Traceback" not in res.output and res.stdout == ""


@pytest.mark.parametrize("name, message, hint", [
    ("b11434-rpc-oom.err", "nothing measured: llama-completion failed: out of memory allocating KV cache on RPC0",
     "offload fewer layers"),
    ("b11434-missing-model.err", "failed to open GGUF file", "check the model path"),
    ("cuda-oom-2025.log", "out of memory allocating model weights on CUDA0", "offload fewer layers"),
])
def test_crashed_run_one_line_and_hint(r1run_home, name, message, hint):
    res = perf(str(DATA / name))
    assert res.exit_code == 1
    err_lines = res.stderr.strip().splitlines()
    assert len(err_lines) == 2 and message in err_lines[0] and hint in err_lines[1]
    assert res.stdout == "" and "Traceback" not in res.output


def test_crashed_run_json_still_printed(r1run_home):
    res = perf("--json", str(DATA / "b11434-rpc-oom.err"))
    assert res.exit_code == 1
    assert json.loads(res.stdout)["runs"][0]["oom"]["target"] == "kv_cache"


def test_one_bad_file_among_good_ones(r1run_home):
    res = perf(str(DATA / "b11434-completion.err"), str(DATA / "empty.log"))
    assert res.exit_code == 2 and "57.7" in res.stdout and "empty.log is empty" in res.stderr


def test_json_and_csv_conflict(r1run_home):
    res = perf("--json", "--csv", str(DATA / "b11434-completion.err"))
    assert res.exit_code == 2 and "cannot be used together" in res.stderr


def test_help_lists_perf():
    # How fast --help is, is measured by benchmarks/fixed_cost.py, not asserted here.
    out = subprocess.run([sys.executable, "-m", "r1run", "--help"], capture_output=True, text=True, check=True)
    assert "perf" in out.stdout
