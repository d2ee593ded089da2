"""Speed and memory figures from llama.cpp's output: parsers, a live log watcher, OOM classification.

    runs = parse_file(Path("run.log"))          # one RunSummary per measured run
    w = LogWatcher("chat"); w.feed(line) ...    # live, e.g. on llama-server's stderr
    if w.oom and w.oom.off_host: ...            # retry with fewer GPU layers
    runs = w.finish(exit_code)
"""

from r1run.perf.model import (
    SCHEMA,
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
)
from r1run.perf.parse import parse_file, parse_text
from r1run.perf.watcher import LogEvent, LogWatcher

__all__ = [
    "SCHEMA", "BenchTest", "Buffer", "Device", "KvCache", "LogEvent", "LogWatcher", "MemoryRow", "Offload",
    "OomEvent", "Phase", "RunSummary", "Threads", "parse_file", "parse_text",
]
