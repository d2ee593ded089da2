"""Reading llama.cpp output from files or text: pick the format, hand it to the right reader.

Whole-document formats are recognised first (llama-bench `-o json`/`csv`, a llama-server response,
JSON lines of either, `data: {...}` streams); everything else is read as a text log by LogWatcher,
which also finds llama-bench markdown tables and `[ Prompt: ... ]` lines inside it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1run.errors import BadInput, R1runError
from r1run.perf import bench, server
from r1run.perf.model import RunSummary, Threads
from r1run.perf.watcher import LogWatcher
from r1run.units import MiB, size

FORMATS_HINT = ("r1run perf reads llama.cpp's stderr (llama-completion, llama-cli, llama-server), llama-server "
                "responses (JSON with `timings`) and llama-bench output (-o md, csv, json, jsonl, sql)")
MAX_BYTES = 512 * MiB


def parse_text(text: str, source: str = "<text>") -> list[RunSummary]:
    """Every run found in one document; raises BadInput when the text holds nothing r1run recognises."""
    if not text.strip():
        raise BadInput(f"{source} is empty",
                       "capture llama.cpp's output with `2> run.log` (or `2>&1`) and pass that file")
    runs = _structured(text, source)
    if runs is None:
        watcher = LogWatcher(source)
        watcher.feed_text(text)
        runs = watcher.finish()
    if not runs:
        raise BadInput(f"nothing in {source} looks like llama.cpp output", FORMATS_HINT)
    return runs


def parse_file(path: Path) -> list[RunSummary]:
    """Every run in one file (`-` reads standard input)."""
    if str(path) == "-":
        return parse_text(sys.stdin.read(), "<stdin>")
    if not path.exists():
        raise BadInput(f"no such file: {path}", "pass the path of a saved llama.cpp log")
    if path.is_dir():
        raise BadInput(f"{path} is a folder", "pass the log files inside it, e.g. `r1run perf logs/*.log`")
    if path.stat().st_size > MAX_BYTES:
        raise BadInput(f"{path} is larger than {size(MAX_BYTES)}", "pass the log of one session")
    with open(path, "rb") as f:
        head = f.read(4)
        if head == b"GGUF":
            raise BadInput(f"{path} is a GGUF model, not a log", "run the model and pass its output, e.g. "
                           "`llama-completion -m MODEL -p hi -no-cnv 2> run.log`")
        data = head + f.read()
    if b"\x00" in data[:65536]:
        raise BadInput(f"{path} is not a text file", FORMATS_HINT)
    return parse_text(data.decode("utf-8", errors="replace"), str(path))


def _structured(text: str, source: str) -> list[RunSummary] | None:
    """Runs from a JSON, JSON-lines, CSV, SQL or SSE document; None when it is none of those."""
    body = text.strip()
    if body[0] in "[{":
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if doc is not None:
            items = doc if isinstance(doc, list) else [doc]
            if any(_is_log_record(i) for i in items):
                return None
            kind = "bench_json" if any(bench.is_bench_record(i) for i in items) else "server_json"
            return _from_objects(items, kind, source)
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    # llama-bench's csv and sql may follow its stderr when captured with 2>&1
    header = next((i for i, ln in enumerate(lines) if ln.startswith("build_commit,") and "avg_ts" in ln), None)
    if header is not None:
        return _from_objects(bench.parse_csv("\n".join(lines[header:])), "bench_csv", source)
    if any(ln.startswith("INSERT INTO llama_bench") for ln in lines):
        return _from_objects([r for r in map(bench.parse_sql_line, lines) if r], "bench_sql", source)
    json_lines = [ln[5:].strip() if ln.startswith("data:") else ln for ln in lines]
    if all(ln.startswith("{") or ln == "[DONE]" for ln in json_lines):
        objs = []
        for ln in json_lines:
            try:
                objs.append(json.loads(ln))
            except ValueError:
                if ln != "[DONE]":
                    return None
        if any(_is_log_record(o) for o in objs):
            return None  # llama.cpp --log-jsonl: a text log in disguise, read by LogWatcher
        kind = "bench_jsonl" if any(bench.is_bench_record(o) for o in objs) else "server_json"
        return _from_objects(objs, kind, source)
    return None


def _is_log_record(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == "log"


def _from_objects(items: Iterable[Any], kind: str, source: str) -> list[RunSummary]:
    runs: list[RunSummary] = []
    for item in items:
        if kind.startswith("bench") and bench.is_bench_record(item):
            t = bench.from_record(item)
            threads = t.params.get("n_threads")
            prompt, gen = bench.phases(t)
            runs.append(RunSummary(
                source=source, index=len(runs) + 1, format=kind, program="llama-bench", status="ok",
                build=bench.build_of(item),
                model=str(item.get("model_filename") or item.get("model_type") or "") or None,
                threads=Threads(n_threads=threads) if isinstance(threads, int) else None, bench=t, prompt=prompt,
                gen=gen,
            ))
        elif kind == "server_json" and server.has_timings(item):
            runs.append(RunSummary(source=source, index=len(runs) + 1, format=kind, program="llama-server",
                                   status="ok", **server.phases(item)))
    return runs



@dataclass(frozen=True)
class Problem:
    """A file that could not be read, with r1run's error for it."""

    path: str
    error: BadInput


@dataclass(frozen=True)
class PerfReport:
    runs: list[RunSummary]
    problems: list[Problem]

    @property
    def measured(self) -> list[RunSummary]:
        return [r for r in self.runs if r.measured]


def read_logs(paths: Iterable[Path]) -> PerfReport:
    """Every run in every file; unreadable files are collected as problems, not raised."""
    runs: list[RunSummary] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            runs.extend(parse_file(path))
        except BadInput as exc:
            problems.append(Problem(str(path), exc))
    return PerfReport(runs, problems)


def failure_hint(run: RunSummary) -> str:
    """What to try after a run that measured nothing."""
    if run.oom is not None:
        if run.oom.off_host:
            return (f"{run.oom.buffer or 'the GPU'} is full: offload fewer layers (-ngl), use a smaller context (-c) "
                    "or a quantised KV cache (-ctk q4_0), or let llama.cpp choose with --fit on")
        return "the machine ran out of memory: use a smaller quant or context (-c), or close other programs"
    text = " ".join(run.errors).lower()
    if "failed to open gguf" in text or "no such file" in text:
        return "check the model path (-m)"
    if run.command and not (run.build or run.model or run.threads or run.errors):
        return ("the program printed nothing r1run recognises; llama.cpp can lose its last log lines when it "
                "exits early, so run it again by hand to see the error")
    if run.status == "incomplete":
        return "the run stopped before llama.cpp printed its timings; let it finish (or send one request to the server)"
    where = f" around line {run.line}" if run.line else ""
    return f"see {run.source}{where} for the full error"


def nothing_measured(runs: list[RunSummary]) -> R1runError:
    """The error for a set of runs none of which has a speed figure, naming the first failure."""
    failed = [r for r in runs if not r.measured]
    first = failed[0]
    who = first.program or "llama.cpp"
    if first.status == "failed":
        what = f"{who} failed: {first.oom.describe() if first.oom else first.error}"
    else:
        what = f"{who} stopped before printing its timings"
    more = f" (and {len(failed) - 1} more run(s))" if len(failed) > 1 else ""
    return R1runError(f"{first.source}: nothing measured: {what}{more}", failure_hint(first))
