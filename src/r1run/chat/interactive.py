"""An interactive conversation through llama.cpp's chat program, on a pseudo-terminal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from r1run import proc
from r1run.home import log_path_for
from r1run.llama import args
from r1run.llama.args import RunSpec
from r1run.llama.probe import Capabilities

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][AB012]|\r")


@dataclass
class Result:
    exit_code: int
    summaries: list  # r1run.perf RunSummary, one per answered turn
    log_path: Path


def run(spec: RunSpec, caps: Capabilities, *, logs: Path) -> Result:
    """Chat until the user leaves (/exit, Ctrl-D, Ctrl-C); then sum up each turn's speed.

    llama-cli prints `[ Prompt: 51.9 t/s | Generation: 6.3 t/s ]` after each answer on its
    terminal; its stderr (load, offload and buffer lines) goes to the log file.
    """
    from r1run.perf.watcher import LogWatcher

    log_path = log_path_for(logs, "chat")
    captured: list[bytes] = []
    code = proc.run_pty(args.chat_argv(spec, caps), log_path=log_path, on_output=captured.append)
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
    return Result(code, summaries, log_path)
