"""Fixes r1run applies to the llama.cpp trees it fetches itself, each found by the exact text it changes.

One so far. Since llama.cpp#22273 (April 2026, a fix for a hang on Windows), `common_log_main()` leaks its
logger on purpose, so nothing stops its writer thread at exit: a program that returns from `main` while lines
are still queued loses them (llama.cpp#25504, "a race"). llama-completion's last words, the end of the
answer and `common_perf_print`'s timings, are exactly such lines: with stdout a pipe and stderr a file, 10 runs
in 400 lost them on an idle machine here, 24 in 400 beside a CPU spinner (benchmarks/log_loss.py). The patch
registers an `atexit` handler that drains the queue (the logger's own `pause`: it queues an end marker and joins
the writer), outside Windows, whose DLL teardown the leak avoids. A program that dies by a signal or `abort()`
runs no `atexit` handler: its queued lines are still lost.

A tree whose text differs (older releases destroy their logger, and so flush it; a newer one may have fixed it
otherwise) is left as it is. A user's own tree (`--source DIR`) is never changed; what r1run extracts from a
`--source` archive is its own copy, and is patched.
"""

from __future__ import annotations

import re
from pathlib import Path

LOG_FLUSH = "log-flush-at-exit"
_LOG_FILE = Path("common") / "log.cpp"
_MARK = "r1run: " + LOG_FLUSH
_LEAK = re.compile(r"^        log = new common_log;\n", re.M)  # the whole line, as scripts/build_llama_cpp.sh matches
_DRAIN = (
    "        log = new common_log;\n"
    f"#if !defined(_WIN32)  // {_MARK}: drain the leaked logger's queue at exit, or its last lines are lost\n"
    "        std::atexit([] { common_log_pause(common_log_main()); });\n"
    "#endif\n"
)


def _leaks(text: str) -> bool:
    """The text `apply` changes is there, unchanged: the logger leaked, nothing draining it."""
    return _MARK not in text and len(_LEAK.findall(text)) == 1 and "std::atexit" not in text


def needs_log_flush(tree: Path) -> bool:
    """Whether this tree leaks its logger without draining it."""
    text = _read(tree / _LOG_FILE)
    return text is not None and _leaks(text)


def applies(tree: Path) -> list[str]:
    """The fixes this tree wants or already has: what a build from it should have had applied."""
    text = _read(tree / _LOG_FILE)
    return _wanted(text) if text is not None else []


def _wanted(text: str) -> list[str]:
    return [LOG_FLUSH] if _MARK in text or _leaks(text) else []


def apply(tree: Path) -> list[str]:
    """Patch the tree in place, idempotently (a patched file is known by its marker); the fixes it now has."""
    path = tree / _LOG_FILE
    text = _read(path)
    if text is None:
        return []
    if _leaks(text):
        tmp = path.with_name(path.name + ".r1run-tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:  # its bytes as they were, but for the lines added
            f.write(_LEAK.sub(lambda _: _DRAIN, text))
        tmp.replace(path)  # never a half-written source file
    return _wanted(text)


def _read(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None
