"""Run llama-bench for one invocation and read its `-o jsonl` records into rows (one per configuration).

With `-o jsonl --progress`, stdout carries one record per test and stderr the progress and any error:

    {"build_commit": "unknown", "build_number": 11434, ..., "n_threads": 2, ..., "flash_attn": 1, ...,
     "n_prompt": 16, "n_gen": 0, ..., "avg_ts": 42.502767, "stddev_ts": 0.000000, "samples_ns": [ 376446083 ],
     "samples_ts": [ 42.5028 ]}
    llama-bench: benchmark 3/8: starting
    llama-bench: benchmark 3/8: generation run 1/2
    llama_bench: error: failed to load model '/tmp/bad.gguf'
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from r1run import proc
from r1run.bench.sweep import Config, Invocation, record_config
from r1run.errors import R1runError
from r1run.perf import bench as perf_bench
from r1run.perf import loadfail
from r1run.perf.watcher import LogWatcher

PROGRESS = re.compile(r"llama-bench: benchmark (\d+)/(\d+): (.+)$")


@dataclass(frozen=True)
class Stat:
    """Tokens per second over the repetitions of one test."""

    median: float
    mean: float
    stddev: float
    low: float
    high: float
    n: int
    tokens: int

    @property
    def spread(self) -> float:
        """Half the range: how far repetitions strayed from the middle."""
        return (self.high - self.low) / 2

    def within_noise(self, other: "Stat") -> bool:
        """True when the medians differ by less than the two standard deviations together: the repetitions
        cannot tell the two apart (with one repetition there is no spread, so nothing is noise)."""
        return abs(self.median - other.median) <= self.stddev + other.stddev

    @classmethod
    def of(cls, samples: list[float], tokens: int) -> "Stat":
        return cls(median=statistics.median(samples), mean=statistics.fmean(samples),
                   stddev=statistics.stdev(samples) if len(samples) > 1 else 0.0,
                   low=min(samples), high=max(samples), n=len(samples), tokens=tokens)

    def to_dict(self) -> dict:
        return {"median": round(self.median, 3), "mean": round(self.mean, 3), "stddev": round(self.stddev, 3),
                "min": round(self.low, 3), "max": round(self.high, 3), "n": self.n, "tokens": self.tokens}


@dataclass
class Row:
    config: Config
    labels: list[str] = field(default_factory=list)
    prompt: Stat | None = None
    gen: Stat | None = None
    params: dict = field(default_factory=dict)  # the record's knobs as llama-bench reported them


@dataclass(frozen=True)
class Progress:
    test: int
    total: int
    what: str


@dataclass(frozen=True)
class BenchRun:
    argv: list[str]
    rows: list[Row]
    build: str | None
    log_path: Path


class BenchFailed(R1runError):
    """llama-bench exited with an error (the model did not load, memory ran out...); `not_loaded` says why the model
    did not load, when its log shows that (r1run.perf.loadfail)."""

    def __init__(self, message: str, hint: str | None = None, *, not_loaded: str | None = None) -> None:
        super().__init__(message, hint)
        self.not_loaded = not_loaded


def run_llama_bench(inv: Invocation, argv: list[str], log_path: Path,
        on_progress: Callable[[Progress], None] | None = None, *, output: str = "jsonl") -> BenchRun:
    """Run one llama-bench invocation, reading its `-o jsonl` (or `-o csv`) records as they come."""
    records: list[dict] = []
    other: list[str] = []
    table = perf_bench.CsvRows()

    def on_line(line: str) -> None:
        s = line.strip()
        if output == "csv":
            row = table.feed(s)
            if row is not None:
                records.append(row)
                return
            if table.header_seen(s):
                return
        if s.startswith("{"):
            try:
                rec = json.loads(s)
            except ValueError:
                other.append(line)
                return
            if perf_bench.is_bench_record(rec):
                records.append(rec)
                return
        m = PROGRESS.search(s)
        if m:
            if on_progress is not None:
                on_progress(Progress(int(m[1]), int(m[2]), m[3]))
            return
        other.append(line)

    code, _tail = proc.stream(argv, log_path=log_path, on_line=on_line)
    if code != 0 or not records:
        raise _failure(code, other, log_path)
    return BenchRun(argv, rows_from(inv, records), perf_bench.build_of(records[0]), log_path)


def rows_from(inv: Invocation, records: list[dict]) -> list[Row]:
    """Group the records (a prompt test and a generation test per configuration) into rows."""
    rows: dict[Config, Row] = {}
    for rec in records:
        test = perf_bench.from_record(rec)
        cfg = record_config(inv, test.params)
        row = rows.setdefault(cfg, Row(cfg, [inv.label] if inv.label else []))
        samples = [float(x) for x in rec.get("samples_ts") or []] or [test.avg_ts]
        if test.n_gen == 0 and test.n_prompt > 0:
            row.prompt = Stat.of(samples, test.n_prompt)
        elif test.n_prompt == 0 and test.n_gen > 0:
            row.gen = Stat.of(samples, test.n_gen)
        row.params = {k: test.params[k] for k in ("n_threads", "n_gpu_layers", "n_cpu_moe", "flash_attn", "type_k",
                                                  "type_v", "n_batch", "n_ubatch", "tensor_buft_overrides")
                      if k in test.params}
    return list(rows.values())


def _failure(code: int, lines: list[str], log_path: Path) -> BenchFailed:
    watcher = LogWatcher(str(log_path))
    for line in lines:
        watcher.feed(line)
    runs = watcher.finish(code)
    errors = [e for r in runs for e in r.errors if e.strip()]
    oom = next((r.oom for r in runs if r.oom is not None), None)
    # the most specific line: llama.cpp's own reason before llama-bench's summary of it
    reason = oom.describe() if oom is not None else (errors[0] if errors else None)
    if reason is None:
        shown = [ln.strip() for ln in lines if ln.strip()]
        reason = shown[-1] if shown else f"exit code {code}"
    what = "llama-bench failed" if code != 0 else "llama-bench measured nothing"
    hint = f"full log: {log_path}"
    if any("unknown model architecture" in e for e in errors):
        hint = ("this llama.cpp does not know the model's architecture: update it (`r1run build --force`); "
                f"full log: {log_path}")
    elif any("failed to load model" in e or "error loading model" in e for e in errors):
        hint = f"check that the file is a complete GGUF model (`r1run inspect`); full log: {log_path}"
    elif oom is not None:
        hint = f"offload fewer layers (--gpu-layers) or use a smaller cache type; full log: {log_path}"
    return BenchFailed(f"{what} (exit {code}): {reason.strip()}", hint,
                       not_loaded=loadfail.failure(lines, code) if oom is None else None)
