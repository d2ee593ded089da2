"""A quant already fetched with `hf download` (the Hugging Face cache) is verified and used where it is:
no byte downloaded again, no copy, llama.cpp loads it from the cache; online and offline; a damaged
copy in the cache is left alone and r1run downloads its own.

The cache is filled by the real `hf` CLI against the local hub server, as a user would have done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import run_cli
from testkit.hubserver import HubServer

R1 = "unsloth/DeepSeek-R1-GGUF"
SHARDS = [f"DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]


@pytest.fixture()
def hub_env(r1run_home: Path, r1_tiny_split, tmp_path: Path, llama_bin: Path):
    with HubServer() as hub:
        hub.add_repo(R1, {**dict(zip(SHARDS, r1_tiny_split.paths, strict=True)),
                          "README.md": b"# DeepSeek-R1 GGUF (stand-in shards)\n"})
        env = {"R1RUN_HOME": str(r1run_home), "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"),
               "HF_TOKEN": "", "HF_HUB_DISABLE_XET": "1", "R1RUN_LLAMA_BIN": str(llama_bin),
               "HF_HUB_DISABLE_TELEMETRY": "1"}
        yield hub, env


def _hf_download(env: dict[str, str]) -> Path:
    hf = Path(sys.executable).with_name("hf")
    res = subprocess.run([str(hf), "download", R1, "--include", "DeepSeek-R1-UD-IQ1_S/*"],
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    snaps = list((Path(env["HF_HOME"]) / "hub" / "models--unsloth--DeepSeek-R1-GGUF" / "snapshots").iterdir())
    assert len(snaps) == 1
    return snaps[0]


def test_a_quant_in_the_hf_cache_is_verified_and_used_in_place(hub_env, tmp_path: Path) -> None:
    hub, env = hub_env
    snap = _hf_download(env)
    hub.reset_counters()
    found, = json.loads(run_cli("list", "--json", env=env).stdout)["models"]  # before r1run has looked at it
    assert (found["model"], found["quant"], found["state"], found["path"]) == (
        "deepseek-r1", "UD-IQ1_S", "in hf cache", str(snap / SHARDS[0]))

    dl = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--json", env=env)
    assert dl.returncode == 0, dl.stderr[-2000:]
    assert "is in the Hugging Face cache" in dl.stderr
    got = json.loads(dl.stdout)
    assert got["fetched_bytes"] == 0 and hub.file_gets() == []
    assert [f["outcome"] for f in got["files"]] == ["verified-on-disk"] * 3
    assert [f["local_path"] for f in got["files"]] == [str(snap / p) for p in SHARDS]
    assert not (Path(env["R1RUN_HOME"]) / "models" / R1).exists() or not any(
        (Path(env["R1RUN_HOME"]) / "models" / R1).rglob("*.gguf"))

    again = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--json", env=env)
    assert [f["outcome"] for f in json.loads(again.stdout)["files"]] == ["already-verified"] * 3

    listed = run_cli("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    row, = json.loads(listed.stdout)["models"]
    assert (row["model"], row["quant"], row["state"], row["where"]) == ("deepseek-r1", "UD-IQ1_S", "verified",
                                                                        "hf-cache")

    chat = run_cli("chat", "-p", "Hi", "-n", "4", "-t", "2", "--json", env=env)
    assert chat.returncode == 0, chat.stderr[-3000:]
    assert json.loads(chat.stdout)["path"] == str(snap / SHARDS[0])


def test_offline_the_hf_cache_is_adopted_by_its_blob_checksums(hub_env) -> None:
    hub, env = hub_env
    snap = _hf_download(env)
    dl = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--json", env={**env, "HF_HUB_OFFLINE": "1"})
    assert dl.returncode == 0, dl.stderr[-2000:]
    got = json.loads(dl.stdout)
    assert got["dir"] == str(snap) and got["fetched_bytes"] == 0


def test_a_damaged_copy_in_the_hf_cache_is_left_alone_and_downloaded_again(hub_env) -> None:
    hub, env = hub_env
    snap = _hf_download(env)
    damaged = (snap / SHARDS[1]).resolve()
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    before = damaged.read_bytes()

    dl = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--json", env=env)
    assert dl.returncode == 0, dl.stderr[-2000:]
    assert "does not match the hub's checksum; downloading to" in dl.stderr
    got = json.loads(dl.stdout)
    assert got["dir"] == str(Path(env["R1RUN_HOME"]) / "models" / R1)
    assert got["fetched_bytes"] == sum(f["size_bytes"] for f in got["files"])
    assert damaged.read_bytes() == before  # the user's cache is never written
