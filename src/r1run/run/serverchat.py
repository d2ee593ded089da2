"""An interactive conversation that r1run drives itself, through llama-server on loopback.

For a llama-cli that cannot hold r1run's conversation: one with `-cnv` but neither `-st` nor `-no-cnv` (2024's
design, kept by ik_llama.cpp 0.1.5). That program knows no `/exit`, does not end on Ctrl-D, and prints no
per-turn speed line. So r1run starts llama-server (127.0.0.1, a free port, a one-time API key), reads each line
itself (/exit, Ctrl-D and Ctrl-C at the prompt end the conversation; Ctrl-C during an answer stops only that
answer), streams the answer from `/v1/chat/completions`, and prints the speed from the last chunk's `timings`
(r1run.perf.server quotes them) the way mainline's llama-cli prints it:

    [ Prompt: 9.5 t/s | Generation: 23.9 t/s ]
"""

from __future__ import annotations

import json
import secrets
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from r1run.llama.args import RunSpec
from r1run.llama.probe import Capabilities
from r1run.perf import server as server_timings
from r1run.perf.model import RunSummary
from r1run.run import serve
from r1run.think import Piece

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
             system_prompt: str | None = None) -> Conversation:
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
            answer, timings = _turn(srv.url, key, messages, spec.n_predict, term)
            messages.append({"role": "assistant", "content": answer})
            if timings is not None:
                summary = RunSummary(source=str(srv.log_path), index=len(result.summaries) + 1, format="server_json",
                                     program="llama-server", status="ok",
                                     load_ms=load_s * 1000 if not result.summaries else None,
                                     **server_timings.phases(timings))
                result.summaries.append(summary)
                term.on_line(speed_line(summary))
        return result
    finally:
        srv.stop()


def speed_line(s: RunSummary) -> str:
    """The line mainline's llama-cli prints after each answer."""
    def tps(p: Any) -> str:
        return f"{p.tps:.1f}" if p is not None and p.tps is not None else "-"
    return f"[ Prompt: {tps(s.prompt)} t/s | Generation: {tps(s.gen)} t/s ]"


def _turn(url: str, key: str, messages: list[dict[str, str]], n_predict: int | None,
          term: Terminal) -> tuple[str, dict[str, Any] | None]:
    """One streamed answer: (its text, the chunk with the timings). Ctrl-C closes the stream, which stops the
    server's generation, and keeps what came."""
    body: dict[str, Any] = {"messages": messages, "stream": True}
    if n_predict is not None:
        body["max_tokens"] = n_predict
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    answer: list[str] = []
    timings: dict[str, Any] | None = None
    thinking = False
    try:
        with urllib.request.urlopen(req, timeout=None) as resp:
            for raw in resp:
                line = raw.decode("utf-8", errors="replace").strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[len("data: "):])
                if server_timings.has_timings(chunk):
                    timings = chunk
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("reasoning_content"):
                        thinking = True
                        term.on_piece(Piece(thinking=True, text=delta["reasoning_content"]))
                    if delta.get("content"):
                        if thinking:
                            thinking = False
                        answer.append(delta["content"])
                        term.on_piece(Piece(thinking=False, text=delta["content"]))
    except KeyboardInterrupt:  # closing the connection stops llama-server's answer; no timings come
        term.on_piece(Piece(thinking=False, text="\n"))
        term.on_line("[ stopped ]")
        return "".join(answer), None
    term.on_piece(Piece(thinking=False, text="\n"))
    return "".join(answer), timings


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
