"""Which llama.cpp r1run uses: --llama-bin / R1RUN_LLAMA_BIN, then its default build, then PATH."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import invoke
from minillama import write_tree
from r1run.errors import BadInput, ToolMissing
from r1run.home import Home
from r1run.llama import discover


def _programs(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        p = folder / name
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o755)
    return folder


def test_discovery_order(tmp_path: Path, r1run_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(r1run_home)
    on_path = _programs(tmp_path / "path", "llama-cli", "llama-server", "rpc-server")
    monkeypatch.setenv("PATH", str(on_path))
    assert discover.find(home).origin == "PATH"
    assert discover.find(home).programs["rpc-server"] == on_path / "rpc-server"

    tree = write_tree(tmp_path / "llama.cpp")
    monkeypatch.setenv("PATH", f"{on_path}:/usr/bin:/bin")
    assert invoke("build", "--source", str(tree), "--backend", "cpu").exit_code == 0
    found = discover.find(home)
    assert found.origin == "build local-cpu" and found.build is not None

    explicit = _programs(tmp_path / "explicit", "llama-completion")
    chosen = discover.find(home, explicit)
    assert chosen.origin == f"--llama-bin {explicit}" and set(chosen.programs) == {"completion"}
    assert [c.origin for c in discover.find_all(home, explicit)] == [f"--llama-bin {explicit}", "build local-cpu",
                                                                      "PATH"]


def test_nothing_found(tmp_path: Path, r1run_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing) as info:
        discover.find(Home(r1run_home))
    assert "r1run build" in (info.value.hint or "")


def test_bad_llama_bin(tmp_path: Path, r1run_home: Path) -> None:
    with pytest.raises(BadInput, match="no such folder"):
        discover.find(Home(r1run_home), tmp_path / "missing")
    with pytest.raises(BadInput, match="holds no llama.cpp programs"):
        discover.find(Home(r1run_home), tmp_path)


def test_doctor_without_llama_fails_with_hint(tmp_path: Path, r1run_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # cmake and a compiler, no llama.cpp
    res = invoke("doctor", "--json")
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["ok"] is False
    llama = next(c for c in report["checks"] if c["name"] == "llama.cpp")
    assert llama["status"] == "fail" and "r1run build" in llama["hint"]
    assert {c["name"] for c in report["checks"]} >= {"os", "cpu", "ram", "gpu", "cmake", "compiler", "git", "ccache",
                                                     "disk", "hf token", "hf endpoint"}


def test_doctor_never_prints_the_token(r1run_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hf_abcdefSECRETtoken123456"
    monkeypatch.setenv("HF_TOKEN", secret)
    res = invoke("doctor")
    assert secret not in res.stdout + res.stderr
    assert "set (from HF_TOKEN)" in res.stdout


@pytest.mark.llama
def test_doctor_with_the_real_build(llama_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1RUN_HOME", str(llama_home))
    res = invoke("doctor", "--json")
    report = json.loads(res.stdout)
    assert res.exit_code == 0, [c for c in report["checks"] if c["status"] == "fail"]
    (used,) = [i for i in report["llama"] if i["used"]]
    assert used["build_number"] == 11434 and used["capabilities"]["oneshot_role"] == "completion"
    human = invoke("doctor")
    assert "one-shot via completion -no-cnv" in human.stdout
