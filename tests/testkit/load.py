"""Many OpenAI clients streaming from one `r1run serve` at once (tests/test_serve_load.py, benchmarks/serve_load.py).

Each client loops: one streamed chat completion after another, until told to stop. A response counts as
complete when its stream ends with a finish_reason (`stop` or `length`); anything else (an exception, a stream
that ends without one) is a failure, kept with its reason. One client can be a "quitter": it drops every
stream after a few chunks, to show that a client going away does not disturb the others.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class ClientStats:
    completed: int = 0
    dropped: int = 0  # streams this client closed on purpose
    tokens: int = 0  # streamed content chunks of completed responses (llama-server sends one token each)
    failures: list[str] = field(default_factory=list)
    ended_by_stop: str = ""  # how the last stream ended once the server was stopped (after `stopping`)


@dataclass
class LoadReport:
    clients: list[ClientStats]
    seconds: float

    @property
    def completed(self) -> int:
        return sum(c.completed for c in self.clients)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.clients)

    @property
    def failures(self) -> list[str]:
        return [f for c in self.clients for f in c.failures]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class Load:
    """`clients` threads streaming from `base_url` (an OpenAI-compatible /v1) with model `model`."""

    def __init__(self, base_url: str, model: str, clients: int = 8, max_tokens: int = 48, quitter: bool = True,
                 prompt: str = "Write three sentences about the sea.") -> None:
        self.base_url, self.model, self.max_tokens, self.prompt = base_url, model, max_tokens, prompt
        self.stats = [ClientStats() for _ in range(clients)]
        self.quitter = quitter
        self.stop = threading.Event()  # finish the current response, then stop
        self.stopping = threading.Event()  # the server is being stopped: streams may end early, say how
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        self.began = 0.0

    def start(self) -> "Load":
        self.began = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def finish(self, timeout: float = 120) -> LoadReport:
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        hung = [i for i, t in enumerate(self.threads) if t.is_alive()]
        for i in hung:
            self.stats[i].failures.append("client still waiting after the load ended")
        return LoadReport(self.stats, time.monotonic() - self.began)

    def _client(self, i: int) -> None:
        import openai

        client = openai.OpenAI(base_url=self.base_url, api_key="none", timeout=120, max_retries=0)
        me = self.stats[i]
        quitting = self.quitter and i == 0
        while not self.stop.is_set():
            chunks, finish = 0, None
            try:
                stream = client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": self.prompt}],
                    max_tokens=self.max_tokens, stream=True, temperature=0.7)
                for event in stream:
                    if event.choices and event.choices[0].delta.content:
                        chunks += 1
                    if event.choices and event.choices[0].finish_reason:
                        finish = event.choices[0].finish_reason
                    if quitting and chunks >= 3:
                        stream.close()  # go away mid-answer
                        me.dropped += 1
                        break
                else:
                    if finish in ("stop", "length"):
                        me.completed += 1
                        me.tokens += chunks
                    elif self.stopping.is_set():
                        me.ended_by_stop = "stream ended without a finish (server stopping)"
                        return
                    else:
                        me.failures.append(f"stream ended without a finish reason after {chunks} chunks")
            except Exception as exc:  # noqa: BLE001  (every failure is counted and named)
                if self.stopping.is_set():
                    me.ended_by_stop = type(exc).__name__
                    return
                me.failures.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                time.sleep(0.2)
