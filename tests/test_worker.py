"""`r1run worker` with the real llama.cpp RPC server: start, devices, SIGTERM / Ctrl-C, port in use, exposure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clihelp import interruptible, invoke
from nethelp import free_port
from r1run import proc, rpc

pytestmark = pytest.mark.llama



def start_worker(port: int, *extra: str, env: dict[str, str] | None = None,
                 threads: tuple[str, ...] = ("--threads", "1")) -> tuple[subprocess.Popen, Path]:
    """`python -m r1run worker` as a real process; returns once it has printed its devices."""
    err = Path(os.environ["R1RUN_HOME"]) / f"worker-{port}.err"
    err.parent.mkdir(parents=True, exist_ok=True)
    with open(err, "w") as sink:  # a file, not a pipe: nobody has to drain it while the worker runs
        p = subprocess.Popen([sys.executable, "-m", "r1run", "worker", "--port", str(port), *threads, *extra],
                             env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=sink, text=True,
                             preexec_fn=interruptible)
    deadline = time.monotonic() + 60
    while "on the main machine" not in err.read_text():
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"worker did not start: {err.read_text()}")
        time.sleep(0.1)
    return p, err


def _stop(p: subprocess.Popen, sig: int) -> tuple[int, str, list[psutil.Process], float]:
    kids = psutil.Process(p.pid).children(recursive=True)
    t0 = time.monotonic()
    p.send_signal(sig)
    out, _ = p.communicate(timeout=30)
    return p.returncode, out, kids, time.monotonic() - t0


def _gone(procs: list[psutil.Process]) -> bool:
    def dead(k: psutil.Process) -> bool:
        try:
            return not k.is_running() or k.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    return all(dead(k) for k in procs)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_worker_serves_its_devices_and_stops_cleanly(home: Path, sig: int, code: int) -> None:
    port = free_port()
    p, err = start_worker(port)
    assert rpc.probe(rpc.Endpoint("127.0.0.1", port)) is None
    found = rpc.ask_devices(Path(os.environ["R1RUN_LLAMA_BIN"]) / "llama-server", [rpc.Endpoint("127.0.0.1", port)])
    assert len(found) == 1 and found[0].free_bytes > 0
    kids = psutil.Process(p.pid).children(recursive=True)
    assert any("rpc-server" in k.name() for k in kids)
    rc, out, _, took = _stop(p, sig)
    assert rc == code and took < 15 and _gone(kids)
    assert "CPU" in out and "GiB" in out  # the devices table: the server's own name for it, and its memory
    text = err.read_text()
    assert f"r1run chat --rpc 127.0.0.1:{port}" in text and "Traceback" not in text
    assert "a client connected" in text  # our ask_devices above, reported as it happened
    assert rpc.probe(rpc.Endpoint("127.0.0.1", port)) is not None  # nothing listens any more


def test_port_in_use_is_a_clear_error(home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = invoke("worker", "--port", str(port))
    assert res.exit_code == 2 and f"port {port} on 127.0.0.1 is already in use" in res.output
    assert "hint:" in res.output and "Traceback" not in res.output


def test_a_second_worker_on_the_same_port(home: Path) -> None:
    port = free_port()
    p, _ = start_worker(port)
    try:
        res = invoke("worker", "--port", str(port))
        assert res.exit_code == 2 and "already in use" in res.output
    finally:
        _stop(p, signal.SIGTERM)


def test_non_loopback_address_warns_that_rpc_has_no_authentication(home: Path) -> None:
    # --dry-run: the warning and the command, without binding anything but loopback in tests
    res = invoke("worker", "--host", "192.0.2.10", "--dry-run")
    assert res.exit_code == 0
    assert "NO authentication" in res.output and "trusted network" in res.output
    assert "-H 192.0.2.10 -p 50052" in res.stdout
    quiet = invoke("worker", "--dry-run", "--port", "50100", "--threads", "3", "--cache")
    assert "authentication" not in quiet.output
    assert quiet.stdout.strip().endswith("-H 127.0.0.1 -p 50100 -t 3 -c")


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "outside 1-65535"),
    (["--port", "70000"], "outside 1-65535"),
    (["--threads", "zero"], "--threads must be"),
    (["--mem", "1024"], "cannot limit its memory"),
])
def test_bad_worker_options(home: Path, args: list[str], message: str) -> None:
    res = invoke("worker", *args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


@pytest.fixture()
def old_bin(old_llama_home: Path) -> Path:
    """The programs of the real early-2025 llama.cpp build (tests/conftest.py builds it once per cache)."""
    from r1run.home import Home
    from r1run.llama import manifest

    m = manifest.default_build(Home(old_llama_home))
    assert m is not None
    return Path(m.path) / "bin"


def test_workers_of_another_release_are_refused_with_llama_cpps_line(home: Path, smollm2: Path, old_bin: Path) -> None:
    """An early-2025 rpc-server worker and a current client (and the reverse) cannot talk: say so before loading."""
    port = free_port()
    old, err = start_worker(port, "--llama-bin", str(old_bin), threads=())  # the 2025 server has no -t
    try:
        res = invoke("chat", str(smollm2), "-p", "Hi", "-n", "2", "-ngl", "5", "--rpc", f"127.0.0.1:{port}")
    finally:
        _stop(old, signal.SIGTERM)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"RPC worker 127.0.0.1:{port} failed llama.cpp's RPC handshake" in res.output
    assert "Remote RPC server crashed" in res.output and "same release" in res.output
    assert "Unknown command: 14" in err.read_text()  # the old worker's side of it, shown as a warning

    port = free_port()
    new, err = start_worker(port)
    try:
        res = invoke("chat", str(smollm2), "-p", "Hi", "-n", "2", "-ngl", "5", "--rpc", f"127.0.0.1:{port}",
                     env={"R1RUN_LLAMA_BIN": str(old_bin)})
    finally:
        _stop(new, signal.SIGTERM)
    assert res.exit_code == 1 and "GGML_ASSERT(status) failed" in res.output
    assert "another llama.cpp release tried to connect: Expected HELLO command" in err.read_text()


def test_stopping_a_child_that_inherited_an_ignored_sigint_starts_with_sigterm() -> None:
    # r1run started as a background job (SIGINT ignored) passes the ignored SIGINT on to the programs it starts;
    # proc.stop must not wait out a grace period on a signal they cannot hear
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline() == "up\n"
        t0 = time.monotonic()
        code = proc.stop(child, grace=20)
        took = time.monotonic() - t0
    finally:
        signal.signal(signal.SIGINT, before)
    assert code == -signal.SIGTERM and took < 5
