"""The test helpers (tests/testkit) stay out of r1run, and fail as exceptions, not exits."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from testkit import cache

SRC = Path(__file__).resolve().parent.parent / "src" / "r1run"


def test_no_llama_build_raises_instead_of_exiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1RUN_TEST_CACHE", str(tmp_path))
    monkeypatch.delenv("R1RUN_LLAMA_BIN", raising=False)
    with pytest.raises(cache.NoLlamaBuild, match="pass --llama-bin DIR"):
        cache.llama_bin()
    monkeypatch.setenv("R1RUN_LLAMA_BIN", str(tmp_path / "env-bin"))
    assert cache.llama_bin() == tmp_path / "env-bin"
    assert cache.llama_bin(tmp_path / "given") == tmp_path / "given"


def test_r1run_neither_holds_nor_imports_the_test_helpers() -> None:
    assert importlib.util.find_spec("r1run.testing") is None
    assert not (SRC / "testing").exists()
    imports = re.compile(r"^\s*(from|import)\s+(testkit|r1run\.testing)\b", re.M)
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if imports.search(p.read_text())]
    assert offenders == []
