"""A home r1run cannot write, and files that are not files: one clear line, never a hang or a traceback.

- R1RUN_HOME pointing at a file: commands that need nothing written still work (plan, inspect, a chat, with
  logs in a temporary folder and saying so); download says what is wrong with the home.
- A FIFO or a device given as a model: refused before anything blocks on it.
- An unreadable file: the error alone, no "Exception ignored in: FileSource.__del__".
(A read-only home cannot be tested as root, who writes anyway; the same code path serves both.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clihelp import run_cli

pytestmark = pytest.mark.llama


@pytest.fixture()
def file_home(tmp_path: Path, llama_bin: Path) -> dict[str, str]:
    home = tmp_path / "home-is-a-file"
    home.write_text("not a folder\n")
    return {"R1RUN_HOME": str(home), "R1RUN_LLAMA_BIN": str(llama_bin), "HF_ENDPOINT": "http://127.0.0.1:9"}


def test_a_home_that_is_a_file_still_plans_inspects_and_chats(file_home: dict[str, str], smollm2: Path) -> None:
    plan = run_cli("plan", str(smollm2), "--json", env=file_home)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["rows"][0]["fits_memory"] is True
    info = run_cli("inspect", str(smollm2), env=file_home)
    assert info.returncode == 0 and "Traceback" not in info.stderr

    chat = run_cli("chat", str(smollm2), "-p", "Hi", "-n", "4", "-t", "2", "--json", env=file_home)
    assert chat.returncode == 0, chat.stderr
    assert "is a file, not a folder; logs go to" in chat.stderr
    log = Path(json.loads(chat.stdout)["log"])
    assert log.is_file() and not log.is_relative_to(file_home["R1RUN_HOME"])


def test_a_home_that_is_a_file_refuses_a_download_in_one_line(file_home: dict[str, str]) -> None:
    res = run_cli("download", "smollm2", "--json", env=file_home)
    assert res.returncode == 2
    assert "error: cannot download into r1run's home: R1RUN_HOME=" in res.stderr
    assert "is a file, not a folder" in res.stderr and "Traceback" not in res.stderr
    assert json.loads(res.stdout)["schema"] == "r1run.error/1"


@pytest.mark.parametrize("command", ["inspect", "plan"])
def test_a_fifo_or_a_device_is_refused_not_waited_on(tmp_path: Path, r1run_home: Path, command: str) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    res = run_cli(command, str(fifo), timeout=60)  # before the fix: blocked forever in open()
    assert res.returncode == 2 and f"{fifo} is a FIFO, not a regular file" in res.stderr
    dev = run_cli(command, "/dev/zero", timeout=60)
    assert dev.returncode != 0 and "Traceback" not in dev.stderr


def test_an_unreadable_file_gives_its_error_alone(tmp_path: Path, r1run_home: Path) -> None:
    from r1run.errors import GGUFError
    from r1run.gguf.source import FileSource

    with pytest.raises(GGUFError):
        FileSource(tmp_path / "missing.gguf")
    res = run_cli("inspect", str(tmp_path / "nothing-here.gguf"))
    assert res.returncode == 2 and "Exception ignored" not in res.stderr and "AttributeError" not in res.stderr
