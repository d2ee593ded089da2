"""A real model split over RPC workers on loopback: same tokens, a lost worker, a capped worker, bad --rpc."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from test_worker import _stop, start_worker

from clihelp import PtySession, invoke
from nethelp import capped_worker, free_port

pytestmark = pytest.mark.llama
BOUND_S = 15  # from a worker's death to r1run's error (r1run.rpc: EXIT_GRACE + stop grace + probes)


@pytest.fixture()
def two_workers(home: Path):
    ports = [free_port(), free_port()]
    workers = [start_worker(p)[0] for p in ports]
    yield ",".join(f"127.0.0.1:{p}" for p in ports), workers
    for w in workers:
        if w.poll() is None:
            _stop(w, signal.SIGTERM)


def _chat(*args: str) -> dict:
    res = invoke("chat", "--json", *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_split_over_two_workers_gives_the_same_tokens(home: Path, smollm2: Path, two_workers) -> None:
    rpc, _ = two_workers
    common = [str(smollm2), "-p", "Name three colours.", "-n", "24", "--temp", "0", "--seed", "7", "-c", "512"]
    alone = _chat(*common, "-ngl", "0")
    # r1run's plan: layers over both workers, the rest on the local CPU (-ngl 20 of 31 keeps 11 at home)
    split = _chat(*common, "-ngl", "20", "--rpc", rpc, "--", "-ts", "1,1")
    assert split["answer"] == alone["answer"] and len(alone["answer"]) > 10
    argv = split["attempts"][0]["argv"]
    assert argv[argv.index("--rpc") + 1] == rpc
    log = Path(split["log"]).read_text()
    for ep in rpc.split(","):  # both workers hold weights (buffer names: RPC<device on that worker>[endpoint])
        assert f"load_tensors: RPC0[{ep}] model buffer size" in log
    assert "offloaded 20/31 layers" in log  # and 11 stayed on the local CPU
    auto = _chat(*common, "--rpc", rpc)  # --gpu-layers auto: the planner spreads the layers over the workers
    a = auto["attempts"][0]["argv"]
    assert "-ts" in a and auto["answer"] == alone["answer"]


def test_a_worker_killed_mid_run_is_named_within_the_bound(home: Path, smollm2: Path, two_workers) -> None:
    rpc, workers = two_workers
    victim = workers[1]
    killed: dict[str, float] = {}

    def kill_soon() -> None:
        time.sleep(6)  # loaded and generating by then (SmolLM2 loads in well under a second)
        import psutil

        for k in psutil.Process(victim.pid).children(recursive=True):  # the RPC server itself, as a crash would
            k.kill()
        killed["at"] = time.monotonic()

    t = threading.Thread(target=kill_soon)
    t.start()
    res = invoke("chat", str(smollm2), "-p", "Tell me a long story.", "-n", "20000", "-c", "8192", "--temp", "0",
                 "--rpc", rpc, "--", "--ignore-eos")
    ended = time.monotonic()
    t.join()
    port = rpc.split(",")[1].split(":")[1]
    assert "at" in killed, "the run finished before the worker was killed; raise -n"
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"lost RPC worker 127.0.0.1:{port}" in res.output
    # llama.cpp either aborts with its own line or dies of SIGPIPE writing to the closed connection
    assert "Remote RPC server crashed" in res.output or "SIGPIPE" in res.output
    assert ended - killed["at"] < BOUND_S



def test_interactive_chat_names_a_worker_killed_mid_answer(home: Path, smollm2: Path, two_workers) -> None:
    import psutil

    rpc, workers = two_workers
    victim = workers[0]
    # An interactive chat, its layers on the workers.
    with PtySession("chat", str(smollm2), "-n", "20000", "-c", "8192", "--rpc", rpc, "--", "--ignore-eos") as term:
        banner = term.read_until(b"> ", 120)
        assert b"available commands" in banner, banner[-500:]
        term.type("Tell me a very long story.")
        time.sleep(4)  # generating by then
        for k in psutil.Process(victim.pid).children(recursive=True):  # the RPC server itself, as a crash would
            k.kill()
        killed = time.monotonic()
        rest = term.read_until(b"restart the worker", BOUND_S + 30)
        ended = time.monotonic()
        code = term.wait()
    port = rpc.split(",")[0].split(":")[1]
    text = rest.decode(errors="replace")
    assert f"lost RPC worker 127.0.0.1:{port}" in text, text[-2000:]
    assert code == 1 and "Traceback" not in text
    assert ended - killed < BOUND_S


def test_auto_placement_retries_with_less_on_acapped_worker(home: Path, smollm2: Path, llama_bin: Path) -> None:
    port = free_port()
    worker = capped_worker(llama_bin, port, 250_000)
    try:
        data = _chat(str(smollm2), "-p", "Hi", "-n", "4", "-c", "8192", "--rpc", f"127.0.0.1:{port}")
    finally:
        worker.terminate()
        worker.wait(10)
    first, *rest = data["attempts"]
    ngl = int(first["argv"][first["argv"].index("-ngl") + 1])
    assert ngl == 31  # planned on the memory the worker reports (RLIMIT_AS is invisible to it)
    assert first["exit_code"] != 0 and f"RPC0[127.0.0.1:{port}]" in (first["oom"] or "") + json.dumps(rest)
    last = rest[-1]["argv"]
    assert rest[-1]["exit_code"] == 0 and int(last[last.index("-ngl") + 1]) < ngl


def test_plan_shows_each_worker_and_its_share(home: Path, smollm2: Path, two_workers) -> None:
    rpc, _ = two_workers
    res = invoke("plan", str(smollm2), "--rpc", rpc, "-c", "2048")
    assert res.exit_code == 0, res.output
    a, b = rpc.split(",")
    assert f"RPC0[{a}]: layers 0-" in res.stdout and f"RPC1[{b}]: layers " in res.stdout
    data = json.loads(invoke("plan", str(smollm2), "--rpc", rpc, "-c", "2048", "--json").stdout)
    devices = data["rows"][0]["devices"]
    assert [d["kind"] for d in devices] == ["rpc", "rpc", "cpu"]
    assert all(d["capacity_bytes"] > 2**30 for d in devices[:2])  # as the workers reported it


@pytest.mark.parametrize("rpc, code, message", [
    ("127.0.0.1", 2, "is not host:port"),
    ("127.0.0.1:50052,,127.0.0.1:50053", 2, "has an empty entry"),
    ("127.0.0.1:0", 2, "outside 1-65535"),
    ("127.0.0.1:65536", 2, "outside 1-65535"),
    ("no-such-host.invalid:50052", 2, "does not resolve"),
    ("DOWN", 1, "is down: connection refused"),
])
@pytest.mark.parametrize("command", ["chat", "serve", "plan"])
def test_bad_rpc_is_one_line_and_a_hint(home: Path, smollm2: Path, command: str, rpc: str, code: int,
                                        message: str) -> None:
    if rpc == "DOWN":
        rpc = f"127.0.0.1:{free_port()}"
    args = [command, str(smollm2), "--rpc", rpc] + (["-p", "Hi"] if command == "chat" else [])
    res = invoke(*args)
    assert res.exit_code == code, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "hint:" in res.output and "Traceback" not in res.output
