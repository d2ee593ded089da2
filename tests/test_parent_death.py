"""When r1run dies, its llama.cpp dies with it (issue: SIGKILL or SIGHUP of `r1run serve` left llama-server
running with parent 1, still answering, and the API-key file on disk). Real processes, real signals."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from clihelp import run_cli
from nethelp import free_port

pytestmark = [pytest.mark.llama,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")]

KEY = "k-0123456789abcdef"


def _start(argv: list[str], env: dict[str, str], ready: str, stream: str = "stdout") -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "r1run", *argv], env={**os.environ, **env}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    pipe = p.stdout if stream == "stdout" else p.stderr
    assert pipe is not None
    for line in pipe:
        if ready in line:
            return p
    p.kill()
    raise AssertionError(f"{argv[0]} ended early: {p.communicate()[1][-2000:]}")


def _llama_children(p: subprocess.Popen, name: str) -> list[psutil.Process]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = [c for c in psutil.Process(p.pid).children(recursive=True) if name in c.name()]
        if kids:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"no {name} child")


def _gone(procs: list[psutil.Process], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [q for q in procs if q.is_running() and q.status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.1)
    return False


# Linux's parent-death signal, and the watchdog process macOS relies on (forced here by R1RUN_WATCHDOG=1)
GUARDS = {"pdeathsig": {}, "watchdog": {"R1RUN_WATCHDOG": "1"}}


def _watchdogs(p: subprocess.Popen | psutil.Process) -> list[psutil.Process]:
    found = []
    for c in psutil.Process(p.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "r1run.watchdog" in c.cmdline():
                found.append(c)
    return found


def _every_watchdog() -> list[psutil.Process]:
    """Watchdogs run in their own session: after r1run dies they are nobody's children."""
    found = []
    for c in psutil.process_iter(["cmdline"]):
        if "r1run.watchdog" in (c.info["cmdline"] or []):
            found.append(c)
    return found


@pytest.mark.parametrize("guard", GUARDS)
def test_sigkill_of_serve_takes_llama_server_with_it_and_leaves_no_key(r1run_home: Path, llama_bin: Path,
                                                                       smollm2: Path, guard: str) -> None:
    run_dir = r1run_home / "run"
    run_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run_dir / f"api-key-{dead.pid}"  # left by a server that was killed before this fix
    stale.write_text("old-key\n")
    env = {"R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin), "R1RUN_API_KEY": KEY, **GUARDS[guard]}
    port = free_port()
    server = _start(["serve", str(smollm2), "--port", str(port), "-c", "512", "-t", "1"], env, "example:")
    try:
        llama = _llama_children(server, "llama-server")
        dogs = _watchdogs(server)
        assert len(dogs) == (1 if guard == "watchdog" else 0)
        assert not stale.exists()
        assert list(run_dir.glob("api-key-*")) == []  # llama-server read its key at start: none on disk now
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as resp:
            assert resp.status == 200
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        assert _gone(llama), "llama-server outlived r1run"
        assert _gone(dogs), "the watchdog stayed after its work was done"
    finally:
        for q in psutil.Process().children(recursive=True):
            if "llama" in q.name():
                q.kill()
        if server.poll() is None:
            server.kill()
    assert run_cli("ps", "--json", env=env).stdout.count('"pid"') == 0  # the dead server's record is cleaned


def test_sighup_stops_serve_cleanly(r1run_home: Path, llama_bin: Path, smollm2: Path) -> None:
    env = {"R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin)}
    server = _start(["serve", str(smollm2), "--port", str(free_port()), "-c", "512", "-t", "1"], env, "example:")
    llama = _llama_children(server, "llama-server")
    server.send_signal(signal.SIGHUP)  # the terminal closed
    _, err = server.communicate(timeout=60)
    assert server.returncode == 0 and "stopped (SIGHUP)" in err
    assert _gone(llama, 10)


@pytest.mark.parametrize("guard", GUARDS)
def test_sigkill_of_worker_and_of_a_chat_takes_llama_cpp_with_them(r1run_home: Path, llama_bin: Path,
                                                                    smollm2: Path, guard: str) -> None:
    env = {"R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin), **GUARDS[guard]}
    worker = _start(["worker", "--port", str(free_port()), "-t", "1"], env, "on the main machine", "stderr")
    rpc = _llama_children(worker, "rpc-server")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert _gone(rpc), "the RPC server outlived r1run"

    chat = subprocess.Popen([sys.executable, "-m", "r1run", "chat", str(smollm2), "-p", "Tell a very long story.",
                             "-n", "100000", "-c", "100000", "-t", "1", "--temp", "1"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert chat.stdout is not None and chat.stdout.read(40)  # answering
        llama = _llama_children(chat, "llama-")
        chat.send_signal(signal.SIGKILL)
        chat.wait(timeout=10)
        assert _gone(llama), "llama.cpp outlived r1run chat"
    finally:
        if chat.poll() is None:
            chat.kill()


def test_a_watchdog_ends_with_its_child_when_r1run_ends_normally(r1run_home: Path, llama_bin: Path,
                                                                  smollm2: Path) -> None:
    before = {p.pid for p in _every_watchdog()}
    env = {"R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin), "R1RUN_WATCHDOG": "1"}
    res = run_cli("chat", str(smollm2), "-p", "Say hi.", "-n", "8", "-c", "512", "-t", "1", env=env)
    assert res.returncode == 0, res.stderr
    assert {p.pid for p in _every_watchdog()} - before == set()  # released and reaped, none left behind


def test_the_watchdog_stops_only_the_process_it_was_given() -> None:
    from r1run import watchdog

    child = subprocess.Popen(["sleep", "300"])
    try:
        started = psutil.Process(child.pid).create_time()
        # the same pid with another start time is a different process (a pid reused): left alone
        assert watchdog.stop(child.pid, started - 5) == "gone" and child.poll() is None
        assert watchdog.stop(child.pid, started) == "stopped"
        assert child.wait(timeout=10) == -signal.SIGTERM
        assert watchdog.stop(child.pid, started) == "gone"  # already ended
        stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                     "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                                     "time.sleep(300)"], stdout=subprocess.PIPE, text=True)
        assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == "ready"
        when = psutil.Process(stubborn.pid).create_time()
        assert watchdog.stop(stubborn.pid, when, grace=0.5) == "killed"
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


def test_serve_dry_run_prints_the_key_file_it_would_use_never_the_key(r1run_home: Path, llama_bin: Path,
                                                                     smollm2: Path) -> None:
    env = {"R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin), "R1RUN_API_KEY": KEY}
    res = run_cli("serve", str(smollm2), "--dry-run", env=env)
    assert res.returncode == 0, res.stderr
    assert f"--api-key-file {r1run_home / 'run'}/api-key-" in res.stdout
    assert KEY not in res.stdout + res.stderr and "***" not in res.stdout
