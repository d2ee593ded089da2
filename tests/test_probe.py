"""Probing llama.cpp programs: flag parsing on recorded help, and capabilities of the real build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1run.home import Home
from r1run.llama import discover, probe

DATA = Path(__file__).parent / "data" / "help"


def test_flags_from_common_args_layout() -> None:
    flags = probe.parse_help_flags((DATA / "llama-cli.txt").read_text())
    for flag in ("-t", "--threads", "-ot", "--override-tensor", "-ncmoe", "--n-cpu-moe", "-cmoe", "--cpu-moe",
                 "--rpc", "--list-devices", "-st", "--single-turn", "-fit", "--fit", "-fa", "--flash-attn",
                 "--jinja", "--no-jinja", "--reasoning-format"):
        assert flag in flags, flag
    assert "-no-cnv" not in flags  # current llama-cli is the chat client: no raw one-shot mode
    assert "--tensor" not in flags and "--buffer" not in flags  # words of an argument, not flags


def test_flags_from_bench_and_rpc_server_layouts() -> None:
    bench = probe.parse_help_flags((DATA / "llama-bench.txt").read_text())
    assert {"-r", "--repetitions", "-o", "--output", "-rpc", "--rpc", "--list-devices"} <= set(bench)
    rpc = probe.parse_help_flags((DATA / "ggml-rpc-server.txt").read_text())
    assert {"-H", "--host", "-p", "--port", "-c", "--cache", "-t", "--threads", "-d", "--device"} <= set(rpc)


@pytest.mark.parametrize(
    ("text", "number", "commit"),
    [
        ("version: 0.6.0-dev (build 0, commit unknown)\nbuilt with GNU 12.2.0 for Linux x86_64", None, None),
        ("version: 0.6.0-dev (build 11434, commit 1a2b3c4)", 11434, "1a2b3c4"),
        ("version: 4743 (d07c6213)\nbuilt with cc (Debian 12.2.0-14) 12.2.0 for x86_64-linux-gnu", 4743, "d07c6213"),
        ("no version here", None, None),
    ],
)
def test_parse_version(text: str, number: int | None, commit: str | None) -> None:
    assert probe.parse_version(text) == (number, commit)


def _p(role: str, *flags: str, fa: bool = False) -> probe.ProgramProbe:
    return probe.ProgramProbe(f"/x/{role}", True, 4743, None, list(flags), flash_attn_values=fa)


def test_derive_old_release_uses_llama_cli_no_cnv() -> None:
    # Early 2025: no llama-completion; llama-cli still had -no-cnv; rpc-server under its old name.
    caps = probe.derive({"chat": _p("chat", "-m", "-no-cnv", "--no-conversation", "-ngl", "--rpc"),
                         "server": _p("server", "-m", "--rpc"), "rpc-server": _p("rpc-server", "-p", "-H")})
    assert caps.oneshot_role == "chat" and caps.oneshot_flags == ["-no-cnv"]
    assert not caps.fit and not caps.n_cpu_moe and not caps.chat_single_turn and not caps.flash_attn_values
    assert caps.rpc and caps.rpc_server == "/x/rpc-server"


def test_derive_new_release_uses_llama_completion() -> None:
    caps = probe.derive({"chat": _p("chat", "-m", "-st", "--fit"),
                         "completion": _p("completion", "-m", "-no-cnv", "--n-cpu-moe", "-ot", "--fit", fa=True)})
    assert caps.oneshot_role == "completion" and caps.oneshot_flags == ["-no-cnv"]
    assert caps.fit and caps.n_cpu_moe and caps.override_tensor and caps.chat_single_turn and caps.flash_attn_values
    assert caps.rpc_server is None


@pytest.mark.llama
def test_real_build_capabilities(llama_home: Path) -> None:
    home = Home(llama_home)
    install = discover.find(home)
    assert install.origin.startswith("build b11434-cpu")
    caps = discover.capabilities(install, home)
    assert caps.build_number == 11434  # passed to CMake: the sdist has no git metadata
    assert caps.oneshot_role == "completion" and caps.oneshot_flags == ["-no-cnv"]
    assert caps.chat_role == "chat" and caps.chat_single_turn
    assert caps.fit and caps.n_cpu_moe and caps.cpu_moe and caps.override_tensor and caps.rpc
    assert caps.list_devices and caps.flash_attn_values and caps.jinja and caps.reasoning_format
    assert caps.rpc_server is not None and caps.rpc_server.endswith("ggml-rpc-server")
    assert all(p.ok for p in caps.programs.values())
    assert set(caps.programs) >= {"chat", "completion", "server", "bench", "gguf-split", "fit-params", "quantize",
                                  "imatrix", "rpc-server"}


@pytest.mark.llama
def test_probe_is_cached_by_path_and_mtime(llama_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "probes.json"
    program = llama_bin / "llama-server"
    first = probe.probe_cached(program, cache)
    assert first.ok and json.loads(cache.read_text())["programs"][str(program.resolve())]

    def boom(path: Path) -> probe.ProgramProbe:
        raise AssertionError("probed again despite the cache")

    monkeypatch.setattr(probe, "probe_program", boom)
    assert probe.probe_cached(program, cache) == first

    copy = tmp_path / "llama-server"
    copy.write_bytes(program.read_bytes())
    copy.chmod(0o755)
    with pytest.raises(AssertionError, match="probed again"):
        probe.probe_cached(copy, cache)  # another path (or a new mtime) is probed afresh
