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

A build for a GPU on a machine where that GPU's runtime cannot start is not the file's fault: ik_llama.cpp 0.1.5
built for CUDA, where the NVIDIA driver is missing or too old, says

    ggml_cuda_init: failed to initialize CUDA: CUDA driver version is insufficient for CUDA runtime version

and then dies by SIGSEGV while it loads (mainline goes on on the CPU). That is said as such: the backend, quoted.

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
_BACKEND = re.compile(r"failed to initialize (CUDA|ROCm|HIP|Vulkan|Metal)|no (CUDA|ROCm)-capable device", re.I)
BACKEND_FAILED = "its {backend} backend could not start here"  # how a reason begins when the build's GPU did not


def backend_failed(reason: str) -> bool:
    """Whether a `failure` reason is the build's GPU backend not starting (not the file)."""
    head = BACKEND_FAILED.split("{", 1)[0]
    return reason.startswith(head)


class LoadWatch:
    """Fed a program's log lines as they come; `failure(exit_code)` says why it did not load its model, or None."""

    def __init__(self) -> None:
        self.loaded = False
        self.said: str | None = None  # the most telling error line, when there is one
        self.backend: str | None = None  # a GPU backend's line saying it could not start
        self.last = ""

    def feed(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        self.last = text
        if _LOADED.match(text):
            self.loaded = True
        elif self.backend is None and _BACKEND.search(text):
            self.backend = text
        elif not self.loaded and _FAILED.search(text) and (self.said is None or "error loading model" in text):
            self.said = text  # llama_model_load's line says why; the lines after it only that it failed

    def failure(self, exit_code: int | None) -> str | None:
        if self.loaded or exit_code in (None, 0):
            return None
        if self.backend is not None and (self.said is None and exit_code < 0 and -exit_code in _FAULTS):
            m = _BACKEND.search(self.backend)
            name = next(g for g in m.groups() if g) if m else "GPU"
            how = f", and it died by {signal.Signals(-exit_code).name}"
            return BACKEND_FAILED.format(backend=name.upper() if name.lower() == "cuda" else name) + \
                f" ({self.backend!r}){how}"
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
