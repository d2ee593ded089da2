"""The local hub speaks what huggingface_hub expects: its own snapshot_download and HfApi work against it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError

from testkit.hubserver import HubServer, make_shard_set

REPO = "tests/tiny-GGUF"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return make_shard_set(tmp_path_factory.mktemp("src"), "Tiny-Q4_K_M", 2, 1 << 20)


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("cdn_host", [None, "localhost"])
def test_snapshot_download_gets_the_same_bytes(files, tmp_path, cdn_host):
    with HubServer(cdn_host=cdn_host) as hub:
        hub.add_repo(REPO, {**files, "README.md": b"hello\n"})
        out = Path(snapshot_download(REPO, local_dir=tmp_path / "out", endpoint=hub.url, allow_patterns=["*.gguf"]))
        for rel, src in files.items():
            assert digest(out / rel) == digest(src)
        assert not (out / "README.md").exists()


def test_tree_entries_pages_and_lfs_ids(files):
    with HubServer(page_size=1) as hub:
        repo = hub.add_repo(REPO, {**files, "README.md": b"hello\n"})
        api = HfApi(endpoint=hub.url)
        info = api.model_info(REPO, revision="main")
        assert info.sha == repo.commit
        entries = {e.path: e for e in api.list_repo_tree(REPO, revision=repo.commit, recursive=True)}
        assert set(entries) == {"Tiny-Q4_K_M", *files, "README.md"}
        shard = next(iter(files))
        assert entries[shard].lfs.sha256 == digest(files[shard]) and entries[shard].size == files[shard].stat().st_size
        assert entries["README.md"].lfs is None
        assert entries["README.md"].blob_id == hashlib.sha1(b"blob 6\0hello\n").hexdigest()
        assert sum("cursor=" in r.target for r in hub.requests) == len(entries) - 1


def test_ranges_and_error_codes(files):
    shard, src = next(iter(files.items()))
    size = src.stat().st_size
    with HubServer() as hub:
        repo = hub.add_repo(REPO, files)
        hub.add_repo("tests/gated", files, gated=True)
        url = f"{hub.url}/{REPO}/resolve/{repo.commit}/{shard}"
        with httpx2.Client() as c:
            r = c.get(url, headers={"Range": "bytes=100-"})
            assert r.status_code == 206 and r.headers["Content-Range"] == f"bytes 100-{size - 1}/{size}"
            assert r.content == src.read_bytes()[100:]
            assert r.headers["X-Repo-Commit"] == repo.commit and r.headers["ETag"] == f'"{digest(src)}"'
            assert c.get(url, headers={"Range": f"bytes={size}-"}).status_code == 416
            assert c.head(url).headers["X-Linked-Size"] == str(size)
        api = HfApi(endpoint=hub.url)
        with pytest.raises(RepositoryNotFoundError):
            api.model_info("tests/nothing")
        with pytest.raises(GatedRepoError):
            api.hf_hub_download("tests/gated", shard)


def test_huggingface_hub_alone_keeps_a_corrupted_body(files, tmp_path):
    """huggingface_hub 2.4 does not check sha256 after a download (a same-length corrupted body is kept);
    r1run must."""
    shard, src = next(iter(files.items()))
    with HubServer() as hub:
        hub.add_repo(REPO, files)
        hub.inject("corrupt", shard, at=5000)
        out = Path(snapshot_download(REPO, local_dir=tmp_path / "out", endpoint=hub.url))
        assert (out / shard).stat().st_size == src.stat().st_size
        assert digest(out / shard) != digest(src)
