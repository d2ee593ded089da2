"""r1run adapts its command lines to the llama.cpp it finds: a real early-2025 build and the pinned one."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from clihelp import invoke
from r1run.home import Home
from r1run.llama import discover, manifest

pytestmark = pytest.mark.llama


@pytest.fixture(scope="module")
def old_bin(old_llama_home: Path) -> Path:
    m = manifest.default_build(Home(old_llama_home))
    assert m is not None
    return Path(m.path) / "bin"


def test_old_release_capabilities(old_llama_home: Path) -> None:
    home = Home(old_llama_home)
    install = discover.find(home)
    assert "completion" not in install.programs  # llama-completion did not exist yet
    caps = discover.capabilities(install, home)
    assert caps.oneshot_role == "chat" and caps.oneshot_flags == ["-no-cnv"]
    assert caps.rpc_server is not None and caps.rpc_server.endswith("/rpc-server")
    assert not caps.fit and not caps.n_cpu_moe and not caps.flash_attn_values


def _dry(llama_bin: Path, model: Path, *extra: str) -> list[str]:
    res = invoke("chat", str(model), "-p", "Hi", "-n", "8", "--dry-run", *extra, env={"R1RUN_LLAMA_BIN": str(llama_bin)})
    assert res.exit_code == 0, res.stderr
    return shlex.split(res.stdout)


def test_command_lines_for_old_and_new(old_bin: Path, llama_bin: Path, smollm2: Path, r1run_home: Path) -> None:
    old = _dry(old_bin, smollm2, "--", "-fa", "on")
    new = _dry(llama_bin, smollm2, "--", "-fa", "on")
    assert Path(old[0]).name == "llama-cli" and "-no-cnv" in old
    assert Path(new[0]).name == "llama-completion" and "-no-cnv" in new
    for argv in (old, new):
        assert argv[argv.index("-c") + 1] == "4096" and "--no-display-prompt" in argv and "-lv" in argv


def test_old_release_one_shot_for_real(old_bin: Path, smollm2: Path, r1run_home: Path) -> None:
    res = invoke("chat", str(smollm2), "-p", "What is the capital of France?", "-n", "16", "--temp", "0", "--json",
                 env={"R1RUN_LLAMA_BIN": str(old_bin)})
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["answer"].strip()
    assert data["summary"]["format"] == "llama_perf_context_print"  # the 2025 perf lines
    assert data["summary"]["gen"]["tps"] > 0
