"""Running the real CLI in tests: in-process through Typer's CliRunner, or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from r1run.cli.app import app


def invoke(*args: str, env: dict[str, str] | None = None):
    """Run `r1run ARGS` in-process; unexpected exceptions propagate (never hidden)."""
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m r1run ARGS` as a real process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "r1run", *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout)
