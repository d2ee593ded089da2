"""Starting llama.cpp from the last run's memo (r1run.chat.early), with the real llama.cpp."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from clihelp import run_cli
from r1run import proc
from r1run.chat import early
from r1run.chat.early import PROMPT, split_prompt


# --- which command lines can start early ------------------------------------------------------------

def test_the_prompt_is_left_out_of_the_command_line_that_is_remembered() -> None:
    a = split_prompt(["chat", "m.gguf", "-p", "Hello", "-n", "8"])
    b = split_prompt(["chat", "m.gguf", "-p", "Something else entirely", "-n", "8"])
    assert a == (["chat", "m.gguf", "-p", PROMPT, "-n", "8"], "Hello")
    assert b is not None and b[0] == a[0] and b[1] == "Something else entirely"
    assert split_prompt(["chat", "m.gguf", "--prompt=Hi"]) == (["chat", "m.gguf", "--prompt=" + PROMPT], "Hi")
    # After `--` the arguments are llama.cpp's: its own -p is not r1run's prompt.
    assert split_prompt(["chat", "m", "--prompt", "x", "--", "-p", "y"]) == (
        ["chat", "m", "--prompt", PROMPT, "--", "-p", "y"], "x")


@pytest.mark.parametrize("args", [
    ["serve", "m.gguf", "-p", "x"],
    ["chat", "m.gguf"],  # interactive
    ["chat", "m.gguf", "-p", "a", "-p", "b"],
    ["chat", "m.gguf", "-p", "a", "--dry-run"],
    ["chat", "m.gguf", "--prompt-file", "f.txt"],
    ["chat", "m.gguf", "-p", "a", "--rpc", "10.0.0.2:50052"],
    ["chat", "m.gguf", "-p", "a", "--rpc=10.0.0.2:50052"],
    ["chat", "m.gguf", "--", "-p", "a"],
    [],
])
def test_command_lines_that_never_start_early(args: list[str]) -> None:
    assert split_prompt(args) is None


# --- a child whose lines are held until someone reads them ------------------------------------------

def test_held_lines_are_replayed_in_order_then_streamed(tmp_path: Path) -> None:
    script = ("import sys, time\n"
              "for i in range(300): print(f'early {i}', file=sys.stderr, flush=True)\n"
              "time.sleep(0.5)\n"
              "for i in range(300): print(f'late {i}', file=sys.stderr, flush=True)\n")
    child = proc.Child([sys.executable, "-c", script], log_path=tmp_path / "x.log", hold=True)
    time.sleep(0.3)  # the first 300 lines arrive before anyone listens
    seen: list[str] = []
    child.attach(seen.append)
    assert child.wait(timeout=30) == 0
    assert seen == [f"early {i}" for i in range(300)] + [f"late {i}" for i in range(300)]
    log = (tmp_path / "x.log").read_text().splitlines()
    assert [line for line in log if line.startswith(("early ", "late "))] == seen and log[-1] == "# exit 0"


# --- with the real llama.cpp ------------------------------------------------------------------------

# Threads fixed: with `auto` they follow how busy the machine is, and a change of mind is (rightly) not
# started early, which would make these tests depend on the machine's load.
ARGS = ("-n", "8", "--seed", "1", "--temp", "0", "--threads", "2", "--json")


def _chat(model: Path, prompt: str, *extra: str) -> dict:
    res = run_cli("chat", str(model), "-p", prompt, *ARGS, *extra)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def _memos(home: Path) -> list[Path]:
    return sorted((home / "cache" / "launch").glob("*.json"))


def _llama_processes(model: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].endswith("llama-completion") and str(model) in cmd:
            found.append(p)
    return found


@pytest.fixture()
def model(r1_tiny, tmp_path: Path) -> Path:
    """A copy of the tiny R1-shaped model this test may touch."""
    dest = tmp_path / "models" / Path(r1_tiny.path).name
    dest.parent.mkdir()
    dest.write_bytes(Path(r1_tiny.path).read_bytes())
    return dest


@pytest.mark.llama
def test_the_next_run_starts_the_remembered_command_and_answers_the_same(home: Path, model: Path) -> None:
    first = _chat(model, "Hello")
    assert first["started_early"] is False and len(_memos(home)) == 1
    logs_before = set((home / "logs").iterdir())

    again = _chat(model, "Tell me about the sea.")  # another prompt: the same memo serves
    assert again["started_early"] is True
    argv = again["attempts"][0]["argv"]
    assert argv[argv.index("-p") + 1] == "<｜User｜>Tell me about the sea.<｜Assistant｜>"
    assert set((home / "logs").iterdir()) - logs_before == {Path(again["log"])}  # one run, one log
    assert again["attempts"][0]["exit_code"] == 0

    for memo in _memos(home):
        memo.unlink()
    normal = _chat(model, "Tell me about the sea.")
    assert normal["started_early"] is False and normal["attempts"][0]["argv"] == argv
    # The same greedy answer. b11434 itself can lose the end of its output (answer and speed lines) when
    # it writes to a pipe on a busy machine and exits at once (4 of 40 such runs of llama-completion
    # alone, none to files): a run without its speed lines may be cut short, so it must be a prefix.
    complete = [r["answer"] for r in (normal, again) if r["summary"] and r["summary"]["eval"]]
    if len(complete) == 2:
        assert normal["answer"] == again["answer"]
    else:
        short, full = sorted((normal["answer"], again["answer"]), key=len)
        assert full.startswith(short)


@pytest.mark.llama
def test_a_memo_r1run_no_longer_agrees_with_is_killed_and_its_log_deleted(home: Path, model: Path) -> None:
    _chat(model, "Hello")
    (memo,) = _memos(home)
    data = json.loads(memo.read_text())
    data["argv"][data["argv"].index("-c") + 1] = "1024"  # as if r1run had chosen another context last time
    memo.write_text(json.dumps(data))
    args = ["chat", str(model), "-p", "Hello again", *ARGS]
    assert early.start(args) is True  # the stale memo is used: llama.cpp starts early...
    early.discard()
    logs_before = set((home / "logs").iterdir())

    res = _chat(model, "Hello again")  # ...and r1run, disagreeing, kills it and runs its own choice
    assert res["started_early"] is False
    argv = res["attempts"][0]["argv"]
    assert argv[argv.index("-c") + 1] == "8192"  # what r1run decides now is what ran
    assert set((home / "logs").iterdir()) - logs_before == {Path(res["log"])}
    assert not _llama_processes(model)
    assert json.loads(memo.read_text())["argv"][data["argv"].index("-c") + 1] == "8192"  # memo mended


@pytest.mark.llama
def test_a_changed_model_file_is_not_started_early(home: Path, model: Path) -> None:
    _chat(model, "Hello")
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert early.start(["chat", str(model), "-p", "Hi", *ARGS]) is False
    early.discard()
    assert _chat(model, "Hello")["started_early"] is False


@pytest.mark.llama
def test_an_early_start_nobody_claims_leaves_no_process_and_no_log(home: Path, model: Path) -> None:
    _chat(model, "Hello")
    logs_before = set((home / "logs").iterdir())
    args = ["chat", str(model), "-p", "A long story please", *ARGS]
    assert early.start(args) is True
    child = early._run.child  # noqa: SLF001 - the process this test must see gone
    assert child is not None and psutil.Process(child.pid).is_running()
    early.discard()
    assert child.poll() is not None  # reaped
    assert set((home / "logs").iterdir()) == logs_before
    assert not _llama_processes(model)


@pytest.mark.llama
def test_a_command_line_r1run_refuses_stops_the_early_llama_cpp(home: Path, model: Path) -> None:
    from r1run.home import Home

    first = _chat(model, "Hello")
    (memo,) = _memos(home)
    # A memo for a command line r1run refuses (--ctx-size 0): the early llama.cpp starts, then must go.
    args = ["chat", str(model), "-p", "Hi", *ARGS, "-c", "0"]
    bad = early.memo_path(Home(home), split_prompt(args)[0])
    bad.write_text(memo.read_text())
    assert early.start(args) is True
    early.discard()
    logs_before = set((home / "logs").iterdir())
    res = run_cli(*args)
    assert res.returncode == 2 and "--ctx-size must be positive" in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert set((home / "logs").iterdir()) == logs_before
    assert not _llama_processes(model) and first["started_early"] is False
