"""Log files: one naming style for every kind, and only the newest R1RUN_LOG_KEEP of each kind kept."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from clihelp import invoke
from r1run.errors import BadInput
from r1run.home import log_keep, log_path_for

NAME = re.compile(r"^(chat|serve|worker|bench|build|download)-\d{8}T\d{6}\.\d{6}Z(-[\w.-]+)?\.log$")


def _touch(path: Path, age: int) -> Path:
    path.write_text("x")
    t = 1_700_000_000 + age
    os.utime(path, (t, t))
    return path


def test_one_naming_style_and_the_newest_n_of_each_kind_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("R1RUN_LOG_KEEP", "3")
    old_style = _touch(tmp_path / "download-20250101-120000.log", 0)  # the style r1run wrote before
    chats = [_touch(log_path_for(tmp_path, "chat"), i) for i in range(1, 6)]
    serve = _touch(log_path_for(tmp_path, "serve"), 10)
    assert all(NAME.match(p.name) for p in [*chats, serve]), [p.name for p in chats]
    left = sorted(p.name for p in tmp_path.iterdir())
    # a new log is created after pruning to keep - 1: the 3 newest chats remain once the 5th is written
    assert [p.name for p in chats[-3:]] == [n for n in left if n.startswith("chat-")][-3:]
    assert len([n for n in left if n.startswith("chat-")]) == 3
    assert serve.exists() and old_style.exists()  # other kinds untouched
    for i in range(3):
        _touch(log_path_for(tmp_path, "download", stamp=f"2026010{i}T000000.000000Z"), 20 + i)
    assert not old_style.exists() and len(list(tmp_path.glob("download-*.log"))) == 3
    bench = log_path_for(tmp_path, "bench", detail="2")
    assert NAME.match(bench.name) and bench.name.endswith("-2.log")


def test_keep_zero_keeps_everything_and_a_bad_value_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("R1RUN_LOG_KEEP", "0")
    for i in range(4):
        _touch(log_path_for(tmp_path, "chat"), i)
    assert len(list(tmp_path.glob("chat-*.log"))) == 4
    monkeypatch.delenv("R1RUN_LOG_KEEP")
    assert log_keep() == 20
    monkeypatch.setenv("R1RUN_LOG_KEEP", "lots")
    with pytest.raises(BadInput, match="R1RUN_LOG_KEEP='lots' is not a whole number"):
        log_path_for(tmp_path, "chat")


@pytest.mark.llama
def test_real_chats_leave_at_most_n_logs(home: Path, smollm2: Path, monkeypatch) -> None:
    monkeypatch.setenv("R1RUN_LOG_KEEP", "2")
    for _ in range(3):
        res = invoke("chat", str(smollm2), "-p", "Hi", "-n", "2")
        assert res.exit_code == 0, res.stderr
    logs = sorted((home / "logs").glob("chat-*.log"))
    assert len(logs) == 2 and all(NAME.match(p.name) for p in logs)
    assert str(logs[-1]) in res.stderr  # the log the last run named is one of those kept
