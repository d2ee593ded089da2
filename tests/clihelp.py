"""Running the real CLI in tests: in-process through Typer's CliRunner, or as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from typer.testing import CliRunner

from r1run.cli.app import make_app


def interruptible() -> None:
    """preexec_fn for a child a test will send SIGINT: a test run started with SIGINT ignored (a background job
    of a non-interactive shell, as some CI runners start it) would pass the ignored signal on (FIELD_NOTES §15)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def invoke(*args: str, env: dict[str, str] | None = None):
    """Run `r1run ARGS` in-process; unexpected exceptions propagate (never hidden)."""
    result = CliRunner().invoke(make_app(), list(args), env=env, catch_exceptions=False)
    return result


def tripwire(folder: Path, *programs: str) -> dict[str, str]:
    """An environment whose PATH finds `programs` first as scripts that only note they were run (in
    folder/ran) and fail: a no-op can then be told from a fast build by what ran, not by the clock."""
    import stat

    folder.mkdir(parents=True, exist_ok=True)
    for name in programs:
        script = folder / name
        script.write_text(f"#!/bin/sh\necho {name} >> '{folder / 'ran'}'\nexit 97\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


BUILD_TOOLS = ("cmake", "make", "ninja", "cc", "c++", "gcc", "g++", "nvcc")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m r1run ARGS` as a real process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "r1run", *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout)


class PtySession:
    """`python -m r1run ARGS` on a pseudo-terminal, as a person at a terminal runs it (a context manager
    that kills it if the test ends first)."""

    def __init__(self, *args: str) -> None:
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: r1run on the pseudo-terminal
            os.execv(sys.executable, [sys.executable, "-m", "r1run", *args])

    def read_until(self, needle: bytes, timeout: float) -> bytes:
        """What the terminal shows until `needle` (or the timeout, or the end)."""
        import select
        import time

        buf = b""
        deadline = time.monotonic() + timeout
        while needle not in buf and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
        return buf

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)

    def __enter__(self) -> "PtySession":
        return self

    def __exit__(self, *exc) -> None:
        import signal

        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """`python -m r1run serve ARGS` as a real process, once it has printed its addresses (up to `example:`);
    yields the process and those lines, and ends it (SIGTERM) if the test has not."""
    proc = subprocess.Popen([sys.executable, "-m", "r1run", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("example:") for line in lines):
            line = proc.stdout.readline()
            assert line, f"serve ended early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
