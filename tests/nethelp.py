"""Loopback helpers for tests: a free port, and an RPC worker whose memory is capped for real."""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capped_worker(llama_bin: Path, port: int, kib: int) -> subprocess.Popen:
    """A raw ggml-rpc-server whose address space is capped (RLIMIT_AS): real allocations on it fail, as on a
    GPU that is out of memory."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, kib * 1024))

    worker = subprocess.Popen([str(llama_bin / "ggml-rpc-server"), "-p", str(port), "-H", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=cap)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return worker
        time.sleep(0.1)
    worker.kill()
    raise AssertionError("RPC worker did not start")
