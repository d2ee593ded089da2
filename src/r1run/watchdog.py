"""The watchdog that stops one of r1run's children when r1run dies, where the kernel will not (macOS, BSD).

Linux kills r1run's llama.cpp processes through the parent-death signal (`proc._die_with_parent`). Other
systems have no such request, so `proc` starts this small program beside each long-running child:

    python -m r1run.watchdog PID START_TIME

Its stdin is the read end of a pipe whose only write end r1run holds. r1run never writes to it; the read
returns end-of-file when r1run closes it (after reaping the child itself) or when r1run dies, by any
signal, SIGKILL included: the kernel closes a dead process's files. The watchdog then stops PID, only if
it is still the process that started at START_TIME (a pid can be reused): SIGTERM, then SIGKILL after a
grace period, the whole process group when the child leads one. It runs in a session of its own and
ignores SIGINT and SIGHUP, so the Ctrl-C or closed terminal that kills r1run does not kill it first.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil

GRACE_SECONDS = 5.0


def same_process(pid: int, started: float) -> psutil.Process | None:
    """The process `pid` if it is still the one that started at `started` and has not ended."""
    try:
        p = psutil.Process(pid)
        if abs(p.create_time() - started) > 0.01 or p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p
    except psutil.Error:
        return None


def stop(pid: int, started: float, grace: float = GRACE_SECONDS) -> str:
    """Stop the child if it still runs; says what was done (for the tests and the debug log)."""
    p = same_process(pid, started)
    if p is None:
        return "gone"
    try:
        group = os.getpgid(pid) == pid
    except OSError:
        return "gone"
    kill = (lambda sig: os.killpg(pid, sig)) if group else (lambda sig: os.kill(pid, sig))
    try:
        kill(signal.SIGTERM)
    except OSError:
        return "gone"
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if same_process(pid, started) is None:
            return "stopped"
        time.sleep(0.05)
    try:
        kill(signal.SIGKILL)
    except OSError:
        return "stopped"
    return "killed"


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        pid, started = int(argv[0]), float(argv[1])
    except (IndexError, ValueError):
        print("usage: python -m r1run.watchdog PID START_TIME (started by r1run, not by hand)", file=sys.stderr)
        return 2
    while True:  # r1run never writes: this returns at end-of-file, when r1run closed the pipe or died
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    stop(pid, started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
