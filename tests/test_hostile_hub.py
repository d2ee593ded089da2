"""Downloads against a hub that misbehaves on purpose (issue: hostile hubs, full disks): nothing hangs, nothing
that may be good is lost, known-bad bytes are not kept, and every failure is one line with a hint."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from r1run.download import core
from r1run.download.fetch import DownloadFailed, RetryPolicy
from r1run.home import Home
from testkit.hubserver import HubServer

FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


@pytest.fixture()
def home(r1run_home: Path) -> Home:
    return Home.from_env()


def _download(home: Home, repo: str, include: str) -> core.DownloadResult:
    return core.download(core.DownloadRequest(repo=repo, include=(include,)), home, policy=FAST)


def test_a_file_named_like_a_glob_never_touches_other_files_partial_downloads(hub, home) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    hub.add_repo("evil/globs", {"*.gguf": data, "model.gguf": data[::-1]})
    folder = home.models / "evil/globs"
    folder.mkdir(parents=True)
    other = folder / "model.gguf.0123456789ab.part"  # another file's resumable partial download
    other.write_bytes(b"x" * 4096)
    result = _download(home, "evil/globs", "[*].gguf")
    assert [f.path for f in result.files] == ["*.gguf"]
    assert hashlib.sha256((folder / "*.gguf").read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert other.read_bytes() == b"x" * 4096  # before the fix: deleted by the glob `*.gguf.*.part`


def test_after_the_last_checksum_failure_the_known_bad_bytes_are_not_kept(hub, home) -> None:
    hub.add_repo("evil/corrupt", {"m.gguf": b"G" * (2 << 20)})
    hub.inject("corrupt", "m.gguf", times=100, at=1000)
    with pytest.raises(DownloadFailed, match="sha256 mismatch"):
        _download(home, "evil/corrupt", "m.gguf")
    folder = home.models / "evil/corrupt"
    assert not (folder / "m.gguf").exists()
    assert [p.stat().st_size for p in folder.glob("m.gguf.*.part")] in ([], [0])  # was: 2 MiB of known-bad bytes


@pytest.fixture()
def tiny_fs(tmp_path: Path):
    """A 2 MiB tmpfs (needs root and mount; skipped where the test cannot make one)."""
    import subprocess

    mnt = tmp_path / "tiny-fs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_disk_that_fills_while_the_manifest_is_saved_keeps_the_last_one(home, tiny_fs, monkeypatch) -> None:
    import errno
    import json

    from r1run.download import manifest as mf

    monkeypatch.setenv("R1RUN_MODELS", str(tiny_fs))
    good = mf.Manifest(model="m", quant="q", repo="o/m", revision="main", commit=None, include=["*"],
                       dir=str(tiny_fs), files=[mf.FileRecord(path="a.gguf", local_path=str(tiny_fs / "a.gguf"),
                                                              size=1, verified_at="2026-11-30T00:00:00Z")])
    path = mf.save(home, good)
    before = path.read_text()
    filler = tiny_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the file system to the last byte
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    bigger = good.model_copy(update={"files": good.files * 50})
    with pytest.raises(mf.NotSaved, match="the disk is full while saving"):
        mf.save(home, bigger)
    assert path.read_text() == before and json.loads(before)["files"][0]["verified_at"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no half-written temporary left


# --- malformed answers: one line, never a traceback -------------------------------------------------------

def _one_line_error(res, *needles: str) -> None:
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr and "Exception" not in res.stderr, res.stderr[-2000:]
    assert [line.split(":")[0] for line in res.stderr.splitlines() if line.startswith(("error:", "hint:"))] == [
        "error", "hint"], res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


def _cli_download(hub: HubServer, home: Home, *args: str):
    from clihelp import run_cli

    return run_cli("download", *args, env={"HF_ENDPOINT": hub.url, "R1RUN_HOME": str(home.root), "HF_TOKEN": "",
                                           "R1RUN_DOWNLOAD_BACKOFF": "0.01", "R1RUN_DOWNLOAD_ATTEMPTS": "2"},
                   timeout=120)


GOOD_FILE = {"m.gguf": b"GGUF" + b"\0" * 4096}
TREE = "/api/models/evil/repo/tree/"
LFS = {"oid": "a" * 64, "size": 4100, "pointerSize": 130}


@pytest.mark.parametrize("prefix, body, status, headers, needle", [
    ("/api/models/evil/repo", b"<html><body>Please log in to the Wi-Fi</body></html>", 200, None,
     "not the Hugging Face API's"),
    ("/api/models/evil/repo", b'["not", "an", "object"]', 200, None, "not the Hugging Face API's"),
    (TREE, b'{"path": "m.gguf"}', 200, None, "not the Hugging Face API's"),
    (TREE, b'[{"type": "file", "path": "m.gguf", "oid": "' + b"b" * 40 + b'"}]', 200, None,
     "not the Hugging Face API's"),
    (TREE, b'[{"type": "file", "path": "m.gguf", "size": -5, "oid": "' + b"b" * 40 + b'"}]', 200, None,
     "with size -5"),
    (TREE, b'[{"type": "file", "path": "m.gguf", "size": 4100, "oid": "' + b"b" * 40 +
     b'", "lfs": {"oid": "ab/../../x", "size": 4100, "pointerSize": 130}}]', 200, None, "not a sha256"),
    (TREE, b'[{"type": "file", "path": "m.gguf", "size": 1, "oid": "' + b"b" * 40 + b'"}, {"type": "file", '
     b'"path": "m.gguf/x.gguf", "size": 1, "oid": "' + b"c" * 40 + b'"}]', 200, None, "both as a file and as the folder"),
    ("/api/models/evil/repo", b"", 302, {"Location": "/api/models/evil/repo/revision/main"}, "redirects in a loop"),
])
def test_a_malformed_hub_answer_is_one_line(hub, home, prefix, body, status, headers, needle) -> None:
    hub.add_repo("evil/repo", GOOD_FILE)
    hub.override(prefix, status, body, headers)
    if status == 302:
        hub.override("/api/models/evil/repo/revision/main", 302, b"", {"Location": "/api/models/evil/repo"})
    _one_line_error(_cli_download(hub, home, "--repo", "evil/repo", "--include", "*.gguf"), needle)
    assert not list((home.models / "evil").rglob("*.gguf")) if (home.models / "evil").exists() else True


@pytest.mark.parametrize("text, needle", [
    (b'default_model = "x"\n[models.x]\nname = "\xff\xfe"\n', "is not UTF-8"),
    (b'[models.evil]\nrepo = "evil/.."\ndefault_quant = "Q"\n[models.evil.quants.Q]\ninclude = ["*.gguf"]\n',
     "is not a hub repository id"),
    (b'[models.".."]\nrepo = "a/b"\ndefault_quant = "Q"\n[models."..".quants.Q]\ninclude = ["*.gguf"]\n',
     "model key '..'"),
])
def test_a_hostile_user_catalog_is_one_line(home, text: bytes, needle: str) -> None:
    from clihelp import run_cli

    home.root.mkdir(parents=True, exist_ok=True)
    (home.root / "catalog.toml").write_bytes(text)
    res = run_cli("models", env={"R1RUN_HOME": str(home.root)})
    _one_line_error(res, needle)
    assert not (home.models / "_manifests").exists()


def test_a_dangling_models_link_is_named(hub, home, tmp_path) -> None:
    hub.add_repo("evil/repo", GOOD_FILE)
    home.root.mkdir(parents=True)
    (home.root / "models").symlink_to(tmp_path / "unmounted-disk")
    _one_line_error(_cli_download(hub, home, "--repo", "evil/repo", "--include", "*.gguf"),
                    "is a symbolic link to", "which does not exist")


def test_nonsense_hyperparameters_are_refused_not_planned(home, tmp_path) -> None:
    import gguf
    import numpy as np

    from clihelp import run_cli

    path = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_int32("llama.block_count", -1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for command in ("plan", "inspect"):
        _one_line_error(run_cli(command, str(path), env={"R1RUN_HOME": str(home.root)}), "llama.block_count is negative")


# --- waits, trickles and Ctrl-C: nothing hangs --------------------------------------------------------------

def _dl_env(hub: HubServer, home: Home, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "R1RUN_HOME": str(home.root), "HF_TOKEN": "", "HF_HUB_DISABLE_XET": "1",
            "R1RUN_DOWNLOAD_BACKOFF": "0.01", **extra}


def test_retry_after_is_capped_and_reported(hub, home) -> None:
    from clihelp import run_cli

    hub.add_repo("slow/repo", {"m.gguf": b"G" * (1 << 20)})
    hub.inject("429", "m.gguf", times=1, stall_s=100000)  # before: huggingface_hub slept 100001 s
    res = run_cli("download", "--repo", "slow/repo", "--include", "m.gguf",
                  env=_dl_env(hub, home, R1RUN_DOWNLOAD_MAX_WAIT="0.5"), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "HTTP 429, asked to wait 100000 s (r1run waits at most 0.5 s)" in res.stderr


def test_a_trickle_is_a_stall_retried_and_reported(home, monkeypatch, tmp_path) -> None:
    from clihelp import run_cli

    with HubServer(throttle=2000) as slow:  # 2 KB/s
        slow.add_repo("slow/repo", {"m.gguf": b"G" * (1 << 20)})
        res = run_cli("download", "--repo", "slow/repo", "--include", "m.gguf", timeout=120,
                      env=_dl_env(slow, home, R1RUN_DOWNLOAD_MIN_RATE="50000", R1RUN_DOWNLOAD_STALL_S="1",
                                  R1RUN_DOWNLOAD_ATTEMPTS="2", HF_HOME=str(tmp_path / "hf")))
    _one_line_error(res, "slower than 50000 bytes/s for 1 s")
    assert "retry m.gguf: slower than" in res.stderr  # reported while it happens, stderr not a terminal


def test_ctrl_c_stops_a_slow_download_at_once_and_keeps_its_bytes(home, tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time

    with HubServer(throttle=100_000) as slow:  # 100 KB/s: before, Ctrl-C waited for a 10 MiB chunk (~100 s)
        slow.add_repo("slow/repo", {"m.gguf": b"G" * (20 << 20)})
        env = {**os.environ, **_dl_env(slow, home, HF_HOME=str(tmp_path / "hf"))}
        p = subprocess.Popen([sys.executable, "-m", "r1run", "download", "--repo", "slow/repo", "--include", "m.gguf"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 60
            while slow.bytes_sent["m.gguf"] < 300_000 and time.monotonic() < deadline:
                time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            asked = time.monotonic()
            p.wait(timeout=30)
            took = time.monotonic() - asked
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 130 and "interrupted" in p.stderr.read()
        assert took < 10, f"Ctrl-C took {took:.1f} s"  # measured here: well under 1 s; the bound only catches a hang
