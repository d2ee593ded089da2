"""`r1run worker`: the build's RPC server (ggml-rpc-server, or rpc-server in 2025 releases) in the foreground.

What the RPC server of b11434 prints, measured. On stdout (block-buffered into a pipe: it arrives when the
first client connects, since the server flushes after each "Accepted client connection"):

    Starting RPC server v7.0.0
      endpoint       : 127.0.0.1:50052
      local cache    : n/a
    Devices:
      CPU: AMD EPYC (24105 MiB, 24105 MiB free)
      transport      : TCP
    Accepted client connection
    Client connection closed

On stderr: `Failed to create server socket` when the port is taken (and it exits with code 0), and
`Expected HELLO command, update client` when a client of an older release connects. The early-2025
rpc-server prints `Starting RPC server on 127.0.0.1:50052, backend memory: 24105 MB` and takes only
-H, -p and -m (backend memory in MB).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from r1run import proc, rpc
from r1run.errors import BadInput, ToolMissing
from r1run.llama.probe import Capabilities
from r1run.net import check_listen, is_loopback

START_TIMEOUT = 30.0  # seconds for the server to listen (it enumerates devices first; a GPU may take a while)
_DEVICE = re.compile(r"^\s+(?P<name>[A-Za-z][\w]*):\s+(?P<desc>.*?)"
                     r"\s+\((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)\s*$")
# Worker-side lines worth showing the user as they happen.
_MISMATCH = re.compile(r"Expected HELLO command|Unknown command|client needs upgrade|version mismatch")


@dataclass(frozen=True)
class WorkerSpec:
    host: str = "127.0.0.1"
    port: int = rpc.DEFAULT_PORT
    threads: int | None = None
    devices: tuple[str, ...] = ()
    cache: bool = False
    mem_mib: int | None = None  # early-2025 servers: backend memory size (-m)


@dataclass(frozen=True)
class BannerDevice:
    """A device line of the server's own start-up banner: `  CPU: AMD EPYC (24105 MiB, 24105 MiB free)`."""

    name: str
    description: str
    total_bytes: int
    free_bytes: int


def exposure_warning(host: str) -> str | None:
    """The warning for a worker reachable from the network (llama.cpp's RPC has no authentication)."""
    if is_loopback(host):
        return None
    return (f"the worker listens on {host}: llama.cpp's RPC has NO authentication and no encryption - anyone who "
            "can reach this port can use this machine's memory and run code on its devices. Use it only on a "
            "trusted network (or behind a firewall / VPN).")


def takes_threads(caps: Capabilities) -> bool:
    probe = caps.programs.get("rpc-server")
    return probe is not None and probe.has("-t", "--threads")


def argv(spec: WorkerSpec, caps: Capabilities) -> list[str]:
    """The RPC server's command line, with only the flags this release's server takes."""
    program = caps.rpc_server
    if program is None:
        raise ToolMissing("this llama.cpp has no RPC server (ggml-rpc-server, or rpc-server before mid-2025)",
                          "rebuild with `r1run build --force` (r1run builds it with -DGGML_RPC=ON)")
    probe = caps.programs["rpc-server"]
    out = [program, "-H", spec.host, "-p", str(spec.port)]
    if spec.threads is not None:
        if not takes_threads(caps):
            raise BadInput("this llama.cpp's RPC server has no -t/--threads", "leave out --threads")
        out += ["-t", str(spec.threads)]
    if spec.devices:
        if not probe.has("-d", "--device"):
            raise BadInput("this llama.cpp's RPC server cannot pick devices (no -d/--device)",
                           "update llama.cpp with `r1run build --force`, or leave out --device")
        out += ["-d", ",".join(spec.devices)]
    if spec.cache:
        if not probe.has("-c", "--cache"):
            raise BadInput("this llama.cpp's RPC server has no local tensor cache (-c/--cache)",
                           "update llama.cpp with `r1run build --force`, or leave out --cache")
        out += ["-c"]
    if spec.mem_mib is not None:
        if not probe.has("-m", "--mem"):
            raise BadInput("this llama.cpp's RPC server cannot limit its memory (its -m/--mem went away in 2025)",
                           "the main machine can limit what it puts there instead: `r1run plan --rpc ... "
                           "--device-memory HOST:PORT=SIZE`")
        out += ["-m", str(spec.mem_mib)]
    return out


def check_port(host: str, port: int) -> None:
    """BadInput, before starting anything, when host:port cannot be listened on (in use, not ours)."""
    check_listen(host, port, in_use_hint=f"stop that program (another worker?), or choose another port: "
                                         f"r1run worker --port {port + 1}")


@dataclass
class Worker:
    """A running RPC server: its process, what it printed, and the address clients use."""

    child: proc.Child
    spec: WorkerSpec
    log_path: Path
    banner: list[BannerDevice] = field(default_factory=list)
    stdout_tail: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> rpc.Endpoint:
        """Where a client on this machine reaches it (0.0.0.0 listens on loopback too)."""
        host = "127.0.0.1" if self.spec.host in ("0.0.0.0", "localhost") else self.spec.host
        return rpc.Endpoint(host, self.spec.port)

    def stop(self) -> int:
        return self.child.stop()

    def last_error(self) -> str | None:
        lines = [line.strip() for line in list(self.child.tail) + self.stdout_tail if line.strip()]
        errors = [line for line in lines if "fail" in line.lower() or "error" in line.lower()]
        found = errors or lines
        return found[-1] if found else None


def start(spec: WorkerSpec, caps: Capabilities, *, log_path: Path,
          on_line: Callable[[str, str], None] | None = None) -> Worker:
    """Start the RPC server; `on_line(stream, line)` sees its stdout and stderr lines as they come."""
    args = argv(spec, caps)

    def on_err(line: str) -> None:
        if on_line is not None:
            on_line("stderr", line)

    child = proc.Child(args, log_path=log_path, on_line=on_err, stdout=subprocess.PIPE)
    worker = Worker(child, spec, log_path)

    def read_stdout() -> None:
        assert child.proc.stdout is not None
        for raw in child.proc.stdout:
            line = raw.rstrip("\n")
            worker.stdout_tail = (worker.stdout_tail + [line])[-30:]
            m = _DEVICE.match(line)
            if m:
                mib = 1 << 20
                worker.banner.append(BannerDevice(m["name"], m["desc"], int(m["total"]) * mib, int(m["free"]) * mib))
            if on_line is not None:
                on_line("stdout", line)

    threading.Thread(target=read_stdout, daemon=True, name="r1run-worker-stdout").start()
    return worker


def wait_listening(worker: Worker, timeout: float = START_TIMEOUT) -> float:
    """Seconds until the server accepts connections; WorkerError quoting it if it stops first."""
    t0 = time.monotonic()
    ep = worker.endpoint
    while True:
        code = worker.child.poll()
        if code is not None:
            worker.child.wait()
            line = worker.last_error() or f"exit code {code}"
            hint = (f"is port {ep.port} taken? choose another with --port" if "socket" in line
                    else f"full log: {worker.log_path}")
            raise rpc.WorkerError(f"the RPC server stopped before listening (exit {code}): {line}", hint)
        if rpc.probe(ep, 0.5) is None:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            worker.stop()
            raise rpc.WorkerError(f"the RPC server was not listening on {ep} after {timeout:.0f} s",
                                  f"full log: {worker.log_path}")
        time.sleep(0.1)


def describe_line(stream: str, line: str) -> tuple[str, str] | None:
    """What to tell the user about one line of the server: ("status"|"warn", message), or None."""
    text = line.strip()
    if not text:
        return None
    if text == "Accepted client connection" or text.startswith("Accepted client connection,"):
        return "status", "a client connected"
    if text == "Client connection closed":
        return "status", "the client disconnected"
    if _MISMATCH.search(text):
        return "warn", f"a client of another llama.cpp release tried to connect: {text}"
    if stream == "stderr" and ("error" in text.lower() or "fail" in text.lower()):
        return "warn", text
    return None
