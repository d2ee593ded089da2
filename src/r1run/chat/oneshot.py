"""One answer to one prompt: run llama.cpp, stream the answer, recover from out-of-memory, sum up."""

from __future__ import annotations

import codecs
import os
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from r1run import proc, rpc
from r1run.chat import early
from r1run.errors import R1runError
from r1run.home import log_path_for
from r1run.llama import args
from r1run.llama.args import RunSpec
from r1run.llama.probe import Capabilities
from r1run.think import Piece, ThinkSplitter

MAX_TRIES = 4


class LlamaFailed(R1runError):
    """llama.cpp exited with an error; the message quotes its own error line."""


@dataclass(frozen=True)
class Attempt:
    argv: list[str]
    exit_code: int
    oom: str | None = None  # what ran out, as llama.cpp's line says
    offloaded: str | None = None  # "31/31" as llama.cpp reported
    change: str | None = None  # what r1run changed for the next try


@dataclass
class Result:
    answer: str
    reasoning: str
    summary: object | None  # r1run.perf RunSummary of the last attempt
    attempts: list[Attempt] = field(default_factory=list)
    log_path: Path | None = None
    interrupted: bool = False
    started_early: bool = False  # llama.cpp was started from the last run's memo (r1run.chat.early)


@dataclass
class Events:
    on_piece: Callable[[Piece], None] = lambda piece: None
    on_status: Callable[[str], None] = lambda msg: None
    on_event: Callable[[object], None] = lambda ev: None  # r1run.perf LogEvent
    on_started: Callable[[], None] = lambda: None  # llama.cpp is running (first try): say what was chosen


def shrink(spec: RunSpec, offloaded: int | None) -> tuple[RunSpec, str] | None:
    """A smaller configuration after an out-of-memory: fewer GPU layers first, then a smaller context."""
    current = spec.placement.gpu_layers
    if current is None or (offloaded is not None and offloaded < current):
        current = offloaded  # -ngl 99 on a 31-layer model offloads 31: halve what really went
    if current is not None and current > 0:
        fewer = current // 2 if current > 4 else current - 1
        return spec.with_placement(replace(spec.placement, gpu_layers=fewer)), f"GPU layers {current} -> {fewer}"
    if spec.ctx > 512:
        smaller = max(512, spec.ctx // 2)
        return spec.with_ctx(smaller), f"context {spec.ctx} -> {smaller}"
    return None


def run(spec: RunSpec, caps: Capabilities, prompt_text: str, *, logs: Path, events: Events | None = None,
        retry: bool = True, starts_thinking: bool = False, max_tries: int = MAX_TRIES) -> Result:
    """Run until an answer comes back, retrying smaller after an out-of-memory (unless retry is False).

    Raises LlamaFailed for any other failure, quoting llama.cpp's error line. A KeyboardInterrupt
    stops llama.cpp (SIGINT, then SIGTERM/SIGKILL) and returns the partial result with interrupted=True.
    """
    from r1run.perf.watcher import LogWatcher

    ev = events or Events()
    log_path = log_path_for(logs, "chat")
    attempts: list[Attempt] = []
    started_early = False
    while True:
        argv = args.oneshot_argv(spec, caps, prompt_text)
        child = early.claim(argv) if not attempts else None  # llama.cpp started before r1run had decided
        if child is not None:
            log_path, started_early = child.log_path, True
        watcher = LogWatcher(str(log_path))

        def on_line(line: str) -> None:
            for e in watcher.feed(line):
                ev.on_event(e)
            if watch is not None:
                watch.feed(line)

        splitter = ThinkSplitter(starts_thinking)
        # With RPC workers: a lost worker stops the run within a bounded time (r1run.rpc.Watch).
        watch = rpc.Watch(rpc.parse(",".join(spec.rpc)), lambda: child.stop(grace=2.0)) if spec.rpc else None
        if child is not None:
            child.attach(on_line)
        else:
            try:
                child = proc.Child(argv, log_path=log_path, on_line=on_line, stdout=subprocess.PIPE,
                                   env=rpc.run_env() if spec.rpc else None)
            except BaseException:
                if watch is not None:
                    watch.close()
                raise
        interrupted = False
        try:
            if len(attempts) == 0:
                ev.on_started()  # after the start, so printing costs llama.cpp no time
            _pump(child, splitter, ev)
            code = child.wait()
        except KeyboardInterrupt:
            interrupted = True
            code = child.stop()
        except BaseException:
            child.stop()  # never leave llama.cpp running behind an unexpected error
            raise
        finally:
            if watch is not None:
                watch.close()
        for piece in splitter.close():
            ev.on_piece(piece)
        summaries = watcher.finish(code)
        summary = summaries[-1] if summaries else None
        off = watcher.offload
        attempt = Attempt(argv, code, oom=watcher.oom.describe() if watcher.oom else None,
                          offloaded=f"{off.layers}/{off.total}" if off else None)
        result = Result("".join(splitter.answer), "".join(splitter.reasoning), summary, attempts, log_path,
                        started_early=started_early)
        if interrupted:
            attempts.append(attempt)
            result.interrupted = True
            return result
        if code == 0:
            attempts.append(attempt)
            return result
        lost = watch.error(child.tail, log_path, code) if watch is not None else None
        if lost is not None:
            attempts.append(attempt)
            raise lost
        oom = watcher.oom
        if oom is None:
            attempts.append(attempt)
            errors = watcher.errors or [line for line in child.tail if line.strip()][-1:]
            quoted = errors[-1].strip() if errors else f"exit code {code}"
            raise LlamaFailed(f"llama.cpp failed (exit {code}): {quoted}", f"full log: {log_path}")
        smaller = shrink(spec, off.layers if off else None) if retry and len(attempts) + 1 < max_tries else None
        if smaller is None:
            attempts.append(attempt)
            hint = ("r1run retries with less only without --no-retry" if not retry
                    else "try a smaller --ctx-size or --gpu-layers, or a smaller quant")
            raise LlamaFailed(f"{oom.describe()} (after {len(attempts)} tries)", f"{hint}; full log: {log_path}")
        spec, change = smaller
        attempts.append(Attempt(attempt.argv, code, attempt.oom, attempt.offloaded, change))
        ev.on_status(f"{oom.describe()}; retrying with {change}")


# llama-completion prints this after the answer when the model ends it (an end-of-generation token).
END_MARKER = " [end of text]"


def _pump(child: proc.Child, splitter: ThinkSplitter, ev: Events) -> None:
    """Stream the child's stdout as it comes, decoded incrementally (a character may span reads).

    The last few characters are held back until the end so llama-completion's ` [end of text]`
    marker can be dropped from the answer.
    """
    assert child.proc.stdout is not None
    fd = child.proc.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    held = ""
    hold = len(END_MARKER) + 8  # the marker is followed by a few newlines
    while True:
        chunk = os.read(fd, 4096)
        text = held + decoder.decode(chunk, final=not chunk)
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
