"""r1run's entry point: what has to happen before the command line is even parsed.

Importing Typer, pydantic and r1run's planner takes a few hundred milliseconds, so this module imports
none of them before it has (1) started llama.cpp for a one-shot chat whose command the last run
remembered (r1run.chat.early) and (2) begun the CPU sample that picks the thread count
(r1run.hardware.begin_cpu_window), which then spans start-up instead of a sleep.
"""

from __future__ import annotations

import sys

# Commands that choose llama.cpp's thread count from how busy the CPUs are.
_TUNING = ("chat", "serve", "quickstart")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command == "chat":
        from r1run.chat import early

        early.start(sys.argv[1:])
    if command in _TUNING:
        from r1run.hardware import begin_cpu_window

        begin_cpu_window()
    try:
        from r1run.cli.app import main as cli_main

        cli_main()
    except SystemExit as exc:
        if command != "chat" or sys.gettrace() or sys.getprofile() or "coverage" in sys.modules:
            raise  # profilers and coverage write their data at exit
        early.discard()
        _exit_now(exc.code)
    finally:
        if command == "chat":
            early.discard()


def _exit_now(code: object) -> None:
    """End a chat without the interpreter's teardown: freeing the few hundred modules a chat imports
    takes about 25 ms, 1% of a short one-shot answer. Everything r1run wrote is flushed first, and
    chat leaves nothing else to clean up (its llama.cpp is reaped and its log closed)."""
    import logging
    import os

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(status)
