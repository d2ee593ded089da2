"""One run configuration: the flags `r1run plan --json` prints are exactly the flags `r1run chat --dry-run` runs,
for a real model and both R1-shaped layouts, on this machine and on described ones (one with a GPU)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from clihelp import invoke

pytestmark = pytest.mark.llama

MACHINES = {
    "detected": [],
    "cpu-only 8 GiB": ["--gpu-memory", "0", "--ram", "8GiB", "--bandwidth", "20GB/s"],
    # 1 GiB of each device is left free, so 1.2 GiB holds about 200 MiB: enough for some layers, not all
    "a small GPU": ["--gpu-memory", "1.2GiB", "--gpu-name", "RTX 4090", "--ram", "16GiB", "--bandwidth", "cpu=20GB/s"],
}


def _plan_flags(model: Path, machine: list[str], *extra: str) -> list[str]:
    res = invoke("plan", str(model), "-t", "2", *machine, *extra, "--json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)["rows"]
    return row["flags"]


def _chat_argv(model: Path, machine: list[str], *extra: str) -> list[str]:
    res = invoke("chat", str(model), "-p", "Hi", "-t", "2", *machine, *extra, "--dry-run")
    assert res.exit_code == 0, res.output
    return shlex.split(res.stdout)


@pytest.mark.parametrize("machine", list(MACHINES), ids=list(MACHINES))
@pytest.mark.parametrize("which", ["smollm2", "r1_tiny", "r1_tiny_mla"])
def test_plan_prints_exactly_the_flags_chat_runs(request, home: Path, which: str, machine: str) -> None:
    fixture = request.getfixturevalue(which)
    model = fixture if isinstance(fixture, Path) else fixture.path
    flags = _plan_flags(model, MACHINES[machine])
    argv = _chat_argv(model, MACHINES[machine])
    assert argv[1:3] == ["-m", str(model)]
    assert argv[3:3 + len(flags)] == flags, (flags, argv)
    assert argv[3 + len(flags)] == "-p"  # what follows is the one-shot program's own business


def test_a_described_gpu_changes_the_placement_the_same_way_in_both(home: Path, r1_tiny) -> None:
    cpu = _plan_flags(r1_tiny.path, MACHINES["cpu-only 8 GiB"])
    gpu = _plan_flags(r1_tiny.path, MACHINES["a small GPU"])
    assert cpu[cpu.index("-ngl") + 1] == "0"
    assert gpu[gpu.index("-ngl") + 1] != "0"
    assert _chat_argv(r1_tiny.path, MACHINES["a small GPU"])[3:3 + len(gpu)] == gpu


def test_user_choices_reach_both_alike(home: Path, smollm2: Path) -> None:
    given = ["-c", "2048", "-ngl", "0", "-ctk", "q8_0", "-fa", "on", "-ub", "256", "--temp", "0.3"]
    flags = _plan_flags(smollm2, [], *given)
    assert flags == ["-c", "2048", "-t", "2", "-ngl", "0", "-ctk", "q8_0", "-fa", "on", "-ub", "256",
                     "--temp", "0.3"]
    assert _chat_argv(smollm2, [], *given)[3:3 + len(flags)] == flags


def test_an_mla_layout_file_runs_on_llama_cpp_with_one_cache_type(home: Path, r1_tiny_mla) -> None:
    # llama.cpp b11434 refused r1run's default here: "model does not support different K (q4_0) and V (f16)
    # cache types" (the MLA layout keeps V inside K); the default now brings V along, and it really runs
    res = invoke("chat", str(r1_tiny_mla.path), "-p", "Hi", "-n", "4", "-t", "2", "-c", "512", "-ctk", "q4_0",
                 "--json")
    assert res.exit_code == 0, res.output
    assert "V cache q4_0 too" in res.stderr
    # without -ctk, the recommended q4_0 (made for the original layout's large cache) gives way to f16
    default = invoke("chat", str(r1_tiny_mla.path), "-p", "Hi", "--dry-run")
    assert "KV cache f16 (this model's MLA layout" in default.stderr
    assert "-ctk" not in default.stdout.split() and "-ctv" not in default.stdout.split()
    assert json.loads(res.stdout)["schema"] == "r1run.chat/2"  # llama.cpp loaded it and answered (exit 0)
    # without flash attention a quantized V cannot be: both stay f16
    off = _chat_argv(r1_tiny_mla.path, [], "-fa", "off")
    assert "-ctk" not in off or off[off.index("-ctk") + 1] == "f16"
    assert "-ctv" not in off
    # a mismatch the user asked for is refused before anything loads, with what to pass instead
    bad = invoke("chat", str(r1_tiny_mla.path), "-p", "Hi", "-ctk", "q4_0", "-ctv", "f16", "--dry-run")
    assert bad.exit_code == 2 and "one type for K and V" in bad.stderr and "-ctv q4_0" in bad.stderr
