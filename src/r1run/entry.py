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
    finally:
        if command == "chat":
            early.discard()
