"""r1run's own conversation loop (`run.serverchat`) against llama.cpp's real llama-server: what it says when the
server refuses a message or the context fills up. The same loop on ik_llama.cpp's server, through `r1run chat` on
a terminal: tests/test_ik_real.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1run.home import Home
from r1run.llama import discover
from r1run.llama.args import RunSpec
from r1run.run import serverchat

pytestmark = pytest.mark.llama


def _converse(home: Path, model: Path, typed: list[str], tmp_path: Path, **spec) -> tuple[serverchat.Conversation,
                                                                                           list[str], str]:
    h = Home(home)
    caps = discover.capabilities(discover.find(h, Path(spec.pop("llama_bin"))), h)
    lines: list[str] = []
    shown: list[str] = []
    queue = iter(typed)

    def read_line(prompt: str) -> str:
        try:
            return next(queue)
        except StopIteration:
            raise EOFError from None

    term = serverchat.Terminal(read_line=read_line, on_piece=lambda p: shown.append(p.text), on_line=lines.append)
    result = serverchat.converse(RunSpec(model=model, threads=2, temp=0.0, **spec), caps, logs=tmp_path / "logs",
                                 run_dir=tmp_path / "run", size=model.stat().st_size, term=term)
    return result, lines, "".join(shown)


def test_a_message_the_server_refuses_is_one_line_and_the_conversation_goes_on(home: Path, llama_bin: Path,
                                                                               smollm2: Path, tmp_path: Path) -> None:
    result, lines, _ = _converse(home, smollm2, ["Count: " + "apple " * 400, "Hi"], tmp_path, ctx=256, n_predict=4,
                                 llama_bin=llama_bin)
    assert result.exit_code == 0
    refused = [x for x in lines if x.startswith("[ llama-server refused this message:")]
    assert refused == [refused[0]] and "exceeds the available context size (256 tokens)" in refused[0], lines
    # the refused message is not part of the conversation: the next one is answered, as the first answer
    assert [s.index for s in result.summaries] == [1] and result.summaries[0].gen is not None
    assert result.summaries[0].gen.tokens == 4 and not result.summaries[0].context_full


def test_an_answer_the_full_context_stops_is_said(home: Path, llama_bin: Path, smollm2: Path, tmp_path: Path) -> None:
    # mainline's server does not shift its context: the answer ends with finish_reason "length" before max_tokens
    result, lines, _ = _converse(home, smollm2, ["Write a very long story about a dragon."], tmp_path, ctx=256,
                                 n_predict=1000, llama_bin=llama_bin, extra=("--ignore-eos",))
    (s,) = result.summaries
    assert s.context_full and not s.context_dropped and s.gen is not None and s.gen.tokens is not None
    assert s.gen.tokens < 256 and "[ the context is full (256 tokens): this answer stopped there ]" in lines, lines


def test_the_conversation_is_tokenized_only_when_it_could_outgrow_the_context() -> None:
    # a server truncates only a prompt longer than its context, text has no more tokens than bytes (+1), and a
    # template adds a few tokens a message: a short conversation costs no /tokenize request; a long one, or an
    # unknown context, is counted by the server
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked: list[str] = []

    class Tokenizer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            content = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["content"]
            asked.append(content)
            body = json.dumps({"tokens": list(range(len(content.split())))}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tokenizer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        short = [{"role": "user", "content": "Hi there"}]
        assert serverchat._count_tokens(url, "k", short, 4096) is None and asked == []
        room = serverchat.TEMPLATE_ROOM * 3  # one message
        assert serverchat._count_tokens(url, "k", short, 9 + room + 1) is None and asked == []
        assert serverchat._count_tokens(url, "k", short, 9 + room) == 2 and asked == ["Hi there"]  # could fill it
        assert serverchat._count_tokens(url, "k", short, None) == 2 and len(asked) == 2
        long = [{"role": "user", "content": "apple " * 300}, {"role": "assistant", "content": "ok"}]
        assert serverchat._count_tokens(url, "k", long, 256) == 301 and len(asked) == 3
    finally:
        server.shutdown()
        server.server_close()
