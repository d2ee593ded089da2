"""`r1run chat` with the real llama.cpp: one-shot, interactive on a pseudo-terminal, OOM retry, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clihelp import PtySession, interruptible, invoke
from nethelp import capped_worker, free_port

pytestmark = pytest.mark.llama


def _json(res) -> dict:
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_oneshot_smollm2_answers_with_a_tps_summary(home: Path, smollm2: Path) -> None:
    data = _json(invoke("chat", str(smollm2), "-p", "What is the capital of France?", "-n", "24", "--temp", "0",
                        "--seed", "1", "--json"))
    assert "paris" in data["answer"].lower()  # a real model: coherent text
    (attempt,) = data["attempts"]
    argv = attempt["argv"]
    assert argv[0].endswith("llama-completion") and "-no-cnv" in argv and "--no-display-prompt" in argv
    prompt = argv[argv.index("-p") + 1]
    assert prompt.startswith("<|im_start|>user\nWhat is the capital of France?")  # the model's ChatML format
    s = data["summary"]
    assert s["status"] == "ok" and s["gen"]["tps"] > 0 and s["prompt"]["tokens"] > 5 and s["load_ms"] > 0
    assert Path(data["log"]).is_file() and "common_perf_print" in Path(data["log"]).read_text()


def test_oneshot_human_output_streams_answer_to_stdout(home: Path, smollm2: Path) -> None:
    res = invoke("chat", str(smollm2), "-p", "Say hello.", "-n", "12", "--seed", "2")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() and "[end of text]" not in res.stdout
    assert "gen t/s" in res.stderr and "threads" in res.stderr  # summary + the defaults shown


def test_thinking_is_shown_apart_from_the_answer(home: Path, smollm2: Path) -> None:
    # A grammar makes the real model write R1's shape of answer.
    grammar = 'root ::= "<think>I should greet.</think>Hello there"'
    data = _json(invoke("chat", str(smollm2), "-p", "Hi", "-n", "32", "--json", "--", "--grammar", grammar))
    assert data["reasoning"] == "I should greet." and data["answer"] == "Hello there"
    human = invoke("chat", str(smollm2), "-p", "Hi", "-n", "32", "--", "--grammar", grammar)
    assert human.stdout.strip() == "Hello there" and "I should greet." in human.stderr
    hidden = invoke("chat", str(smollm2), "-p", "Hi", "-n", "32", "--hide-thinking", "--", "--grammar", grammar)
    assert "I should greet." not in hidden.stderr + hidden.stdout


def test_r1_shaped_model_uses_the_deepseek_format_and_settings(home: Path, r1_tiny) -> None:
    data = _json(invoke("chat", str(r1_tiny.path), "-p", "Hello", "-n", "8", "--json"))
    argv = data["attempts"][0]["argv"]
    assert argv[argv.index("-p") + 1] == "<｜User｜>Hello<｜Assistant｜>"
    assert argv[argv.index("--temp") + 1] == "0.6" and argv[argv.index("--min-p") + 1] == "0.05"
    assert argv[argv.index("-ctk") + 1] == "q4_0"
    # b11434 leaks its logger, whose last lines (answer and timings) a run lost 1 time in 15 here until r1run
    # patched the build to drain it at exit (llama.patches): every run has its timings now
    assert data["summary"]["status"] == "ok" and data["summary"]["gen"]["tps"] > 0


def test_dry_run_prints_the_command(home: Path, smollm2: Path) -> None:
    res = invoke("chat", str(smollm2), "-p", "Hi", "--ctx-size", "1024", "-ngl", "0", "--dry-run", "--", "-fa", "on")
    assert res.exit_code == 0
    line = res.stdout.strip()
    assert "llama-completion" in line and "-c 1024" in line and "-ngl 0" in line and line.endswith("-fa on")




def test_out_of_memory_on_a_capped_worker_retries_with_fewer_layers(home: Path, smollm2: Path, llama_bin: Path) -> None:
    port = free_port()
    worker = capped_worker(llama_bin, port, 250_000)
    try:
        res = invoke("chat", str(smollm2), "-p", "Hi", "-n", "4", "-c", "8192", "-ngl", "31",
                     "--rpc", f"127.0.0.1:{port}", "--json")
        data = _json(res)
    finally:
        worker.terminate()
        worker.wait(10)
    first, *rest = data["attempts"]
    assert first["exit_code"] != 0 and "out of memory" in first["oom"] and first["change"].startswith("GPU layers")
    assert rest and rest[-1]["exit_code"] == 0
    last_argv = rest[-1]["argv"]
    assert int(last_argv[last_argv.index("-ngl") + 1]) < 31
    assert "retrying with GPU layers" in res.stderr
    assert data["summary"]["gen"]["tps"] > 0


def test_no_retry_stops_at_the_first_out_of_memory(home: Path, smollm2: Path, llama_bin: Path) -> None:
    port = free_port()
    worker = capped_worker(llama_bin, port, 250_000)
    try:
        res = invoke("chat", str(smollm2), "-p", "Hi", "-n", "4", "-c", "8192", "-ngl", "31",
                     "--rpc", f"127.0.0.1:{port}", "--no-retry")
    finally:
        worker.terminate()
        worker.wait(10)
    assert res.exit_code == 1 and "out of memory" in res.stderr and "Traceback" not in res.stderr


def test_interactive_chat_on_a_pseudo_terminal(home: Path, smollm2: Path) -> None:
    with PtySession("chat", str(smollm2), "-n", "16", "-c", "1024") as term:
        banner = term.read_until(b"> ", 120)
        assert b"available commands" in banner, banner[-500:]
        for question in ("What is the capital of France?", "Name a colour."):
            term.type(question)
            answer = term.read_until(b"t/s ]", 120)
            assert b"Generation:" in answer, answer[-500:]
            term.read_until(b"> ", 30)
        term.type("/exit")
        rest = term.read_until(b"\xe2\x94\x94", 60)  # the table's last border
        code = term.wait()
    assert code == 0
    assert b"speed per answer" in rest  # the TPS summary of each turn, parsed from llama-cli's own lines
    text = re.sub(r"\x1b\[[0-9;]*m", "", rest.decode(errors="replace"))
    rows = [line.split("\u2502")[1:-1] for line in text.splitlines() if line.startswith("\u2502")]
    assert [r[0].strip() for r in rows] == ["1", "2"], text  # one row per answer, no phantom third
    assert float(rows[0][1]) > 0 and rows[1][1].strip() == "-"  # the load time, once, on the first turn


def test_ctrl_c_stops_llama_cpp_and_leaves_no_process(home: Path, smollm2: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "r1run", "chat", str(smollm2), "-p", "Write a very long story.",
                             "-n", "4000", "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
                            preexec_fn=interruptible)
    try:
        assert proc.stdout is not None
        first = proc.stdout.read(1)  # generation has started
        assert first
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("llama-completion" in c.name() for c in children)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "gen t/s" in err.decode()  # the summary of what ran
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["-ngl", "-1"], 2, "--gpu-layers must be at least 0"),
        (["-ngl", "500"], 2, "more than this model's 30 layers"),
        (["-c", "0"], 2, "--ctx-size must be a positive number"),
        (["--prompt-file", "/nonexistent/prompt.txt"], 2, "--prompt-file /nonexistent/prompt.txt"),
        (["--rpc", "localhost"], 2, "is not host:port"),
        (["-p", "Hi", "-n", "4", "--", "--definitely-not-a-flag"], 1, "--definitely-not-a-flag"),
    ],
)
def test_bad_input(home: Path, smollm2: Path, args: list[str], code: int, text: str) -> None:
    res = invoke("chat", str(smollm2), *args)
    assert res.exit_code == code, res.stderr
    assert text in res.stderr and "Traceback" not in res.stderr


def test_missing_model_and_shards(home: Path, tmp_path: Path) -> None:
    res = invoke("chat", str(tmp_path / "nope.gguf"), "-p", "Hi")
    assert res.exit_code == 2 and "no such file" in res.stderr
    shard = tmp_path / "R1-00001-of-00003.gguf"
    shard.write_bytes(b"GGUF")
    res = invoke("chat", str(shard), "-p", "Hi")
    assert res.exit_code == 2 and "missing beside it" in res.stderr


def test_no_llama_cpp(r1run_home: Path, smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    res = invoke("chat", str(smollm2), "-p", "Hi")
    assert res.exit_code == 1 and "r1run build" in res.stderr


def test_catalog_model_not_downloaded_names_the_download_command(home: Path) -> None:
    res = invoke("chat", "deepseek-r1", "--quant", "IQ1_S", "-p", "Hi")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert "deepseek-r1 UD-IQ1_S is not downloaded" in res.stderr
    assert "r1run download deepseek-r1 --quant UD-IQ1_S" in res.stderr


def test_a_full_context_on_deepseek2_says_so_and_how_to_raise_it(home: Path, r1_tiny) -> None:
    # DeepSeek's architecture cannot shift its context: llama.cpp stops the answer at the context's end
    # llama-completion b11434 sometimes exits before its last log lines reach the log (about 1 run in 6-15 on this
    # model, seen on the starting commit too): the line that says the context is full is then not there to read,
    # so each check below is given three runs.
    for _ in range(3):
        res = invoke("chat", str(r1_tiny.path), "-p", "Tell me a long story.", "-c", "256", "-n", "2000", "--seed",
                     "1", "--", "--ignore-eos")
        assert res.exit_code == 0, res.stderr
        if "context is full" in res.stderr:
            break
    assert "the context is full (256 tokens): the answer stopped there" in res.stderr
    assert "DeepSeek's architecture (deepseek2) cannot shift its context" in res.stderr and "-c 512" in res.stderr
    assert "Traceback" not in res.stderr
    fulls = []
    for _ in range(3):
        data = _json(invoke("chat", str(r1_tiny.path), "-p", "Tell me a long story.", "-c", "256", "-n", "2000",
                            "--seed", "1", "--json", "--", "--ignore-eos"))
        fulls.append(bool(data["summary"] and data["summary"]["context_full"]))
        if fulls[-1]:
            break
    assert fulls[-1], fulls
    # with room to spare, nothing is said
    res = invoke("chat", str(r1_tiny.path), "-p", "Hi", "-c", "1024", "-n", "16", "--", "--ignore-eos")
    assert res.exit_code == 0 and "context is full" not in res.stderr


def test_a_full_context_in_an_interactive_chat_says_so(home: Path, r1_tiny) -> None:
    with PtySession("chat", str(r1_tiny.path), "-c", "256", "-n", "2000", "--", "--ignore-eos") as term:
        term.read_until(b"> ", 120)
        term.type("Tell me a long story.")
        answer = term.read_until(b"t/s ]", 120)
        assert b"Generation:" in answer, answer[-500:]
        term.read_until(b"> ", 30)
        term.type("/exit")
        rest = term.read_until(b"-c 512", 60)
        code = term.wait()
    assert code == 0  # no crash
    text = rest.decode(errors="replace")
    assert "the context is full (256 tokens): answer 1 stopped there" in " ".join(text.split()), text[-1500:]
