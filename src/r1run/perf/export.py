"""`r1run perf`'s machine-readable forms: the JSON document (schema r1run.perf/1) and flat CSV rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from r1run.perf.model import SCHEMA, RunSummary

CSV_COLUMNS = (
    "source", "index", "line", "program", "format", "status",
    "prompt_tokens", "prompt_ms", "prompt_tps", "eval_tokens", "eval_ms", "eval_tps",
    "load_ms", "total_ms", "offload_layers", "offload_total", "threads", "model_mib_gpu", "kv_mib", "compute_mib",
    "bench_test", "bench_stddev_ts", "model", "build", "oom_target", "oom_buffer", "error",
)


def to_json(runs: Iterable[RunSummary]) -> str:
    """`{"schema": "r1run.perf/1", "runs": [RunSummary, ...]}`, documented in docs/perf.md."""
    return json.dumps({"schema": SCHEMA, "runs": [r.model_dump(mode="json") for r in runs]}, indent=2)


def csv_row(r: RunSummary) -> dict[str, Any]:
    def phase(name: str, attr: str) -> Any:
        p = getattr(r, name)
        return None if p is None else getattr(p, attr)

    gpu_model = r.buffer_mib("model", "gpu") + r.buffer_mib("model", "rpc")
    compute = r.buffer_mib("compute")
    return {
        "source": r.source, "index": r.index, "line": r.line, "program": r.program, "format": r.format,
        "status": r.status,
        "prompt_tokens": phase("prompt", "tokens"), "prompt_ms": phase("prompt", "ms"), "prompt_tps": phase("prompt",
                                                                                                            "tps"),
        "eval_tokens": phase("eval", "tokens"), "eval_ms": phase("eval", "ms"), "eval_tps": phase("eval", "tps"),
        "load_ms": r.load_ms, "total_ms": r.total_ms,
        "offload_layers": r.offload.layers if r.offload else None,
        "offload_total": r.offload.total if r.offload else None,
        "threads": r.threads.n_threads if r.threads else None,
        "model_mib_gpu": gpu_model if r.buffers else None,
        "kv_mib": r.kv_cache.mib if r.kv_cache else (r.buffer_mib("kv") or None),
        "compute_mib": compute if r.buffers else None,
        "bench_test": r.bench.test if r.bench else None, "bench_stddev_ts": r.bench.stddev_ts if r.bench else None,
        "model": r.model, "build": r.build,
        "oom_target": r.oom.target if r.oom else None, "oom_buffer": r.oom.buffer if r.oom else None,
        "error": r.error,
    }


def to_csv(runs: Iterable[RunSummary]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in runs:
        writer.writerow({k: ("" if v is None else v) for k, v in csv_row(r).items()})
    return buf.getvalue()
