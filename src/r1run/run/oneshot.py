"""One answer to one prompt: run llama.cpp, stream the answer, recover from out-of-memory, sum up."""

from __future__ import annotations

import codecs
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from r1run import proc, rpc
from r1run.errors import LlamaFailed, ModelNotLoaded
from r1run.home import log_path_for
from r1run.llama import args
from r1run.llama.args import RunSpec
from r1run.llama.probe import Capabilities
from r1run.perf.loadfail import LoadWatch
from r1run.perf.model import RunSummary
from r1run.perf.watcher import LogEvent, LogWatcher
from r1run.run.config import shrink
from r1run.think import Piece, ThinkSplitter

MAX_TRIES = 4


@dataclass(frozen=True)
class Attempt:
    argv: list[str]
    exit_code: int
    oom: str | None = None  # what ran out, as llama.cpp's line says
    offloaded: str | None = None  # "31/31" as llama.cpp reported
    change: str | None = None  # what r1run changed for the next try


@dataclass
class Answer:
    answer: str
    reasoning: str
    summary: RunSummary | None  # of the last attempt
    attempts: list[Attempt] = field(default_factory=list)
    log_path: Path | None = None
    interrupted: bool = False


@dataclass
class Events:
    on_piece: Callable[[Piece], None] = lambda piece: None
    on_status: Callable[[str], None] = lambda msg: None
    on_event: Callable[[LogEvent], None] = lambda ev: None
    on_started: Callable[[], None] = lambda: None  # llama.cpp is running (first try): say what was chosen


def answer(spec: RunSpec, caps: Capabilities, prompt_text: str, *, logs: Path, events: Events | None = None,
        retry: bool = True, starts_thinking: bool = False, max_tries: int = MAX_TRIES) -> Answer:
    """Run until an answer comes back, retrying smaller after an out-of-memory (unless retry is False).

    Raises LlamaFailed for any other failure, quoting llama.cpp's error line. A KeyboardInterrupt
    stops llama.cpp (SIGINT, then SIGTERM/SIGKILL) and returns the partial result with interrupted=True.
    """
    ev = events or Events()
    log_path = log_path_for(logs, "chat")
    attempts: list[Attempt] = []
    while True:
        argv = args.oneshot_argv(spec, caps, prompt_text)
        t = _Try(argv, spec.rpc, log_path, ev, starts_thinking,
                 cwd=logs if args.writes_trace_log(caps, caps.oneshot_role) else None)
        t.run(announce=not attempts)
        off = t.watcher.offload
        attempt = Attempt(argv, t.code, oom=t.watcher.oom.describe() if t.watcher.oom else None,
                          offloaded=f"{off.layers}/{off.total}" if off else None)
        summaries = t.watcher.finish(t.code)
        result = Answer("".join(t.splitter.answer), "".join(t.splitter.reasoning), summaries[-1] if summaries else None,
                        attempts, log_path, interrupted=t.interrupted)
        if t.interrupted or t.code == 0:
            attempts.append(attempt)
            return result
        tail = list(t.child.tail) if t.child is not None else []
        lost = t.watch.error(tail, log_path, t.code) if t.watch is not None else None
        if lost is not None:
            attempts.append(attempt)
            raise lost
        oom = t.watcher.oom
        if oom is None:
            attempts.append(attempt)
            errors = t.watcher.errors or [line for line in tail if line.strip()][-1:]
            quoted = errors[-1].strip() if errors else f"exit code {t.code}"
            message, hint = f"llama.cpp failed (exit {t.code}): {quoted}", f"full log: {log_path}"
            not_loaded = t.load.failure(t.code)
            if not_loaded is not None:
                raise ModelNotLoaded(message, hint, reason=not_loaded)
            raise LlamaFailed(message, hint)
        smaller = shrink(spec, off.layers if off else None) if retry and len(attempts) + 1 < max_tries else None
        if smaller is None:
            attempts.append(attempt)
            hint = ("r1run retries with less only without --no-retry" if not retry
                    else "try a smaller --ctx-size or --gpu-layers, or a smaller quant")
            raise LlamaFailed(f"{oom.describe()} (after {len(attempts)} tries)", f"{hint}; full log: {log_path}")
        spec, change = smaller
        attempts.append(Attempt(attempt.argv, t.code, attempt.oom, attempt.offloaded, change))
        ev.on_status(f"{oom.describe()}; retrying with {change}")


class _Try:
    """One run of llama.cpp: its log read live, its answer streamed, RPC workers watched."""

    def __init__(self, argv: list[str], workers: tuple[str, ...], log_path: Path, ev: Events,
                 starts_thinking: bool, cwd: Path | None = None) -> None:
        self.argv, self.log_path, self.ev, self.cwd = argv, log_path, ev, cwd
        self.watcher = LogWatcher(str(log_path))
        self.load = LoadWatch()
        self.splitter = ThinkSplitter(starts_thinking)
        # With RPC workers: a lost worker stops the run within a bounded time (r1run.rpc.Watch).
        self.watch = rpc.Watch(rpc.parse(",".join(workers)), self._stop_for_lost_worker) if workers else None
        self.workers = workers
        self.child: proc.Child | None = None
        self.code = -1
        self.interrupted = False

    def _on_line(self, line: str) -> None:
        self.load.feed(line)
        for e in self.watcher.feed(line):
            self.ev.on_event(e)
        if self.watch is not None:
            self.watch.feed(line)

    def _stop_for_lost_worker(self) -> None:
        if self.child is not None:
            self.child.stop(grace=2.0)

    def run(self, *, announce: bool) -> None:
        try:
            self.child = proc.Child(self.argv, log_path=self.log_path, on_line=self._on_line, stdout=subprocess.PIPE,
                                    env=rpc.run_env() if self.workers else None, cwd=self.cwd)
            if announce:
                self.ev.on_started()  # after the start, so printing costs llama.cpp no time
            try:
                _pump(self.child, self.splitter, self.ev, self._on_line)
                self.code = self.child.wait()
            except KeyboardInterrupt:
                self.interrupted = True
                self.code = self.child.stop()
            except BaseException:
                self.child.stop()  # never leave llama.cpp running behind an unexpected error
                raise
        finally:
            if self.watch is not None:
                self.watch.close()
        for piece in self.splitter.close():
            self.ev.on_piece(piece)


class LoadLines:
    """Keeps what ik_llama.cpp prints on stdout while it loads out of the answer (recorded from ik_llama.cpp 0.1.5's
    llama-cli). The lines it prints for an original-layout DeepSeek file are dropped:

        Computed blk.0.attn_k_b.weight as 128 x 256 x 2 of type q8_0 and stored in buffer CPU

    and a failed host allocation (under -rtr, with RAM capped) is a log line, handed to `on_log`; ik then aborts,
    and what follows on stdout (its backtrace) is dropped too:

        ggml_aligned_malloc: insufficient memory (attempted to allocate  28.27 MB)

    Text passes through unchanged from the first character that cannot start such a line.
    """

    PREFIX = "Computed blk."
    LINE = re.compile(r"^Computed blk\.\S+ as .* stored in buffer \S+\s*$")
    ABORT = "ggml_aligned_malloc: "

    def __init__(self, on_log: Callable[[str], None] = lambda line: None) -> None:
        self.buf = ""
        self.done = False
        self.aborted = False
        self.on_log = on_log

    def feed(self, text: str) -> str:
        if self.aborted:
            return ""
        if self.done:
            return text
        self.buf += text
        while True:
            newline = self.buf.find("\n")
            if self._starts(self.ABORT) and len(self.buf) >= len(self.ABORT):
                if newline < 0:
                    return ""  # wait for the rest of the line
                self.on_log(self.buf[:newline])
                self.buf, self.aborted = "", True
                return ""
            if self._starts(self.ABORT):
                return ""  # too short yet to tell
            if not self._starts(self.PREFIX) or (newline >= 0 and not self.LINE.match(self.buf[:newline])):
                return self.close()
            if newline < 0:
                return ""  # wait for the rest of the line
            self.buf = self.buf[newline + 1:]

    def _starts(self, prefix: str) -> bool:
        head = self.buf[: len(prefix)]
        return head == prefix[: len(head)]

    def close(self) -> str:
        rest, self.buf, self.done = ("" if self.aborted else self.buf), "", True
        return rest


# llama-completion prints this after the answer when the model ends it (an end-of-generation token).
END_MARKER = " [end of text]"


def _pump(child: proc.Child, splitter: ThinkSplitter, ev: Events, on_log: Callable[[str], None]) -> None:
    """Stream the child's stdout as it comes, decoded incrementally (a character may span reads).

    The last few characters are held back until the end so llama-completion's ` [end of text]`
    marker can be dropped from the answer.
    """
    assert child.proc.stdout is not None
    fd = child.proc.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    load_lines = LoadLines(on_log)
    held = ""
    hold = len(END_MARKER) + 8  # the marker is followed by a few newlines
    while True:
        chunk = os.read(fd, 4096)
        new = load_lines.feed(decoder.decode(chunk, final=not chunk))
        text = held + (new if chunk else new + load_lines.close())
        if not chunk:
            break
        held = text[-hold:]
        for piece in splitter.feed(text[:-hold]):
            ev.on_piece(piece)
    text = text.rstrip("\n")
    if text.endswith(END_MARKER):
        text = text[: -len(END_MARKER)]
    for piece in splitter.feed(text):
        ev.on_piece(piece)
