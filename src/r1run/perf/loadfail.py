"""Whether a llama.cpp program failed to load its model, and the line (or signal) that says so.

A file whose architecture the program does not know (ik_llama.cpp 0.1.5's llama-cli on a generated llama file
whose general.architecture says olmo2; mainline words it the same way):

    llama_model_load: error loading model: error loading model architecture: unknown model architecture: 'olmo2'
    llama_model_load_from_file: failed to load model
    llama_init_from_gpt_params: error: failed to load model 'olmo2.gguf'
    main: error: unable to load model

A tensor type the program lacks gives no line at all. ik_llama.cpp 0.1.5 on a file holding mainline's TQ2_0
(type 35, which its ggml.h skips) dies by SIGFPE while it reads the file's header: its llama-cli, llama-server
and llama-bench all end with

    CPU: using device CPU - 0 MiB free

and exit -8. So a program that a fault signal (SIGFPE, SIGSEGV, SIGBUS, SIGILL, SIGABRT) ends before it has
made its context did not load the model. The context comes after every weight is in place:

    llama_init_from_model: n_ctx         = 2048                 (ik_llama.cpp 0.1.5, mainline 2025)
    llama_new_context_with_model: n_ctx      = 2048             (2024)
    llama_context: constructing llama_context                   (mainline)

An out-of-memory is not a load failure here (r1run.perf.oom reads those, and r1run retries with less); neither is
SIGKILL (the kernel's OOM killer, or r1run stopping it) nor SIGINT/SIGTERM.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable

_FAILED = re.compile(r"error loading model|unknown model architecture|failed to load model|unable to load model"
                     r"|invalid ggml type|failed to read tensor info|tensor '[^']*' has invalid")
_LOADED = re.compile(r"^\s*(llama_init_from_model|llama_new_context_with_model|llama_context):")
_FAULTS = {signal.SIGFPE, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT}


class LoadWatch:
    """Fed a program's log lines as they come; `failure(exit_code)` says why it did not load its model, or None."""

    def __init__(self) -> None:
        self.loaded = False
        self.said: str | None = None  # the most telling error line, when there is one
        self.last = ""

    def feed(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        self.last = text
        if _LOADED.match(text):
            self.loaded = True
        elif not self.loaded and _FAILED.search(text) and (self.said is None or "error loading model" in text):
            self.said = text  # llama_model_load's line says why; the lines after it only that it failed

    def failure(self, exit_code: int | None) -> str | None:
        if self.loaded or exit_code in (None, 0):
            return None
        if self.said is not None:
            return self.said
        if exit_code < 0 and -exit_code in _FAULTS:
            name = signal.Signals(-exit_code).name
            return f"it died by {name} while reading the file (last line: {self.last!r})" if self.last else \
                f"it died by {name} while reading the file"
        return None


def failure(lines: Iterable[str], exit_code: int | None) -> str | None:
    """`LoadWatch.failure` over lines already read (a log file, a child's tail)."""
    watch = LoadWatch()
    for line in lines:
        watch.feed(line)
    return watch.failure(exit_code)
