"""llama-server responses: the `timings` object of `/completion` and `/v1/chat/completions`.

    {"content": " Paris.", ..., "timings": {"cache_n": 0, "prompt_n": 5, "prompt_ms": 26.879,
     "prompt_per_token_ms": 5.3758, "prompt_per_second": 186.02, "predicted_n": 12, "predicted_ms": 283.736,
     "predicted_per_token_ms": 25.79, "predicted_per_second": 38.77}}

Streams (`"stream": true`) send `data: {...}` lines; the last chunk carries the timings.
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
