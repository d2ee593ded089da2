"""Start llama.cpp while r1run is still deciding, when the last run of the same command says how.

Before a one-shot `r1run chat --prompt` can start llama.cpp, Python has to import r1run, parse the
options and plan (about 0.25 s on a small machine): most of what r1run costs over running llama.cpp by
hand. So after a run, r1run remembers the llama.cpp command it chose for that command line, the prompt
left out (a "memo"). The next time the same command line comes with any prompt, `start` launches the
remembered command at once, before anything heavy is imported; r1run then decides as usual, and
`claim(argv)` adopts the running llama.cpp only when r1run's decision is exactly that command. When it
is not (the machine got busier, a file changed), the early llama.cpp is killed and its log deleted, so
what runs is always what r1run decides now; a wrong guess costs only the CPU it used.

Only runs that used no GPU and no RPC worker are remembered: an early llama.cpp holding GPU memory
would change the free memory the planner sees, and RPC workers are checked before anything loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from r1run import proc
from r1run.home import Home, log_path_for

SCHEMA = 1
PROMPT = "\0prompt\0"  # stands for the prompt in a memo's command line
KEEP = 64  # memos kept; the oldest go first
# What else decides r1run's choice besides the command line (the rest is checked by comparing commands).
KEY_ENV = ("R1RUN_HOME", "R1RUN_MODELS", "R1RUN_LLAMA_BIN", "XDG_DATA_HOME")
_PROMPT_FLAGS = ("-p", "--prompt")
_NOT_EARLY = ("--dry-run", "-f", "--prompt-file", "--rpc", "--help")


@dataclass
class _Run:
    memo: Path
    prompt: str
    child: proc.Child | None = None


_run: _Run | None = None


def split_prompt(args: Sequence[str]) -> tuple[list[str], str] | None:
    """`chat` arguments with the prompt replaced by a placeholder, and the prompt; None when this
    command line is not a one-shot chat that can start early."""
    if not args or args[0] != "chat":
        return None
    end = args.index("--") if "--" in args else len(args)
    out, prompts = list(args), []
    for i in range(1, end):
        arg = args[i]
        if arg in _NOT_EARLY or arg.startswith(("--rpc=", "--prompt-file=")):
            return None
        if arg in _PROMPT_FLAGS and i + 1 < end:
            prompts.append(args[i + 1])
            out[i + 1] = PROMPT
        elif arg.startswith("--prompt="):
            prompts.append(arg[len("--prompt="):])
            out[i] = "--prompt=" + PROMPT
    if len(prompts) != 1:
        return None
    return out, prompts[0]


def memo_path(home: Home, args: Sequence[str]) -> Path:
    key = json.dumps({"args": list(args), "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in KEY_ENV}})
    return home.cache / "launch" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def start(args: Sequence[str]) -> bool:
    """Launch the remembered llama.cpp command for this command line, if there is one still valid.

    Never raises: whatever goes wrong here (no memo, a stale one, a folder that cannot be read), the
    normal path runs as if there were no memo and reports its own errors.
    """
    global _run
    try:
        split = split_prompt(args)
        if split is None:
            return False
        normalized, prompt = split
        home = Home.from_env()
        _run = _Run(memo_path(home, normalized), prompt)
        argv = _argv_from_memo(_run.memo, prompt)
        if argv is None:
            return False
        log_path = log_path_for(home.ensure(home.logs), "chat")
        _run.child = proc.Child(argv, log_path=log_path, stdout=subprocess.PIPE, hold=True)
    except Exception:  # noqa: BLE001 - see the docstring
        return False
    return True


def _argv_from_memo(path: Path, prompt: str) -> list[str] | None:
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
        if memo.get("schema") != SCHEMA:
            return None
        for name, size, mtime_ns in memo["files"]:
            st = os.stat(name)
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return None
        argv = [str(a) for a in memo["argv"]]
        i = argv.index(PROMPT)
        template = memo["template"]
        argv[i] = template.replace("{prompt}", prompt) if template else prompt
        return argv
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim(argv: Sequence[str]) -> proc.Child | None:
    """The early llama.cpp if it runs exactly `argv`; otherwise stop it and return None."""
    if _run is None or _run.child is None:
        return None
    child, _run.child = _run.child, None
    if child.argv == [str(a) for a in argv]:
        return child
    _drop(child)
    return None


def discard() -> None:
    """At the end of the command: stop an early llama.cpp nobody claimed (r1run failed or chose
    another path) and forget this command line."""
    global _run
    run, _run = _run, None
    if run is not None and run.child is not None:
        _drop(run.child)


def _drop(child: proc.Child) -> None:
    import signal

    child.stop(grace=2.0, first=signal.SIGKILL)
    if child.proc.stdout is not None:
        child.proc.stdout.close()
    with contextlib.suppress(OSError):
        child.log_path.unlink()


def remember(argv: Sequence[str], prompt_text: str, template: str | None, files: Sequence[Path]) -> bool:
    """Keep `argv` for the next run of this command line (see the module's note). Call it only for a
    run that succeeded at the first try with no GPU and no RPC worker."""
    if _run is None:
        return False
    argv = [str(a) for a in argv]
    expected = template.replace("{prompt}", _run.prompt) if template else _run.prompt
    if prompt_text != expected or argv.count(prompt_text) != 1:
        return False
    stored = [PROMPT if a == prompt_text else a for a in argv]
    try:
        fingerprints = []
        for f in [Path(argv[0]), *files]:
            st = os.stat(f)
            fingerprints.append([str(f), st.st_size, st.st_mtime_ns])
        _write(_run.memo, json.dumps({"schema": SCHEMA, "argv": stored, "template": template, "files": fingerprints}))
    except OSError:
        return False
    return True


def _write(path: Path, text: str) -> None:
    """Atomic (a reader sees the old memo or the new one) but not fsynced: it is only a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    memos = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in memos[:-KEEP]:
        with contextlib.suppress(OSError):
            old.unlink()
