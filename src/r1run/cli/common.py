"""What every command shares: consoles, error handling, options defined once."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from r1run import home as home_module
from r1run.errors import ExitCode, R1runError
from r1run.home import Home

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable)

_out: "Console | None" = None
_err: "Console | None" = None


def out() -> "Console":
    """Results: stdout."""
    global _out
    if _out is None or _out.file is not sys.stdout:

        _out = Console(file=sys.stdout, soft_wrap=True)
    return _out


def err() -> "Console":
    """Progress, status and warnings: stderr."""
    global _err
    if _err is None or _err.file is not sys.stderr:

        _err = Console(file=sys.stderr, soft_wrap=True)
    return _err


def status(msg: str) -> None:
    err().print(f"[dim]r1run:[/dim] {msg}", highlight=False)


def warn(msg: str) -> None:
    err().print(f"[yellow]warning:[/yellow] {msg}", highlight=False)


def print_json(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def debug_enabled() -> bool:
    return os.environ.get("R1RUN_DEBUG", "") not in ("", "0")


def report_error(exc: R1runError) -> None:
    extra = getattr(exc, "tail", None)
    if extra:
        err().print("\n".join(escape(line) for line in extra), style="dim", highlight=False)
    if getattr(exc, "log_path", None):
        err().print(f"log: {exc.log_path}", highlight=False)  # type: ignore[attr-defined]
    err().print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err().print(f"[cyan]hint:[/cyan] {escape(exc.hint)}", highlight=False)


def _fail(exc: R1runError, json_: bool) -> NoReturn:
    """Report an error (message + hint on stderr; with --json also on stdout) and exit with its code."""
    if debug_enabled():
        traceback.print_exc()
    report_error(exc)
    if json_:
        print_json(json.dumps({"schema": "r1run.error/1", "error": exc.message, "hint": exc.hint,
                               "exit_code": int(exc.exit_code)}))
    raise typer.Exit(int(exc.exit_code)) from None


def handle_errors(fn: F) -> F:
    """Turn r1run's errors into message + hint and an exit code; Ctrl-C into exit 130. With --json the error is
    also JSON on stdout, `{"schema": "r1run.error/1", "error": message, "hint": hint, "exit_code": N}`, so a script
    reading stdout sees it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except R1runError as exc:
            _fail(exc, bool(kwargs.get("json_")))
        except OSError as exc:
            problem = _home_problem(exc)
            if problem is None:
                raise
            _fail(problem, bool(kwargs.get("json_")))
        except KeyboardInterrupt:
            if debug_enabled():
                traceback.print_exc()
            err().print("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None

    return wrapper  # type: ignore[return-value]


def _home_problem(exc: OSError) -> R1runError | None:
    """An OS error writing under R1RUN_HOME (a file, read-only, full) as one line saying so; None for any other."""
    home = Home.from_env()
    where = str(exc.filename or "")
    if not where or not os.path.abspath(where).startswith(os.path.abspath(home.root)):
        return None
    why = home.problem() or f"{where}: {exc.strerror or exc}"
    return R1runError(f"cannot write r1run's home: {why}",
                      "point R1RUN_HOME at a folder you can write (or unset it), or free space there")


home_module.notice = warn  # messages about the home (e.g. logs moved to a temporary folder) as warning lines


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (stable schema, see README).")]
LlamaBinOpt = Annotated[
    Optional[Path],
    typer.Option("--llama-bin", envvar="R1RUN_LLAMA_BIN",
                 help="Folder holding llama.cpp programs to use instead of r1run's build.", show_default=False),
]
