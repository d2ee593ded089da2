"""llama-server responses: the `timings` object of `/completion` and `/v1/chat/completions`.

    {"content": " Paris.", ..., "timings": {"cache_n": 0, "prompt_n": 5, "prompt_ms": 26.879,
     "prompt_per_token_ms": 5.3758, "prompt_per_second": 186.02, "predicted_n": 12, "predicted_ms": 283.736,
     "predicted_per_token_ms": 25.79, "predicted_per_second": 38.77}}

Streams (`"stream": true`) send `data: {...}` lines; the last chunk carries the timings. ik_llama.cpp's server adds
the context's size and what its cache holds at the end (`"n_ctx": 256, "n_past": 173`) and, on every chunk, the
prompt's length (`"usage": {"prompt_tokens": 27, ...}`): enough to tell that it dropped tokens to make room.
"""

from __future__ import annotations

from typing import Any

from r1run.perf.model import Phase


def has_timings(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("timings"), dict) and (
        "prompt_n" in obj["timings"] or "predicted_n" in obj["timings"])


def phases(obj: dict[str, Any]) -> dict[str, Any]:
    """RunSummary fields from one response."""
    t = obj["timings"]
    prompt = _phase(t, "prompt")
    gen = _phase(t, "predicted")
    total_ms = (prompt.ms or 0.0) + (gen.ms or 0.0) if prompt.ms is not None or gen.ms is not None else None
    n = (prompt.tokens or 0) + (gen.tokens or 0) if prompt.tokens is not None or gen.tokens is not None else None
    return {"prompt": prompt, "gen": gen, "total_ms": total_ms, "total_tokens": n,
            "model": obj.get("model") if isinstance(obj.get("model"), str) else None,
            "build": obj.get("system_fingerprint") if isinstance(obj.get("system_fingerprint"), str) else None}


def _phase(t: dict[str, Any], prefix: str) -> Phase:
    def f(key: str) -> float | None:
        v = t.get(f"{prefix}_{key}")
        return float(v) if isinstance(v, (int, float)) and v == v else None

    n = t.get(f"{prefix}_n")
    return Phase(ms=f("ms"), tokens=int(n) if isinstance(n, (int, float)) else None,
                 ms_per_token=f("per_token_ms"), tps=f("per_second"))


def dropped_tokens(obj: dict[str, Any], prompt_tokens: int | None, conversation_tokens: int | None = None) -> bool:
    """Whether llama-server dropped tokens of the conversation to make room, from the last chunk of an answer:

    - its context shifted during the answer: the prompt (`prompt_tokens`, from `usage`) and the answer's tokens
      (`predicted_n`) outnumber what its cache holds at the end (`n_past`) by more than the last token;
    - it truncated the prompt: the conversation's own text is longer (`conversation_tokens`, its contents tokenized:
      a lower bound of the prompt) than the prompt the server computed.

    ik_llama.cpp's server does both by default (`--context-shift on`); mainline's refuses a prompt too long instead.
    """
    t = obj.get("timings") or {}
    n_past, predicted = t.get("n_past"), t.get("predicted_n")
    if prompt_tokens is None:
        cache, prompt = t.get("cache_n"), t.get("prompt_n")
        prompt_tokens = (cache or 0) + prompt if isinstance(prompt, int) else None
    if isinstance(n_past, int) and isinstance(predicted, int) and prompt_tokens is not None:
        if prompt_tokens + predicted > n_past + 1:
            return True
    return conversation_tokens is not None and prompt_tokens is not None and conversation_tokens > prompt_tokens
