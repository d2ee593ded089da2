"""`r1run list`, `rm`, `ps` and `stop` as a user runs them: a real download from the local hub, a real
`r1run serve` (llama-server) and `r1run worker` (the RPC server), real signals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clihelp import run_cli
from nethelp import free_port
from r1run.home import Home
from r1run.running import Record, folder
from testkit.hubserver import HubServer

pytestmark = pytest.mark.llama

R1 = "unsloth/DeepSeek-R1-GGUF"
SHARDS = [f"DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]


@pytest.fixture()
def downloaded(r1run_home: Path, r1_tiny_split, tmp_path: Path, llama_bin: Path):
    with HubServer() as hub:
        hub.add_repo(R1, {**dict(zip(SHARDS, r1_tiny_split.paths, strict=True)), "README.md": b"# stand-in\n"})
        env = {"R1RUN_HOME": str(r1run_home), "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"),
               "HF_TOKEN": "", "HF_HUB_DISABLE_XET": "1", "R1RUN_LLAMA_BIN": str(llama_bin)}
        dl = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", env=env)
        assert dl.returncode == 0, dl.stderr[-2000:]
        yield env


def _serve(env: dict[str, str], port: int) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "r1run", "serve", "--port", str(port), "-c", "512", "-t", "2"],
                         env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    for line in p.stdout:
        if line.startswith("example:"):
            return p
    p.wait(timeout=30)
    raise AssertionError(f"serve ended early: {p.stderr.read() if p.stderr else ''}")


def test_list_then_rm_frees_the_quants_files_and_only_them(downloaded: dict[str, str]) -> None:
    env = downloaded
    listed = run_cli("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    row, = json.loads(listed.stdout)["models"]
    assert (row["model"], row["quant"], row["state"], row["where"]) == ("deepseek-r1", "UD-IQ1_S", "verified", "r1run")
    assert row["on_disk_bytes"] == row["size_bytes"] > 0 and row["last_used_at"].endswith("Z")
    text = run_cli("list", env={**env, "COLUMNS": "80"})
    assert "deepseek-r1:UD-IQ1_S" in text.stdout and "verified" in text.stdout

    files = [Path(p) for p in (Path(row["dir"]) / s for s in SHARDS)]
    neighbour = files[0].parent / "notes.txt"  # the user's own file in the same folder
    neighbour.write_text("mine")
    other_partial = files[0].parent / "Other-00001-of-00002.gguf.abc.part"
    other_partial.write_bytes(b"x" * 10)

    asked = run_cli("rm", "deepseek-r1:UD-IQ1_S", env=env)  # stdin is not a terminal: must not delete silently
    assert asked.returncode == 2 and "pass --yes" in asked.stderr
    assert all(f.is_file() for f in files)

    dry = run_cli("rm", "deepseek-r1", "-q", "UD-IQ1_S", "--dry-run", "--json", env=env)
    plan = json.loads(dry.stdout)
    assert sorted(plan["deleted"]) == sorted(map(str, files)) and plan["removed"] is False
    assert plan["freed_bytes"] == row["size_bytes"]

    gone = run_cli("rm", "deepseek-r1:UD-IQ1_S", "--yes", env=env)
    assert gone.returncode == 0, gone.stderr
    assert "removed deepseek-r1:UD-IQ1_S" in gone.stderr
    assert not any(f.exists() for f in files)
    assert neighbour.read_text() == "mine" and other_partial.is_file()
    assert json.loads(run_cli("list", "--json", env=env).stdout)["models"] == []
    usage = json.loads((Path(env["R1RUN_HOME"]) / "usage.json").read_text())["models"]
    assert [u for u in usage if u["model"] == "deepseek-r1"] == []

    again = run_cli("rm", "deepseek-r1:UD-IQ1_S", "-y", env=env)
    assert again.returncode == 2 and "is not downloaded" in again.stderr and "Traceback" not in again.stderr


def test_ps_shows_a_server_rm_refuses_it_and_stop_ends_it(downloaded: dict[str, str]) -> None:
    env = downloaded
    port = free_port()
    server = _serve(env, port)
    try:
        ps = run_cli("ps", "--json", env=env)
        x, = json.loads(ps.stdout)["running"]
        assert (x["pid"], x["kind"], x["name"], x["url"]) == (server.pid, "serve", "deepseek-r1:UD-IQ1_S",
                                                               f"http://127.0.0.1:{port}")
        assert "llama-server" in x["programs"] and x["rss_bytes"] > 0 and x["uptime_s"] >= 0
        children = [psutil.Process(pid) for pid in x["children"]]
        table = run_cli("ps", env={**env, "COLUMNS": "80"})
        assert str(server.pid) in table.stdout and "deepseek-r1:UD-IQ1_S" in table.stdout

        refused = run_cli("rm", "deepseek-r1:UD-IQ1_S", "--yes", env=env)
        assert refused.returncode == 1 and "in use by r1run serve" in refused.stderr
        assert f"r1run stop {server.pid}" in refused.stderr
        listed = json.loads(run_cli("list", "--json", env=env).stdout)["models"]
        assert listed[0]["in_use_by"] == [server.pid]

        stopped = run_cli("stop", str(port), env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped: serve deepseek-r1:UD-IQ1_S (pid {server.pid})" in stopped.stderr
        assert server.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        if server.poll() is None:
            server.kill()
    assert json.loads(run_cli("ps", "--json", env=env).stdout)["running"] == []
    assert run_cli("rm", "deepseek-r1:UD-IQ1_S", "--yes", env=env).returncode == 0


def test_a_worker_is_listed_and_stopped_by_pid(r1run_home: Path, llama_bin: Path) -> None:
    env = {"R1RUN_HOME": str(r1run_home), "R1RUN_LLAMA_BIN": str(llama_bin)}
    port = free_port()
    w = subprocess.Popen([sys.executable, "-m", "r1run", "worker", "--port", str(port), "-t", "1"],
                         env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert w.stderr is not None
        for line in w.stderr:
            if "on the main machine" in line:
                break
        x, = json.loads(run_cli("ps", "--json", env=env).stdout)["running"]
        assert (x["kind"], x["url"]) == ("worker", f"127.0.0.1:{port}")
        kids = [psutil.Process(pid) for pid in x["children"]]
        assert kids
        res = run_cli("stop", str(w.pid), "--json", env=env)
        assert json.loads(res.stdout)["stopped"][0]["outcome"] == "stopped"
        w.wait(timeout=30)
        _, alive = psutil.wait_procs(kids, timeout=10)
        assert alive == []
    finally:
        if w.poll() is None:
            w.kill()


def test_records_of_dead_or_reused_pids_are_cleaned_never_trusted(r1run_home: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs = folder(Home(r1run_home))
    runs.mkdir(parents=True)
    for pid, created in ((dead.pid, time.time()), (os.getpid(), 1.0)):  # died; pid alive but another process
        rec = Record(kind="serve", name="ghost", pid=pid, created=created, url="http://127.0.0.1:1")
        (runs / f"{pid}.json").write_text(json.dumps({"schema": "r1run.running/1", **rec.__dict__}))
    (runs / "junk.json").write_text("{not json")
    res = run_cli("ps", "--json", env={"R1RUN_HOME": str(r1run_home)})
    assert json.loads(res.stdout)["running"] == []
    assert list(runs.iterdir()) == []
    stop = run_cli("stop", "ghost", env={"R1RUN_HOME": str(r1run_home)})
    assert stop.returncode == 2 and "no running r1run server" in stop.stderr
