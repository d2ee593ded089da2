"""The one place r1run starts processes: argument lists only, always reaped."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import psutil

from r1run.errors import ToolMissing

log = logging.getLogger("r1run.proc")

# Linux: children that must not outlive r1run ask the kernel for SIGTERM when their parent dies (even by
# SIGKILL). prctl is looked up here, in the parent: between fork and exec only async-signal-safe calls belong.
PR_SET_PDEATHSIG = 1
_prctl = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no libc prctl (an unusual libc): children may outlive r1run
        _prctl = None


def _kernel_guards() -> bool:
    """Whether the kernel stops r1run's children when r1run dies (Linux); elsewhere, or with
    R1RUN_WATCHDOG=1 (how the tests exercise it on Linux), a `Watchdog` process does."""
    return _prctl is not None and os.environ.get("R1RUN_WATCHDOG") != "1"


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec function for Popen: SIGTERM this child when `parent` (r1run) dies. Note Linux ties it to the
    thread that started the child, so long-running children are started from threads that outlive them."""
    prctl = _prctl
    if prctl is None or not _kernel_guards():
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # r1run died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


class Watchdog:
    """Stops `child` when r1run dies where the kernel will not (see `r1run.watchdog`); nothing on Linux.

    Started right after the child, released right after it is reaped. A child started in the instant
    before its watchdog, by an r1run killed in that instant, can outlive it: the window is one fork.
    """

    def __init__(self, child: subprocess.Popen) -> None:
        self._watch: subprocess.Popen | None = None
        self._fd: int | None = None
        if _kernel_guards():
            return
        try:
            started = psutil.Process(child.pid).create_time()
        except psutil.Error:  # it ended already
            return
        read, write = os.pipe()  # neither end is inherited by anything else r1run starts
        try:
            self._watch = subprocess.Popen([sys.executable, "-m", "r1run.watchdog", str(child.pid), repr(started)],
                                           stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True)
            self._fd = write
        except OSError as exc:
            os.close(write)
            log.warning("no watchdog for pid %d (%s): it may outlive r1run if r1run is killed", child.pid, exc)
        finally:
            os.close(read)

    @property
    def pid(self) -> int | None:
        return self._watch.pid if self._watch is not None else None

    def release(self) -> None:
        """The child is reaped: let the watchdog find it gone and end."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._watch is not None:
            try:
                self._watch.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._watch.kill()
                self._watch.wait()
            self._watch = None


# Flags whose value is a secret: never logged or printed.
SECRET_FLAGS = frozenset({"--api-key", "--token", "--hf-token", "-hft"})
GRACE_SECONDS = 5.0


def redact(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    hide = False
    for arg in argv:
        out.append("***" if hide else arg)
        hide = arg in SECRET_FLAGS
    return out


def quote(argv: Sequence[str]) -> str:
    """The command as a shell would need it typed, secrets hidden."""
    return shlex.join(redact([str(a) for a in argv]))


def which(name: str, path: str | None = None) -> str | None:
    return shutil.which(name, path=path)


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Completed:
    """Run to completion, capturing output as text."""
    args = [str(a) for a in argv]
    log.debug("run: %s", quote(args))
    try:
        proc = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
            timeout=timeout, stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise ToolMissing(f"{args[0]} is not installed or not executable", None) from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Completed(args, -9, out, err + f"\n(timed out after {timeout}s)")
    return Completed(args, proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class Contained:
    argv: list[str]
    returncode: int  # negative: the signal that ended it (-9 when killed at the time limit)
    tail: list[str]  # the last lines it wrote (stdout and stderr)
    timed_out: bool
    seconds: float


def run_contained(
    argv: Sequence[str | os.PathLike], *, cwd: Path, env: dict[str, str], timeout: float, output: Path,
    cancel: threading.Event | None = None,
) -> Contained:
    """Run untrusted code to completion in its own session (process group), stdout and stderr into `output`.

    At the time limit the whole group gets SIGKILL, and after a normal exit too, so a child that forked
    and left something running (or sleeps forever) leaves nothing behind. A grandchild that starts a
    session of its own escapes the group: this is containment for careless code, not a security boundary.
    Output goes to a file, not a pipe, so a program that prints without end cannot fill r1run's memory (the
    file's size is the program's own limit to set). Setting `cancel` (from another thread, e.g. after Ctrl-C)
    kills the group within a fifth of a second.
    """
    args = [str(a) for a in argv]
    log.debug("contained: %s (cwd %s, %.0fs)", quote(args), cwd, timeout)
    start = time.monotonic()
    with open(output, "wb") as sink:
        try:
            child = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent(os.getpid()))
        except FileNotFoundError as exc:
            raise ToolMissing(f"{args[0]} is not installed or not executable") from exc
    watchdog = Watchdog(child)
    timed_out = False
    deadline = start + timeout
    try:
        while child.poll() is None and not (cancel is not None and cancel.is_set()):
            if time.monotonic() >= deadline:
                timed_out = True
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
    finally:
        _kill_group(child.pid)  # at the limit, on Ctrl-C, and whatever the program left running in its group
        child.wait()
        watchdog.release()
    with open(output, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
        tail = f.read().decode(errors="replace").splitlines()[-20:]
    return Contained(args, child.returncode, tail, timed_out, time.monotonic() - start)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def stop(proc: subprocess.Popen, grace: float = GRACE_SECONDS, first: int = signal.SIGINT) -> int:
    """Ask a child to stop (SIGINT by default), then SIGTERM, then SIGKILL; always reap it."""
    if proc.poll() is not None:
        return proc.returncode
    if first == signal.SIGINT and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # started with SIGINT ignored (a background job of a non-interactive shell is), so were our children:
        # they would not hear it, and we keep the ignored signal theirs as the shell meant; start with SIGTERM
        first = signal.SIGTERM
    for sig, wait in ((first, grace), (signal.SIGTERM, grace), (signal.SIGKILL, None)):
        try:
            if os.name == "nt" and sig != signal.SIGKILL:
                proc.terminate()
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


class Terminated(Exception):
    """SIGTERM (or SIGHUP) arrived while `sigterm_raises` was in force: stop the foreground server cleanly.
    `str(exc)` names the signal."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """For the block, SIGTERM and SIGHUP (the terminal closed) raise `Terminated` in the main thread, so a
    server stops cleanly; the previous handlers come back after."""
    def on_term(signum, frame):
        raise Terminated(signal.Signals(signum).name)

    caught = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, on_term) for sig in caught}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stream(
    argv: Sequence[str | os.PathLike],
    *,
    log_path: Path,
    on_line: Callable[[str], None] | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    keep: int = 30,
) -> tuple[int, list[str]]:
    """Run with stdout and stderr merged into log_path, feeding each line to on_line.

    Returns the exit code and the last `keep` lines. On Ctrl-C the child gets
    SIGINT, then SIGTERM and SIGKILL after grace periods, and KeyboardInterrupt
    propagates once it is reaped.
    """
    args = [str(a) for a in argv]
    log.debug("stream: %s > %s", quote(args), log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=keep)
    with open(log_path, "a", encoding="utf-8", errors="replace") as sink:
        sink.write(f"$ {quote(args)}\n")
        sink.flush()
        try:
            proc = subprocess.Popen(
                args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except FileNotFoundError as exc:
            raise ToolMissing(f"{args[0]} is not installed or not executable") from exc
        watchdog = Watchdog(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sink.write(line)
                line = line.rstrip("\n")
                tail.append(line)
                if on_line is not None:
                    on_line(line)
            code = proc.wait()
        except BaseException:
            code = stop(proc)
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            watchdog.release()
            sink.write(f"# exit {proc.returncode}\n")
    return code, list(tail)


class Child:
    """A long-running child (server, worker, chat) whose stderr is tee'd to a log file.

    Lines of stderr are handed to `on_line` from a reader thread and kept in a
    tail; `stop()` always reaps the process.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike],
        *,
        log_path: Path,
        on_line: Callable[[str], None] | None = None,
        stdout=None,
        stdin=None,
        env: dict[str, str] | None = None,
        keep: int = 60,
        cwd: Path | None = None,
        own_session: bool = False,  # out of the terminal's process group: Ctrl-C there does not reach it
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.tail: deque[str] = deque(maxlen=keep)
        log.debug("start: %s (stderr > %s)", quote(self.argv), log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = open(log_path, "a", encoding="utf-8", errors="replace")
        self._sink.write(f"$ {quote(self.argv)}\n")
        self._sink.flush()
        try:
            self.proc = subprocess.Popen(
                self.argv, stdout=stdout, stderr=subprocess.PIPE,
                stdin=stdin if stdin is not None else subprocess.DEVNULL, env=env, text=True, errors="replace",
                bufsize=1, cwd=cwd, preexec_fn=_die_with_parent(os.getpid()), start_new_session=own_session,
            )
        except FileNotFoundError as exc:
            self._sink.close()
            raise ToolMissing(f"{self.argv[0]} is not installed or not executable") from exc
        self.watchdog = Watchdog(self.proc)
        self._on_line = on_line
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._sink.write(line)
            self._sink.flush()
            line = line.rstrip("\n")
            self.tail.append(line)
            if self._on_line is not None:
                self._on_line(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout)
        self._finish()
        return code

    def stop(self, grace: float = GRACE_SECONDS, first: int = signal.SIGINT) -> int:
        code = stop(self.proc, grace, first)
        self._finish()
        return code

    def _finish(self) -> None:
        self.watchdog.release()
        self._reader.join(timeout=5)
        if not self._sink.closed:
            # llama.cpp may lose its last log lines when it exits early: the exit code says what happened.
            self._sink.write(f"# exit {self.proc.returncode}\n")
            self._sink.close()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_pty(
    argv: Sequence[str | os.PathLike],
    *,
    log_path: Path,
    on_output: Callable[[bytes], None] | None = None,
    on_line: Callable[[str], None] | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run an interactive program on a pseudo-terminal, relaying our stdin/stdout to it.

    The program sees a terminal (so llama-cli shows its chat UI), its stderr goes to log_path
    (and, line by line, to on_line from a reader thread), and every byte it prints is also handed
    to on_output (r1run reads the per-turn speed lines). `on_start` gets the process once it runs
    (whoever must be able to stop it from another thread). Our terminal is put in raw mode while it
    runs, so keys such as Ctrl-C reach the program.
    """

    args = [str(a) for a in argv]
    log.debug("pty: %s (stderr > %s)", quote(args), log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    master, slave = os.openpty()
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    is_tty = os.isatty(stdin_fd)
    if is_tty:

        size = fcntl.ioctl(stdin_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    errlog = open(log_path, "ab")
    errlog.write(f"$ {quote(args)}\n".encode())
    errlog.flush()
    try:
        child = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=errlog if on_line is None else subprocess.PIPE,
                                 env=env, start_new_session=True, close_fds=True,
                                 preexec_fn=_die_with_parent(os.getpid()))
    except FileNotFoundError as exc:
        os.close(master)
        os.close(slave)
        errlog.close()
        raise ToolMissing(f"{args[0]} is not installed or not executable") from exc
    os.close(slave)
    watchdog = Watchdog(child)
    reader = None
    if on_line is not None:
        reader = threading.Thread(target=_tee_lines, args=(child.stderr, errlog, on_line), daemon=True)
        reader.start()
    saved = termios.tcgetattr(stdin_fd) if is_tty else None
    try:
        if on_start is not None:
            on_start(child)
        if is_tty:
            tty.setraw(stdin_fd)
        watch = [master, stdin_fd]
        while True:
            ready, _, _ = select.select(watch, [], [], 0.2)
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the program closed its terminal
                    data = b""
                if not data:
                    break
                os.write(stdout_fd, data)
                if on_output is not None:
                    on_output(data)
            if stdin_fd in ready:
                data = os.read(stdin_fd, 1024)
                if data:
                    os.write(master, data)
                else:
                    watch = [master]  # our input ended; let the program finish
            if child.poll() is not None and master not in ready:
                break
        return stop(child) if child.poll() is None else child.returncode
    except BaseException:
        stop(child)
        raise
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        os.close(master)
        if reader is not None:
            reader.join(timeout=5)
        watchdog.release()
        errlog.write(f"# exit {child.returncode}\n".encode())
        errlog.close()


def _tee_lines(stream, sink, on_line: Callable[[str], None]) -> None:
    """Copy a child's byte stream into sink, handing each decoded line to on_line."""
    for raw in stream:
        sink.write(raw)
        sink.flush()
        on_line(raw.decode("utf-8", errors="replace").rstrip("\n"))
    stream.close()
