"""`r1run perf`'s machine-readable forms: the JSON document (schema r1run.perf/2) and flat CSV rows.

r1run's JSON convention (docs/json.md): sizes in bytes. The parsers keep llama.cpp's MiB, as it prints
them; `run_json` turns them into bytes for every JSON that carries a run (perf, chat, bench).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from r1run.perf.model import SCHEMA, RunSummary

CSV_COLUMNS = (
    "source", "index", "line", "program", "format", "status",
    "prompt_tokens", "prompt_ms", "prompt_tps", "gen_tokens", "gen_ms", "gen_tps",
    "load_ms", "total_ms", "offload_layers", "offload_total", "threads", "model_gpu_bytes", "kv_bytes", "compute_bytes",
    "bench_test", "bench_stddev_ts", "model", "build", "oom_target", "oom_buffer", "error",
)


MIB = 1 << 20


def _bytes(mib: float | int | None) -> int | None:
    return None if mib is None else int(round(mib * MIB))


def run_json(r: RunSummary) -> dict[str, Any]:
    """One run as JSON: the RunSummary's fields, with every MiB figure as bytes (`mib` -> `bytes`,
    `k_mib` -> `k_bytes`, a memory row's `model` -> `model_bytes` ...)."""
    d = r.model_dump(mode="json")
    d["buffers"] = [{**{k: v for k, v in b.items() if k != "mib"}, "bytes": _bytes(b["mib"])} for b in d["buffers"]]
    if d["kv_cache"] is not None:
        kv = d["kv_cache"]
        d["kv_cache"] = {**{k: v for k, v in kv.items() if not k.endswith("mib")}, "bytes": _bytes(kv["mib"]),
                         "k_bytes": _bytes(kv["k_mib"]), "v_bytes": _bytes(kv["v_mib"])}
    sizes = ("total", "free", "self", "model", "context", "compute", "unaccounted")
    d["memory"] = [{**{k: v for k, v in row.items() if k not in sizes}, **{f"{k}_bytes": _bytes(row[k]) for k in sizes}}
                   for row in d["memory"]]
    d["devices"] = [{"name": dev["name"], "description": dev["description"], "total_bytes": _bytes(dev["total_mib"]),
                     "free_bytes": _bytes(dev["free_mib"])} for dev in d["devices"]]
    return d


def to_json(runs: Iterable[RunSummary]) -> str:
    """`{"schema": "r1run.perf/2", "runs": [run, ...]}`, documented in docs/perf.md."""
    return json.dumps({"schema": SCHEMA, "runs": [run_json(r) for r in runs]}, indent=2)


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
        "gen_tokens": phase("gen", "tokens"), "gen_ms": phase("gen", "ms"), "gen_tps": phase("gen", "tps"),
        "load_ms": r.load_ms, "total_ms": r.total_ms,
        "offload_layers": r.offload.layers if r.offload else None,
        "offload_total": r.offload.total if r.offload else None,
        "threads": r.threads.n_threads if r.threads else None,
        "model_gpu_bytes": _bytes(gpu_model) if r.buffers else None,
        "kv_bytes": _bytes(r.kv_cache.mib if r.kv_cache else (r.buffer_mib("kv") or None)),
        "compute_bytes": _bytes(compute) if r.buffers else None,
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
