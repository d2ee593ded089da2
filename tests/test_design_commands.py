"""The design's four commands, in its order, as a new user types them:

    r1run build
    r1run download --quant IQ1_S
    r1run chat --gpu-layers auto
    r1run bench

against a local hub that serves DeepSeek-R1's repository with small stand-in shards for UD-IQ1_S
(a real, runnable deepseek2 IQ1_S model split in three by llama-gguf-split), and the real llama.cpp.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import run_cli
from r1run.home import Home
from r1run.llama import manifest
from testkit.hubserver import HubServer

pytestmark = pytest.mark.llama

R1 = "unsloth/DeepSeek-R1-GGUF"


def _with_test_build(home: Path, llama_home: Path) -> None:
    """Give the fresh home the suite's llama.cpp build, so `r1run build` has nothing to do (it would take 9 min)."""
    built = manifest.default_build(Home(llama_home))
    assert built is not None
    (home / "builds").mkdir(parents=True)
    (home / "builds" / built.id).symlink_to(Path(built.path))
    manifest.set_default(Home(home), built.id)


@pytest.fixture()
def hub_env(r1run_home: Path, llama_home: Path, r1_tiny_split, tmp_path: Path):
    files = {f"DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-{i:05d}-of-00003.gguf": p
             for i, p in enumerate(r1_tiny_split.paths, start=1)}
    _with_test_build(r1run_home, llama_home)
    with HubServer() as hub:
        hub.add_repo(R1, {**files, "README.md": b"# DeepSeek-R1 GGUF (stand-in shards)\n"})
        yield {"R1RUN_HOME": str(r1run_home), "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"),
               "HF_TOKEN": "", "HF_HUB_DISABLE_XET": "1", "R1RUN_LLAMA_BIN": ""}


def test_the_designs_four_commands_run_the_quant_just_downloaded(hub_env: dict[str, str]) -> None:
    build = run_cli("build", env=hub_env)
    assert build.returncode == 0, build.stderr[-2000:]
    assert "up to date" in build.stderr

    dl = run_cli("download", "--quant", "IQ1_S", "--json", env=hub_env)
    assert dl.returncode == 0, dl.stderr[-2000:]
    got = json.loads(dl.stdout)
    assert (got["model"], got["quant"]) == ("deepseek-r1", "UD-IQ1_S")

    chat = run_cli("chat", "--gpu-layers", "auto", "-p", "Hello", "-n", "8", "-t", "2", "--json", env=hub_env)
    assert chat.returncode == 0, chat.stderr[-3000:]
    assert "model: deepseek-r1 UD-IQ1_S: the model you downloaded last" in chat.stderr
    answer = json.loads(chat.stdout)
    assert answer["model"] == "deepseek-r1"
    assert answer["path"].endswith("DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf")
    assert [a["exit_code"] for a in answer["attempts"]] == [0]

    bench = run_cli("bench", "--prompt-tokens", "16", "-n", "8", "-r", "1", "-t", "2", "--json", env=hub_env)
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert "model: deepseek-r1 UD-IQ1_S: the model you ran last" in bench.stderr
    report = json.loads(bench.stdout)
    assert report["model"]["path"].endswith("DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf")


def test_without_a_model_plan_and_inspect_use_the_last_download(hub_env: dict[str, str]) -> None:
    assert run_cli("download", "--quant", "IQ1_S", env=hub_env).returncode == 0
    plan = run_cli("plan", "--json", env=hub_env)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "model: deepseek-r1 UD-IQ1_S: the model you downloaded last" in plan.stderr
    rows = json.loads(plan.stdout)["rows"]
    assert [(r["quant"], r["origin"]) for r in rows] == [("UD-IQ1_S", "download")]

    info = run_cli("inspect", "--json", env=hub_env)
    assert info.returncode == 0, info.stderr[-2000:]
    assert "the model you downloaded last" in info.stderr
    assert json.loads(info.stdout)["architecture"] == "deepseek2"
