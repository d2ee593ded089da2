"""r1run's errors: a message saying what is wrong and a hint saying what to do."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


class R1runError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class BadInput(R1runError):
    """Something the user gave (an option, a path, a file) is wrong."""

    exit_code = ExitCode.USAGE


class ToolMissing(R1runError):
    """A program r1run needs (cmake, a compiler, a llama.cpp binary) is not installed."""


class BuildFailed(R1runError):
    """Compiling llama.cpp failed; carries the log path and its last lines."""

    def __init__(self, message: str, hint: str | None = None, *, log_path=None, tail: list[str] | None = None):
        super().__init__(message, hint)
        self.log_path = log_path
        self.tail = tail or []


class SourceUnavailable(R1runError):
    """llama.cpp source could not be obtained from any requested place."""


class LlamaFailed(R1runError):
    """llama.cpp exited with an error; the message quotes its own error line."""


class GGUFError(BadInput):
    """A GGUF file (or shard set) is malformed, truncated, incomplete or not a GGUF at all."""


class ModelNotLoaded(LlamaFailed):
    """llama.cpp could not load the model (an architecture or tensor type it lacks); `reason` quotes its log."""

    def __init__(self, message: str, hint: str | None = None, *, reason: str) -> None:
        super().__init__(message, hint)
        self.reason = reason
