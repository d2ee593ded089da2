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
