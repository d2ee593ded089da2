"""An interactive conversation through llama.cpp's chat program, on a pseudo-terminal."""

from __future__ import annotations

import re
import signal
import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from r1run import proc, rpc
from r1run.home import log_path_for
from r1run.llama import args
from r1run.llama.args import RunSpec
from r1run.llama.probe import Capabilities
from r1run.perf.watcher import LogWatcher

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB012]|\r")


@dataclass
class Conversation:
    exit_code: int
    summaries: list  # r1run.perf RunSummary, one per answered turn
    log_path: Path


def converse(spec: RunSpec, caps: Capabilities, *, logs: Path) -> Conversation:
    """Chat until the user leaves (/exit, Ctrl-D, Ctrl-C); then sum up each turn's speed.

    llama-cli prints `[ Prompt: 51.9 t/s | Generation: 6.3 t/s ]` after each answer on its
    terminal; its stderr (load, offload and buffer lines) goes to the log file. With RPC workers,
    a lost worker stops the conversation within a bounded time and raises r1run.rpc.WorkerError,
    as in a one-shot answer.
    """

    log_path = log_path_for(logs, "chat")
    captured: list[bytes] = []
    tail: deque[str] = deque(maxlen=60)
    running: list[subprocess.Popen] = []

    def stop() -> None:  # SIGINT would only interrupt llama-cli's answer, not end it
        for p in running:
            proc.stop(p, grace=2.0, first=signal.SIGTERM)

    watch = rpc.Watch(rpc.parse(",".join(spec.rpc)), stop) if spec.rpc else None

    def on_line(line: str) -> None:
        tail.append(line)
        if watch is not None:
            watch.feed(line)

    try:
        code = proc.run_pty(args.chat_argv(spec, caps), log_path=log_path, on_output=captured.append,
                            on_line=on_line if watch is not None else None, on_start=running.append,
                            env=rpc.run_env() if spec.rpc else None)
    finally:
        if watch is not None:
            watch.close()
    lost = watch.error(tail, log_path, code) if watch is not None and code != 0 else None
    if lost is not None:
        raise lost
    watcher = LogWatcher(str(log_path))
    try:
        watcher.feed_text(log_path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        pass
    text = _ANSI.sub("", b"".join(captured).decode("utf-8", errors="replace"))
    for line in text.split("\n"):
        if "t/s" in line:
            watcher.feed(line.strip())
    summaries = [s for s in watcher.finish(code) if s.measured]
    return Conversation(code, summaries, log_path)
