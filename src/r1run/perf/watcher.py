"""`LogWatcher`: reads llama.cpp's text log line by line, live or from a file, and sums up each run.

A log may hold several runs (r1run's own logs append one child after another); a run starts at
`$ command`, at a `build:` line, at a program's first line (`llama_completion: llama backend init`,
`main: llama backend init`, `llama_server: initializing ...`, `Log start`), or at a new
`llama_model_loader: loaded meta data ...` after the previous run has timings or failed.
One run gives one RunSummary per timing block: a completion run has one, a server run one per
request (`slot print_timing` block), a llama-bench table one per test. Every line format is
quoted in `r1run.perf.lines`, `r1run.perf.oom` and `r1run.perf.bench`.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from r1run.perf import bench
from r1run.perf import lines as L
from r1run.perf.model import (
    BenchTest,
    Buffer,
    Device,
    KvCache,
    MemoryRow,
    Offload,
    OomEvent,
    Phase,
    RunSummary,
    Threads,
    device_kind,
)
from r1run.perf.oom import OomDetector

EventKind = Literal["run", "device", "offload", "buffer", "kv_cache", "memory", "threads", "build", "model",
                    "timing", "bench", "error", "oom"]

_FORMATS = {
    "common_perf_print": "common_perf_print",
    "llama_perf_context_print": "llama_perf_context_print",
    "llama_perf_sampler_print": "llama_perf_context_print",  # the sampler line opens the same block
    "llama_print_timings": "llama_print_timings",
    "print_timings": "server_slot",
}
_PHASE_KEYS = {"prompt eval": "prompt", "eval": "gen", "sampling": "sampling", "sample": "sampling"}
_RUN_START = re.compile(r"^(?:\w+: llama backend init|Log start|initializing \.\.\.)\s*$")
_CLI_BANNER = re.compile(r"^(?:build|model)\s+: (\S.*)$|^available commands:")
_SERVER_TAGS = ("srv", "slot")


@dataclass(frozen=True)
class LogEvent:
    """Something a line told: kind, the value parsed (a model object or a str) and the line itself."""

    kind: EventKind
    value: Any
    line: str


@dataclass
class _Block:
    format: str
    line: int
    load_ms: float | None = None
    prompt: Phase | None = None
    gen: Phase | None = None
    sampling: Phase | None = None
    total_ms: float | None = None
    total_tokens: int | None = None
    bench: BenchTest | None = None
    closed: bool = False
    cli_seen: bool = False
    context_full: bool = False

    def has(self, key: str) -> bool:
        return getattr(self, {"load": "load_ms", "total": "total_ms"}.get(key, key)) is not None


@dataclass
class _Run:
    line: int
    keys: set[str] = field(default_factory=set)
    hints: set[str] = field(default_factory=set)
    command: str | None = None
    program: str | None = None
    build: str | None = None
    model: str | None = None
    offload: Offload | None = None
    buffers: list[Buffer] = field(default_factory=list)
    kv: KvCache | None = None
    memory: list[MemoryRow] = field(default_factory=list)
    devices: dict[str, Device] = field(default_factory=dict)
    threads: Threads | None = None
    errors: list[str] = field(default_factory=list)
    oom: OomDetector = field(default_factory=OomDetector)
    blocks: list[_Block] = field(default_factory=list)
    exit_code: int | None = None
    loaded_ms: float | None = None  # b11434's llama-cli / llama-server: the timestamp of `model loaded`
    n_ctx: int | None = None        # a server slot's context (llama-cli, llama-server)
    context_full: bool = False      # llama-completion stopped at the end of its context

    @property
    def finished(self) -> bool:
        return bool(self.blocks) or bool(self.errors)


class LogWatcher:
    """Feed llama.cpp output line by line (`feed`), then `finish()` for one RunSummary per measurement.

    Safe to feed from a reader thread (as `proc.Child(on_line=watcher.feed)` does) while another
    thread reads `oom`, `offload` or `buffers` to react, e.g. retry with fewer GPU layers.
    """

    MAX_ERRORS = 20

    def __init__(self, source: str = "<log>") -> None:
        self.source = source
        self._lock = threading.Lock()
        self._runs: list[_Run] = []
        self._run: _Run | None = None
        self._n = 0
        self._md = bench.MarkdownTable()

    # ---- live view ---------------------------------------------------------------------------
    @property
    def oom(self) -> OomEvent | None:
        """The latest out-of-memory failure of the current run, classified; None if there was none."""
        with self._lock:
            return self._run.oom.event if self._run else None

    @property
    def offload(self) -> Offload | None:
        with self._lock:
            return self._run.offload if self._run else None

    @property
    def buffers(self) -> list[Buffer]:
        with self._lock:
            return list(self._run.buffers) if self._run else []

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._run.errors) if self._run else []

    # ---- input -------------------------------------------------------------------------------
    def feed(self, raw: str) -> list[LogEvent]:
        """Read one line of output (with or without its newline); return what it told, if anything."""
        with self._lock:
            self._n += 1
            events: list[LogEvent] = []
            for line in L.normalise(raw):
                ev = self._line(line)
                if ev is not None:
                    events.append(ev)
            return events

    def feed_text(self, text: str) -> None:
        for raw in text.splitlines():
            self.feed(raw)

    def finish(self, exit_code: int | None = None) -> list[RunSummary]:
        """Close the log; `exit_code` of the program (if known) marks a silent crash as failed."""
        with self._lock:
            if exit_code is not None:
                if self._run is None and exit_code != 0:
                    self._new_run().keys.add("exit")  # it printed nothing at all before failing
                if self._run is not None:
                    self._run.exit_code = exit_code
            summaries: list[RunSummary] = []
            for run in self._runs:
                summaries.extend(_summarise(run, self.source))
            return [s.model_copy(update={"index": i}) for i, s in enumerate(summaries, 1)]

    # ---- one line ----------------------------------------------------------------------------
    def _current(self) -> _Run:
        if self._run is None:
            self._new_run()
        assert self._run is not None
        return self._run

    def _new_run(self) -> _Run:
        self._run = _Run(line=self._n)
        self._runs.append(self._run)
        return self._run

    def _split(self, allowed: set[str]) -> _Run:
        """Start a new run unless the current one holds nothing beyond `allowed`."""
        run = self._current()
        return self._new_run() if run.keys - allowed else run

    def _line(self, line: L.Line) -> LogEvent | None:
        text, level, tag = line.text, line.level, line.tag
        stripped = text.strip()

        m = L.COMMAND.match(text)
        if m:
            run = self._split(set())
            run.command = m.group(1)
            run.keys.add("command")
            return LogEvent("run", run.command, text)
        m = L.EXIT.match(text)
        if m:
            if self._run is not None:
                self._run.exit_code = int(m.group(1))
            return None

        tb = self._md.feed(text)
        if tb is not None:
            run = self._current()
            prompt, gen = bench.phases(tb)
            run.blocks.append(_Block(format="bench_md", line=self._n, bench=tb, closed=True, prompt=prompt, gen=gen))
            run.keys.add("timing")
            run.hints.add("llama-bench")
            return LogEvent("bench", tb, text)
        if self._md.columns is not None or stripped.startswith("|"):
            return None
        if stripped.startswith("{") and "avg_ts" in stripped:  # llama-bench -o jsonl inside a 2>&1 log
            try:
                rec = json.loads(stripped)
            except ValueError:
                rec = None
            if bench.is_bench_record(rec):
                tb = bench.from_record(rec)
                run = self._current()
                prompt, gen = bench.phases(tb)
                run.blocks.append(_Block(format="bench_jsonl", line=self._n, bench=tb, closed=True, prompt=prompt,
                                         gen=gen))
                run.keys.add("timing")
                run.hints.add("llama-bench")
                run.build = run.build or bench.build_of(rec)
                return LogEvent("bench", tb, text)

        m = bench.BENCH_FOOTER.match(stripped)
        if m and self._run is not None and any(b.bench for b in self._run.blocks):
            self._run.build = f"{m.group(2)} ({m.group(1)})"
            return LogEvent("build", self._run.build, text)

        m = L.BUILD.search(stripped)
        if m and "build" in stripped[:40]:
            run = self._split({"command", "start"})
            run.build = f"{m.group(1)} ({m.group(2)})"
            run.keys.add("build")
            return LogEvent("build", run.build, text)

        if _RUN_START.match(stripped):
            run = self._split({"command", "build", "threads", "devices"})
            run.keys.add("start")
            if tag and tag.endswith("llama_server"):
                run.hints.add("llama-server")
            return LogEvent("run", stripped, text)

        m = L.MODEL_FILE.search(stripped)
        if m:
            run = self._current()
            if run.finished:
                run = self._new_run()
            run.model = run.model or m.group(1)
            run.keys.add("model")
            return LogEvent("model", m.group(1), text)

        run = self._current()
        if L.CONTEXT_FULL.search(stripped):
            run.context_full = True
            return None
        m = L.SLOT_CTX.search(stripped)
        if m:
            run.n_ctx = int(m.group(1))
        if L.SLOT_TRUNCATED.search(stripped):
            done = [b for b in run.blocks if b.format == "server_slot" and b.closed]
            if done:
                done[-1].context_full = True
            return None
        if stripped == "model loaded" and line.ms is not None and tag and tag.endswith("llama_server"):
            # `0.00.350.721 I srv  llama_server: model loaded`: llama-cli (a server inside since 2026) prints no
            # `load time` line; the time from its start to this line is its load time, warm-up included
            run.loaded_ms = line.ms
            return None
        if tag:
            if tag.split()[0] in _SERVER_TAGS:
                run.hints.add("llama-server")
            if "llama_completion" in tag:
                run.hints.add("llama-completion")
        if stripped.startswith("llama_completion:"):
            run.hints.add("llama-completion")
        elif stripped.startswith("main:"):
            run.hints.add("main")

        m = _CLI_BANNER.match(stripped)
        if m:
            run.hints.add("llama-cli")
            run.keys.add("cli")
            if stripped.startswith("model") and m.group(1):
                run.model = run.model or m.group(1)
            elif stripped.startswith("build") and m.group(1):
                run.build = run.build or m.group(1)
            return None

        ev = self._timing(run, stripped)
        if ev is not None:
            return ev
        ev = self._memory(run, stripped)
        if ev is not None:
            return ev

        oom = run.oom.feed(stripped)
        if _is_error(level, stripped):
            if len(run.errors) < self.MAX_ERRORS:
                run.errors.append(stripped)
            run.keys.add("error")
            if oom is not None:
                return LogEvent("oom", oom, text)
            return LogEvent("error", stripped, text)
        if oom is not None:
            return LogEvent("oom", oom, text)
        return None

    def _timing(self, run: _Run, text: str) -> LogEvent | None:
        m = L.CLI_TIMINGS.search(text)
        if m:
            run.hints.add("llama-cli")
            run.keys.add("timing")
            # llama-cli -lv 4 also logs the server slot's own, finer figures: each `[ Prompt: ... ]` line is the
            # first slot block not yet matched (the log file and the terminal may be read one after the other)
            slot = next((b for b in run.blocks if b.format == "server_slot" and b.closed and not b.cli_seen), None)
            if slot is not None:
                slot.cli_seen = True
                return LogEvent("timing", slot, text)
            block = _Block(format="cli_timings", line=self._n, closed=True, cli_seen=True,
                           prompt=Phase(tps=L.num(m.group(1))), gen=Phase(tps=L.num(m.group(2))))
            run.blocks.append(block)
            return LogEvent("timing", block, text)

        m = L.TIMING.search(text)
        if not m or m.group("what") in ("unaccounted", "samplers"):
            return None
        src = L.TIMING_SOURCE.match(text)
        tag = re.sub(r"\s+", " ", src.group("tag")) if src else ""
        if tag.startswith("slot") or "print_timings]" in text:  # 2024 server: `INFO [ print_timings] ...`
            fmt = "server_slot"
            run.hints.add("llama-server")
        else:
            fmt = _FORMATS.get(tag, tag or "timings")
        what = m.group("what")
        key = _PHASE_KEYS.get(what, what)
        last = run.blocks[-1] if run.blocks else None
        if last is None or last.closed or last.format != fmt or last.has(key):
            block = _Block(format=fmt, line=self._n)
            run.blocks.append(block)
        else:
            block = last
        run.keys.add("timing")
        ms, n = L.num(m.group(2)), int(m.group("n")) if m.group("n") else None
        if key == "load":
            block.load_ms = ms
        elif key == "total":
            block.total_ms, block.total_tokens, block.closed = ms, n, True
            if fmt == "server_slot" and run.n_ctx and n is not None and n >= run.n_ctx:
                block.context_full = True  # a turn that started from an empty cache and used every cell
        else:
            phase = Phase(ms=ms, tokens=n, ms_per_token=L.num(m.group(5)), tps=L.num(m.group(6)))
            if phase.tps is None and ms and n:
                phase = phase.model_copy(update={"tps": 1000.0 * n / ms, "ms_per_token": ms / n})
            setattr(block, key, phase)
        return LogEvent("timing", block, text)

    def _memory(self, run: _Run, text: str) -> LogEvent | None:
        m = L.OFFLOAD.search(text)
        if m:
            run.offload = Offload(layers=int(m.group(1)), total=int(m.group(2)))
            run.keys.add("offload")
            return LogEvent("offload", run.offload, text)
        for pattern, kind in ((L.MODEL_BUFFER, "model"), (L.KV_BUFFER, "kv"), (L.COMPUTE_BUFFER, "compute"),
                              (L.OUTPUT_BUFFER, "output")):
            m = pattern.search(text)
            if m:
                buf = Buffer(kind=kind, name=m.group(1), device=device_kind(m.group(1)), mib=float(m.group(2)))
                if kind in ("compute", "output"):
                    # reserved again when the graph changes: the last size is the one in use
                    run.buffers = [b for b in run.buffers if not (b.kind == kind and b.name == buf.name)]
                run.buffers.append(buf)
                run.keys.add("buffers")
                return LogEvent("buffer", buf, text)
        m = L.KV_SIZE.search(text)
        if m:
            run.kv = _add_kv(run.kv, m)
            run.keys.add("kv")
            return LogEvent("kv_cache", run.kv, text)
        m = L.MEMORY_TABLE.match(text)
        if m:
            return self._memory_row(run, m.group(1), text)
        m = L.USING_DEVICE.search(text)
        if m:
            dev = Device(name=m.group("name"), description=m.group("desc"), free_mib=int(m.group("free")))
            run.devices[dev.name] = dev
            run.keys.add("devices")
            return LogEvent("device", dev, text)
        m = L.DEVICE_INFO.match(text) or L.CUDA_DEVICE.match(text) or L.LIST_DEVICE.match(text)
        if m:
            if m.re is L.CUDA_DEVICE:
                dev = Device(name=f"CUDA{m.group(1)}", description=m.group(2).strip())
            else:
                dev = Device(name=m.group(1), description=m.group(2).strip(), total_mib=int(m.group(3)),
                             free_mib=int(m.group(4)))
            known = run.devices.get(dev.name)
            if known and dev.total_mib and not known.total_mib:
                run.devices[dev.name] = known.model_copy(update={"total_mib": dev.total_mib})
            else:
                run.devices[dev.name] = known or dev
            run.keys.add("devices")
            return LogEvent("device", dev, text)
        m = L.THREADS.search(text)
        if m:
            run.threads = Threads(n_threads=int(m.group(1)), n_threads_batch=_int(m.group(2)),
                                  available=_int(m.group(3)))
            run.keys.add("threads")
            return LogEvent("threads", run.threads, text)
        return None

    def _memory_row(self, run: _Run, body: str, text: str) -> LogEvent | None:
        if "memory breakdown" in body:
            run.memory = []  # a new table (the fit projection comes first, the real one with the timings)
            return None
        m = L.MEMORY_DEVICE.match(body) or L.MEMORY_HOST.match(body)
        if not m:
            return None
        name, desc = m.group("name"), None
        nd = re.fullmatch(r"(\S+) \((.*)\)", name)
        if nd:
            name, desc = nd.group(1), nd.group(2)
        values = {k: int(v) for k, v in m.groupdict().items() if k != "name" and v is not None}
        row = MemoryRow(name=name, description=desc, **values)
        run.memory.append(row)
        run.keys.add("memory")
        return LogEvent("memory", row, text)


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _is_error(level: str | None, text: str) -> bool:
    if level == "E":
        return bool(text)
    if level is not None or not text:
        return False
    return bool(L.ERROR_TEXT.search(text)) and not L.NOT_ERROR.search(text)


def _add_kv(prev: KvCache | None, m: re.Match[str]) -> KvCache:
    kv = KvCache(mib=float(m.group(1)), cells=_int(m.group(2)), layers=_int(m.group(3)),
                 type_k=m.group(4), k_mib=L.num(m.group(5)), type_v=m.group(6), v_mib=L.num(m.group(7)))
    if prev is None:
        return kv
    # models with two caches (sliding-window + full attention) print one size line each
    return KvCache(mib=prev.mib + kv.mib, cells=max(prev.cells or 0, kv.cells or 0) or None,
                   layers=(prev.layers or 0) + (kv.layers or 0) or None, type_k=prev.type_k or kv.type_k,
                   k_mib=_sum(prev.k_mib, kv.k_mib), type_v=prev.type_v or kv.type_v, v_mib=_sum(prev.v_mib, kv.v_mib))


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _program(run: _Run) -> str | None:
    if run.command:
        try:
            argv0 = shlex.split(run.command)[0]
        except ValueError:
            argv0 = run.command.split()[0]
        return PurePath(argv0).name
    for hint in ("llama-bench", "llama-cli", "llama-server", "llama-completion"):
        if hint in run.hints:
            return hint
    if "main" in run.hints:
        return "llama-cli"  # before 2026 the one-shot program was llama-cli, whose function is `main`
    return None


def _summarise(run: _Run, source: str) -> list[RunSummary]:
    if not run.keys:
        return []
    errors = list(run.errors)
    if not errors and run.exit_code not in (None, 0) and not run.blocks:
        errors = [f"exited with code {run.exit_code}"]
    common: dict[str, Any] = dict(
        source=source, index=0, line=run.line or None, program=_program(run), errors=errors,
        error=errors[0] if errors else None, oom=run.oom.event, command=run.command, build=run.build,
        model=run.model, offload=run.offload, buffers=list(run.buffers), kv_cache=run.kv, memory=list(run.memory),
        devices=list(run.devices.values()), threads=run.threads,
    )
    if not run.blocks:
        status = "failed" if errors else "incomplete"
        return [RunSummary(format="log", status=status, **common)]
    out = []
    for i, b in enumerate(run.blocks):
        fields = dict(common, line=b.line)
        load_ms = b.load_ms if b.load_ms is not None or i else run.loaded_ms  # loading happens once, before turn 1
        if b.bench is not None:
            fields.update(model=fields["model"] or str(b.bench.params.get("model_type", "")) or None,
                          threads=fields["threads"] or _bench_threads(b.bench))
        out.append(RunSummary(format=b.format, status="ok", load_ms=load_ms, prompt=b.prompt, gen=b.gen,
                              context_full=b.context_full or run.context_full,
                              sampling=b.sampling, total_ms=b.total_ms, total_tokens=b.total_tokens, bench=b.bench,
                              **fields))
    return out


def _bench_threads(t: BenchTest) -> Threads | None:
    n = t.params.get("n_threads")
    return Threads(n_threads=n) if isinstance(n, int) else None
