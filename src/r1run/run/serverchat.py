"""An interactive conversation that r1run drives itself, through llama-server on loopback.

For a llama-cli that cannot hold r1run's conversation: one with `-cnv` but neither `-st` nor `-no-cnv` (2024's
design, kept by ik_llama.cpp 0.1.5). That program knows no `/exit`, does not end on Ctrl-D, and prints no
per-turn speed line. So r1run starts llama-server (127.0.0.1, a free port, a one-time API key), reads each line
itself (/exit, Ctrl-D and Ctrl-C at the prompt end the conversation; Ctrl-C during an answer stops only that
answer), streams the answer from `/v1/chat/completions`, and prints the speed from the last chunk's `timings`
(r1run.perf.server quotes them) the way mainline's llama-cli prints it:

    [ Prompt: 9.5 t/s | Generation: 23.9 t/s ]

An answer stopped with Ctrl-C gets no timings from the server (the stream is closed): its speed is r1run's own
clock over the pieces that came, one token each, said so (`[ stopped | Generation: about 41.2 t/s, 57 tokens by
r1run's clock ]`). When the server dropped the conversation's oldest tokens to make room (ik_llama.cpp shifts its
context and truncates a prompt too long, by default), r1run says so after that answer and at the end.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from r1run.llama.args import RunSpec
from r1run.llama.probe import Capabilities
from r1run.perf import server as server_timings
from r1run.perf.model import Phase, RunSummary
from r1run.run import serve
from r1run.think import Piece, ThinkSplitter

EXIT_COMMANDS = ("/exit", "/quit", "/bye")


def needed(caps: Capabilities) -> bool:
    """Whether chat goes through r1run's own loop: the llama-cli answers in conversation only with `-cnv` and
    has neither `-st` nor `-no-cnv` (probed), and there is a llama-server to talk to."""
    chat = caps.programs.get("chat")
    return (chat is not None and chat.has("-cnv", "--conversation") and not chat.has("-st", "--single-turn")
            and not chat.has("-no-cnv", "--no-conversation") and "server" in caps.programs)


@dataclass
class Terminal:
    """How the conversation meets the user (the CLI supplies these)."""

    read_line: Callable[[str], str]  # input(): EOFError on Ctrl-D, KeyboardInterrupt on Ctrl-C
    on_piece: Callable[[Piece], None]
    on_line: Callable[[str], None]  # a line of r1run's own (the speed after each answer)
    on_ready: Callable[[float], None] = lambda seconds: None


@dataclass
class Conversation:
    exit_code: int  # 0 after /exit or Ctrl-D, 130 after Ctrl-C at the prompt
    summaries: list[RunSummary] = field(default_factory=list)
    log_path: Path = Path()


def converse(spec: RunSpec, caps: Capabilities, *, logs: Path, run_dir: Path, size: int, term: Terminal,
             system_prompt: str | None = None, starts_thinking: bool = False) -> Conversation:
    """Start llama-server, hold the conversation, stop the server (always)."""
    key = secrets.token_hex(16)
    srv = serve.start(spec, caps, host="127.0.0.1", port=_free_port(), api_key=key, run_dir=run_dir, logs=logs,
                      own_session=True, quiet=True)  # Ctrl-C at the terminal is r1run's to read, not the server's
    try:
        load_s = serve.wait_ready(srv, serve.load_timeout(size))
        srv.forget_key()
        term.on_ready(load_s)
        result = Conversation(0, [], srv.log_path)
        messages: list[dict[str, str]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
        while True:
            try:
                text = term.read_line("> ").strip()
            except EOFError:
                break
            except KeyboardInterrupt:
                result.exit_code = 130
                break
            if text in EXIT_COMMANDS:
                break
            if not text:
                continue
            messages.append({"role": "user", "content": text})
            reply = _turn(srv.url, key, messages, spec.n_predict, term, starts_thinking)
            if reply.refused is not None:  # nothing was said: the turn is not part of the conversation
                messages.pop()
                term.on_line(f"[ llama-server refused this message: {reply.refused} ]")
                continue
            messages.append({"role": "assistant", "content": reply.text})
            summary = _summary(reply, srv.log_path, len(result.summaries) + 1,
                               load_s if not result.summaries else None,
                               lambda ctx: _count_tokens(srv.url, key, messages[:-1], ctx),  # the prompt only
                               spec.n_predict)
            if summary is None:
                term.on_line("[ stopped ]" if reply.stopped else "[ llama-server sent no timings for this answer ]")
                continue
            result.summaries.append(summary)
            term.on_line(speed_line(summary))
            ctx = (reply.timings or {}).get("timings", {}).get("n_ctx") or spec.ctx
            if summary.context_dropped:
                term.on_line(f"[ the context is full ({ctx} tokens): llama-server dropped the conversation's oldest "
                             "tokens to go on, and the model no longer sees them ]")
            elif summary.context_full:
                term.on_line(f"[ the context is full ({ctx} tokens): this answer stopped there ]")
        return result
    finally:
        srv.stop()


def speed_line(s: RunSummary) -> str:
    """The line mainline's llama-cli prints after each answer; an answer stopped by Ctrl-C says whose clock."""
    def tps(p: Any) -> str:
        return f"{p.tps:.1f}" if p is not None and p.tps is not None else "-"
    if s.format == CLOCK:
        if s.gen is None or s.gen.tps is None:
            return "[ stopped ]"
        return f"[ stopped | Generation: about {s.gen.tps:.1f} t/s, {s.gen.tokens} tokens by r1run's clock ]"
    return f"[ Prompt: {tps(s.prompt)} t/s | Generation: {tps(s.gen)} t/s ]"


CLOCK = "r1run_clock"  # RunSummary.format of an answer timed by r1run itself (stopped: the server sent no timings)


@dataclass
class Reply:
    """One streamed answer as it came."""

    text: str
    timings: dict[str, Any] | None = None  # the last chunk, with the server's timings; None when stopped
    prompt_tokens: int | None = None       # the prompt the server computed (`usage`), when it says
    pieces: int = 0                        # streamed pieces of text: one token each
    first_s: float | None = None           # time.monotonic() of the first and the last piece
    last_s: float | None = None
    refused: str | None = None             # the server's error message when it refused the request
    stopped: bool = False                  # Ctrl-C closed the stream
    finish_reason: str | None = None       # the last choice's: "stop", or "length" (max_tokens, or a full context)


def _summary(reply: Reply, log: Path, index: int, load_s: float | None,
             conversation_tokens: Callable[[int | None], int | None], n_predict: int | None = None
             ) -> RunSummary | None:
    """The speed row of one answer: the server's timings, or r1run's clock when it was stopped (None: no piece)."""
    if reply.timings is not None:
        n_ctx = reply.timings.get("timings", {}).get("n_ctx")
        dropped = server_timings.dropped_tokens(reply.timings, reply.prompt_tokens,
                                                conversation_tokens(n_ctx if isinstance(n_ctx, int) else None))
        phases = server_timings.phases(reply.timings)
        made = phases["gen"].tokens
        # "length" before max_tokens: the context filled up and the server (mainline: no context shift) stopped
        full = reply.finish_reason == "length" and not dropped and (n_predict is None or n_predict < 0
                                                                     or (made is not None and made < n_predict))
        return RunSummary(source=str(log), index=index, format="server_json", program="llama-server", status="ok",
                          load_ms=load_s * 1000 if load_s is not None else None, context_dropped=dropped,
                          context_full=full, **phases)
    if not reply.stopped or reply.first_s is None or reply.last_s is None:
        return None
    ms = (reply.last_s - reply.first_s) * 1000
    tokens = reply.pieces - 1  # the clock starts at the first piece: it times the ones after it
    gen = Phase(ms=ms, tokens=tokens, ms_per_token=ms / tokens if tokens > 0 else None,
                tps=tokens / ms * 1000 if tokens > 0 and ms > 0 else None)
    return RunSummary(source=str(log), index=index, format=CLOCK, program="llama-server", status="incomplete",
                      load_ms=load_s * 1000 if load_s is not None else None, gen=gen)


def _turn(url: str, key: str, messages: list[dict[str, str]], n_predict: int | None, term: Terminal,
          starts_thinking: bool = False) -> Reply:
    """One streamed answer. Ctrl-C closes the stream, which stops the server's generation, and keeps what came."""
    body: dict[str, Any] = {"messages": messages, "stream": True}
    if n_predict is not None:
        body["max_tokens"] = n_predict
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    answer: list[str] = []
    reply = Reply("")
    # a server that parses no reasoning (ik_llama.cpp's default, `--reasoning-format none`, and any server while it
    # streams) sends R1's <think>...</think> as content: r1run splits it, as it does llama-cli's output
    splitter = ThinkSplitter(starts_thinking)
    try:
        with urllib.request.urlopen(req, timeout=None) as resp:
            for raw in resp:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[len("data: "):])
                if server_timings.has_timings(chunk):
                    reply.timings = chunk
                usage = chunk.get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                    reply.prompt_tokens = usage["prompt_tokens"]
                for choice in chunk.get("choices") or []:
                    reply.finish_reason = choice.get("finish_reason") or reply.finish_reason
                    delta = choice.get("delta") or {}
                    reasoning, content = delta.get("reasoning_content"), delta.get("content")
                    if not (reasoning or content):
                        continue
                    reply.last_s = time.monotonic()
                    reply.first_s = reply.first_s or reply.last_s
                    reply.pieces += 1
                    pieces = [Piece(thinking=True, text=reasoning)] if reasoning else []
                    pieces += splitter.feed(content) if content else []
                    _show(pieces, answer, term)
    except urllib.error.HTTPError as exc:  # e.g. mainline's "the request exceeds the available context size"
        return Reply("", refused=_error_message(exc))
    except KeyboardInterrupt:  # closing the connection stops llama-server's answer; no timings come
        reply.timings, reply.stopped = None, True
    _show(splitter.close(), answer, term)
    term.on_piece(Piece(thinking=False, text="\n"))
    reply.text = "".join(answer)
    return reply


def _show(pieces: list[Piece], answer: list[str], term: Terminal) -> None:
    """Show pieces; the answer's (not its reasoning) become the conversation's assistant message."""
    for piece in pieces:
        if not piece.thinking:
            answer.append(piece.text)
        term.on_piece(piece)


def _error_message(exc: urllib.error.HTTPError) -> str:
    """llama-server's own words from an error answer (`{"error": {"message": ...}}`), else the HTTP status."""
    try:
        data = json.loads(exc.read().decode("utf-8", errors="replace"))
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
    except (ValueError, OSError, AttributeError):
        message = None
    return str(message) if message else f"HTTP {exc.code} {exc.reason}"


TEMPLATE_ROOM = 32  # tokens a chat template may add per message, and twice more for its start and the reply's


def _count_tokens(url: str, key: str, messages: list[dict[str, str]], n_ctx: int | None = None) -> int | None:
    """The conversation's contents tokenized by the server (`/tokenize`): a lower bound of its prompt.

    A server truncates a prompt only when it outgrows the context. Text never has more tokens than bytes (each
    token spells at least one; a tokenizer may add one space in front), and a chat template adds a few tokens a
    message (role markers, a default system prompt: TEMPLATE_ROOM is room for them). While the contents and that
    room fit in `n_ctx`, nothing can have been truncated, and None (not counted) costs no request."""
    text = "\n".join(m["content"] for m in messages)
    if n_ctx is not None and len(text.encode()) + 1 + TEMPLATE_ROOM * (len(messages) + 2) < n_ctx:
        return None
    req = urllib.request.Request(f"{url}/tokenize", data=json.dumps({"content": text}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            tokens = json.loads(resp.read()).get("tokens")
    except (OSError, ValueError, AttributeError):
        return None
    return len(tokens) if isinstance(tokens, list) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
