"""llama.cpp's RPC workers seen from the machine that runs the model.

Parse `--rpc host:port,...`, check every worker answers before a model is loaded, read each worker's
devices and memory the way llama.cpp sees them, and name the worker behind an RPC failure.

What llama.cpp b11434 prints (stderr) when the RPC side goes wrong, all measured:

    .../ggml-rpc.cpp:547: Failed to connect to 127.0.0.1:50912          (nothing listens; abort, exit 134)
    0.00.005.682 E Cannot resolve host 'nosuchhost.invalid'              (then "Failed to connect to ...")
    0.02.523.187 E recv failed (bytes_recv=0, size_to_recv=8)           (the worker died mid-run ...)
    .../ggml-rpc.cpp:566: Remote RPC server crashed or returned malformed response   (... then abort)
    .../ggml-rpc.cpp:354: Remote RPC server crashed or returned malformed response   (handshake: an rpc-server
                                                                          from early 2025 answers `Unknown command: 14`)
    E RPC server version mismatch: 6.1.0                                (same handshake, other protocol version)
    .../ggml-rpc.cpp:550: RPC handshake failed for 127.0.0.1:50052
    .../ggml-rpc.cpp:756: GGML_ASSERT(status) failed
        (an early-2025 client, a current worker; the worker says `Expected HELLO command, update client`)
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from r1run import proc
from r1run.errors import BadInput, R1runError
from r1run.hardware import parse_list_devices

DEFAULT_PORT = 50052
CONNECT_TIMEOUT = 3.0  # seconds to wait for a TCP connection to a worker
ASK_TIMEOUT = 30.0  # seconds for `--list-devices` against one worker
EXIT_GRACE = 5.0  # after llama.cpp reports a lost worker, how long it may take to exit before r1run stops it
PROBE_EVERY = 10.0  # while a model runs, how often r1run checks that every worker still accepts connections

# llama.cpp's RPC client cuts an endpoint at its first ':' and resolves the host with gethostbyname:
# IPv4 addresses and host names only.
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?$")
_RPC_FAILURE = re.compile(
    r"Remote RPC server crashed|RPC server version mismatch|RPC handshake failed|Failed to connect to|"
    r"Cannot resolve host|recv failed \(|send failed \(|ggml-rpc\.cpp:\d+: GGML_ASSERT"
)
_NAMED = re.compile(r"(?:Failed to connect to|RPC handshake failed for)\s+(?P<ep>\S+?:\d+)")
_HANDSHAKE = re.compile(r"version mismatch|handshake failed|ggml-rpc\.cpp:354:|ggml-rpc\.cpp:\d+: GGML_ASSERT")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class WorkerError(R1runError):
    """An RPC worker is down, unreachable, busy, speaks another protocol, or was lost mid-run."""

    def __init__(self, message: str, hint: str | None = None, *, endpoint: str | None = None) -> None:
        super().__init__(message, hint)
        self.endpoint = endpoint


@dataclass(frozen=True)
class WorkerDevice:
    """One device a worker offers, as `llama-server --rpc HOST:PORT --list-devices` shows it:

        Available devices:
          RPC0: 127.0.0.1:50052 (24105 MiB, 24105 MiB free)
    """

    endpoint: str
    name: str  # llama.cpp's name for it in this run: RPC0, RPC1... in --rpc order
    total_bytes: int
    free_bytes: int


def parse(text: str | None) -> list[Endpoint]:
    """'host:port,host:port' -> endpoints; BadInput (one line + hint) for anything llama.cpp would trip on."""
    if text is None or not text.strip():
        raise BadInput("--rpc is empty", "give workers as host:port[,host:port...], e.g. --rpc 192.168.1.10:50052")
    out: list[Endpoint] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            raise BadInput(f"--rpc {text!r} has an empty entry",
                           "separate workers with single commas, no trailing comma")
        if part.startswith("[") or part.count(":") > 1:
            raise BadInput(f"--rpc: {part!r} looks like an IPv6 address, which llama.cpp's RPC client cannot use",
                           "give the worker's IPv4 address or host name, e.g. 192.168.1.10:50052")
        host, sep, port = part.rpartition(":")
        if not sep or not host or not _HOST.match(host) or not port.isdigit():
            raise BadInput(f"--rpc: {part!r} is not host:port",
                           f"e.g. --rpc 192.168.1.10:{DEFAULT_PORT},192.168.1.11:{DEFAULT_PORT}")
        if not 1 <= int(port) <= 65535:
            raise BadInput(f"--rpc: port {port} of {part!r} is outside 1-65535",
                           f"`r1run worker` listens on {DEFAULT_PORT} unless told otherwise")
        ep = Endpoint(host, int(port))
        if ep in out:
            raise BadInput(f"--rpc lists {ep} twice", "name each worker once")
        out.append(ep)
    return out


def resolve(ep: Endpoint) -> str:
    """The IPv4 address llama.cpp will connect to; BadInput when the host name does not resolve."""
    try:
        infos = socket.getaddrinfo(ep.host, ep.port, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        raise BadInput(f"--rpc: host {ep.host!r} does not resolve ({why})",
                       "check the name, or give the worker's IP address") from None
    return str(infos[0][4][0])


def probe(ep: Endpoint, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when something accepts TCP connections at ep; otherwise why not, in words.

    A worker busy with another client still accepts (its listen backlog), so this says
    "the process is there", not "it is free".
    """
    try:
        with socket.create_connection((ep.host, ep.port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except socket.gaierror as exc:
        return f"host does not resolve ({exc.strerror})"
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            return "connection refused (nothing listens on that port)"
        return exc.strerror or str(exc)


def _down_hint(ep: Endpoint) -> str:
    return (f"start it on that machine with `r1run worker --port {ep.port}` (add --host ADDRESS to listen beyond "
            "loopback), or leave it out of --rpc")


def check_reachable(endpoints: Sequence[Endpoint], timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise WorkerError naming the first worker that does not accept a connection (hosts must resolve)."""
    for ep in endpoints:
        resolve(ep)
        why = probe(ep, timeout)
        if why is not None:
            raise WorkerError(f"RPC worker {ep} is down: {why}", _down_hint(ep), endpoint=str(ep))


def run_env() -> dict[str, str]:
    """The environment for a llama.cpp program that uses RPC workers.

    A failed RPC call aborts llama.cpp; without GGML_NO_BACKTRACE it first attaches gdb for a backtrace
    (about a second, and a page of noise in the log).
    """
    return {**os.environ, "GGML_NO_BACKTRACE": "1"}


def failure_line(lines: Iterable[str]) -> str | None:
    """The most telling RPC failure among llama.cpp's output lines (the abort line over `recv failed`)."""
    hits = [line.strip() for line in lines if _RPC_FAILURE.search(line)]
    if not hits:
        return None
    strong = [h for h in hits if "recv failed" not in h and "send failed" not in h]
    line = (strong or hits)[-1]
    # ".../ggml/src/ggml-rpc/ggml-rpc.cpp:566: Remote RPC ..." -> "ggml-rpc.cpp:566: Remote RPC ..."
    return re.sub(r"^\S*/(ggml-rpc\.cpp:)", r"\1", line)


def ask_devices(program: Path | str, endpoints: Sequence[Endpoint], timeout: float = ASK_TIMEOUT) -> list[WorkerDevice]:
    """Each worker's devices and memory, asked one worker at a time so a failure names its worker.

    Checks reachability first (a down worker makes llama.cpp abort with a backtrace). A worker that
    accepts but fails the handshake runs another llama.cpp release: its line is quoted.
    """

    check_reachable(endpoints)
    found: list[WorkerDevice] = []
    for ep in endpoints:
        res = proc.run([program, "--rpc", str(ep), "--list-devices"], timeout=timeout, env=run_env())
        devices = [g for g in parse_list_devices(res.stdout) if g.vendor == "rpc"]
        if res.returncode == -9 and not devices:
            raise WorkerError(f"RPC worker {ep} accepted the connection but did not answer within {timeout:g} s",
                              "a worker serves one client at a time: is another llama.cpp using it?",
                              endpoint=str(ep))
        if res.returncode != 0 or not devices:
            line = failure_line(res.stderr.splitlines()) or _last(res.stderr) or f"exit code {res.returncode}"
            if _HANDSHAKE.search(line) or "crashed" in line:
                raise WorkerError(f"RPC worker {ep} failed llama.cpp's RPC handshake: {line}",
                                  "it likely runs another llama.cpp release (or is not an RPC server): run the same "
                                  "release on every machine, e.g. `r1run worker` from the same r1run build",
                                  endpoint=str(ep))
            raise WorkerError(f"could not read the devices of RPC worker {ep}: {line}", _down_hint(ep),
                              endpoint=str(ep))
        for g in devices:
            found.append(WorkerDevice(str(ep), f"RPC{len(found)}", g.total_bytes, g.free_bytes))
    return found


def _last(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def explain_loss(lines: Iterable[str], endpoints: Sequence[Endpoint], log_path: Path | None = None,
                 exit_code: int | None = None) -> WorkerError | None:
    """After llama.cpp failed: a WorkerError naming the lost worker if its output shows an RPC failure.

    llama.cpp's abort line does not say which worker went away, so each one is probed: the worker
    that no longer accepts connections is named. Writing to a worker that just closed its connection
    can also kill llama.cpp with SIGPIPE before it prints anything: that exit counts as an RPC failure.
    """
    line = failure_line(lines)
    if line is None and exit_code == -signal.SIGPIPE:
        line = "llama.cpp was killed by SIGPIPE writing to a closed worker connection"
    if line is None:
        return None
    m = _NAMED.search(line)
    # Refused or unreachable is proof; a timeout is not (a live worker's listen backlog may be full).
    down = [(ep, why) for ep in endpoints if (why := probe(ep, 1.0)) is not None and not why.startswith("no answer")]
    named = m["ep"] if m else next((f"{ep}" for ep, _ in down), None)
    down.sort(key=lambda d: str(d[0]) != named)  # the worker llama.cpp named, if down, first
    where = f"; full log: {log_path}" if log_path else ""
    if down:
        ep, why = down[0]
        return WorkerError(f"lost RPC worker {ep}: {why}; llama.cpp stopped: {line}",
                           f"restart the worker (`r1run worker --port {ep.port}` there) or run without it{where}",
                           endpoint=named)
    if _HANDSHAKE.search(line):
        return WorkerError(f"an RPC worker failed llama.cpp's RPC handshake: {line}",
                           f"run the same llama.cpp release on every machine{where}", endpoint=named)
    return WorkerError(f"an RPC worker stopped answering; llama.cpp stopped: {line}",
                       f"check the workers and the network between them{where}", endpoint=named)


class Watch:
    """Guards a running llama.cpp that uses RPC workers: bounded time from a lost worker to a stopped run.

    Feed it llama.cpp's stderr lines. On an RPC failure line it gives llama.cpp EXIT_GRACE seconds to exit
    (it aborts by itself), then stops it. Every PROBE_EVERY seconds it also checks each worker still
    accepts connections, which catches a worker machine that vanished without closing the connection
    (no host route, refused): llama.cpp itself would wait for TCP to give up, about 15 minutes.
    """

    def __init__(self, endpoints: Sequence[Endpoint], stop: Callable[[], object], *,
                 grace: float = EXIT_GRACE, probe_every: float = PROBE_EVERY) -> None:
        self.endpoints = list(endpoints)
        self.line: str | None = None  # the RPC failure llama.cpp printed
        self._lines: list[str] = []
        self.down: tuple[Endpoint, str] | None = None  # a worker r1run found gone, and why
        self._stop = stop
        self._grace = grace
        self._every = probe_every
        self._failed = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="r1run-rpc-watch")
        self._thread.start()

    def feed(self, line: str) -> None:
        if _RPC_FAILURE.search(line):
            self._lines.append(line)
            self.line = failure_line(self._lines)  # `recv failed` first, the abort line right after
            self._failed.set()

    def _run(self) -> None:
        next_probe = time.monotonic() + self._every
        while not self._done.is_set():
            if self._failed.wait(timeout=0.2):
                if not self._done.wait(timeout=self._grace):
                    self._stop()
                return
            if time.monotonic() >= next_probe:
                for ep in self.endpoints:
                    why = probe(ep)
                    # A timeout is not proof: a busy worker's backlog may be full. Refused/unreachable is.
                    if why is not None and not why.startswith("no answer"):
                        self.down = (ep, why)
                        self._failed.set()
                        break
                next_probe = time.monotonic() + self._every

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=self._grace + 1)

    def error(self, lines: Iterable[str], log_path: Path | None = None,
              exit_code: int | None = None) -> WorkerError | None:
        """The WorkerError for this run, if a worker was lost (call after llama.cpp exited)."""
        if self.down is not None:
            ep, why = self.down
            where = f"; full log: {log_path}" if log_path else ""
            return WorkerError(f"lost RPC worker {ep}: {why}; r1run stopped llama.cpp",
                               f"restart the worker (`r1run worker --port {ep.port}` there) or run without it{where}",
                               endpoint=str(ep))
        lines = list(lines)
        if self.line is not None:
            lines.append(self.line)
        return explain_loss(lines, self.endpoints, log_path, exit_code)


def check_workers(rpc: Sequence[str], caps) -> list[WorkerDevice]:
    """Before a model loads: every worker resolves, accepts a connection and answers llama.cpp's handshake.

    Returns their devices (empty when this llama.cpp cannot list devices; then only reachability is checked).
    """
    endpoints = parse(",".join(rpc))
    program = (caps.path("server") or caps.path("completion")) if caps.list_devices and caps.rpc else None
    if program is None:
        check_reachable(endpoints)
        return []
    return ask_devices(program, endpoints)
