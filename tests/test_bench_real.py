"""`r1run bench` against the real llama-bench: short sweeps, --save/--history, --tune then chat, a model that fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clihelp import invoke

pytestmark = pytest.mark.llama

TINY = ["--prompt-tokens", "16", "-n", "8", "-r", "2"]


def _json(res) -> dict:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_sweep_smollm2(home: Path, smollm2: Path) -> None:
    (home / "cache" / "arithmetic.json").unlink(missing_ok=True)  # this CPU's arithmetic is measured afresh
    res = invoke("bench", str(smollm2), "--threads", "1,2", *TINY, "--bandwidth", "20GB/s", "--json")
    # the expected speeds need this CPU's arithmetic: bench says while it measures it (not a silent pause)
    assert "measuring this CPU's Q4_1 arithmetic with llama-bench" in res.stderr
    rec = _json(res)
    assert rec["schema"] == "r1run.bench/2"
    rows = rec["rows"]
    # chat's own configuration (1 or 2 threads, by how busy the machine is) is one of the sweep's rows
    assert sorted(r["config"]["threads"] for r in rows) == [1, 2]
    default = [r for r in rows if "r1run default" in r["labels"]]
    assert len(default) == 1 and default[0]["config"]["flash_attn"] == "auto"
    assert "-fa" in default[0]["flags"] and default[0]["flags"][default[0]["flags"].index("-fa") + 1] == "auto"
    for r in rows:
        assert r["prompt"]["tokens"] == 16 and r["gen"]["tokens"] == 8 and r["gen"]["n"] == 2
        assert r["gen"]["median"] > 0
        # the share of the bound is the measured median over it (a 135M model can pass 100%: its weights fit
        # in the CPU's caches, so how far it gets says nothing here)
        assert r["bound_percent"] == pytest.approx(100 * r["gen"]["median"] / r["bound_tps"], abs=0.02)
        # 20 GB/s over the bytes a token reads from RAM
        assert r["bound_tps"] == pytest.approx(20e9 / r["bytes_per_token"]["cpu"], rel=1e-3)
    assert sum(r["fastest"] for r in rows) == 1
    assert all(r["expected_tps"] > 0 for r in rows)
    assert rec["llama_cpp"]["build"].startswith("11434")


def test_above_the_bound_is_explained(home: Path, smollm2: Path) -> None:
    # 1 MB/s over ~90 MB a token: a bound of ~0.01 t/s, which any run that finishes passes
    res = invoke("bench", str(smollm2), "--threads", "1", "--prompt-tokens", "16", "-n", "4", "-r", "1",
                 "--bandwidth", "1MB/s", env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "above 100% of the bound" in res.stdout and "too low" in res.stdout


def test_sweep_r1_tiny_save_and_history(home: Path, r1_tiny) -> None:
    res = invoke("bench", str(r1_tiny.path), "--flash-attn", "on,off", "--cache-type-k", "f16,q4_0", *TINY, "--save",
                 env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "★" in res.stdout and "r1run default" in res.stdout
    # "63% of the fastest" only when the difference is larger than the spread; else "within noise"
    assert "% of the fastest" in res.stdout or "within noise of the fastest" in res.stdout or \
        "r1run default: the fastest" in res.stdout
    assert all(len(line) <= 80 for line in res.stdout.splitlines()), res.stdout
    assert "…" not in res.stdout  # no column cut short
    assert "saved to" in res.stderr
    lines = (home / "results" / "bench.jsonl").read_text().splitlines()
    (rec,) = [json.loads(x) for x in lines]
    # the sweep's 4 rows, then chat's own configuration (fa auto, the R1 recommendation ctk q4_0) on its own
    assert len(rec["rows"]) == 5
    assert rec["rows"][-1]["labels"] == ["r1run default"]
    assert rec["rows"][-1]["config"]["cache_type_k"] == "q4_0"
    assert rec["model"]["sha256"] and len(rec["model"]["sha256"]) == 64
    assert rec["model"]["architecture"] == "deepseek2"

    hist = invoke("bench", "--history")
    assert hist.exit_code == 0, hist.output
    assert "DeepSeek-R1" in hist.stdout
    assert len(_json(invoke("bench", "--history", "--json"))) == 1
    assert invoke("bench", "--history", "no-such-model").exit_code == 2


def test_tune_stores_a_profile_that_chat_uses(home: Path, smollm2: Path) -> None:
    res = invoke("bench", str(smollm2), "--tune", *TINY, "--bandwidth", "20GB/s", "--json")
    out = _json(res)
    prof, path = out["profile"], Path(out["profile_path"])
    assert path.is_file() and path.parent == home / "profiles"
    assert prof["schema"] == "r1run.profile/1" and prof["model"]["sha256"]
    assert [s["knob"] for s in prof["steps"]] == ["threads", "flash_attn", "cache_type_k"]  # -p 16: no ubatch step
    settings = prof["settings"]

    chat = invoke("chat", str(smollm2), "-p", "hi", "--dry-run")
    assert chat.exit_code == 0, chat.output
    assert "tuned profile" in chat.stderr
    argv = chat.stdout.split()
    assert argv[argv.index("-t") + 1] == str(settings["threads"])
    if settings["flash_attn"] != "auto":
        assert argv[argv.index("-fa") + 1] == settings["flash_attn"]
    if settings["cache_type_k"] != "f16":
        assert argv[argv.index("-ctk") + 1] == settings["cache_type_k"]

    plain = invoke("chat", str(smollm2), "-p", "hi", "--dry-run", "--no-profile")
    assert "tuned profile" not in plain.stderr and "-fa" not in plain.stdout.split()
    mine = invoke("chat", str(smollm2), "-p", "hi", "--dry-run", "-t", "3")
    argv = mine.stdout.split()
    assert argv[argv.index("-t") + 1] == "3"  # what the user says wins over the profile

    # the next plain bench measures the profile next to r1run's default
    rec = _json(invoke("bench", str(smollm2), *TINY, "--json"))
    labels = [lab for r in rec["rows"] for lab in r["labels"]]
    assert "r1run default" in labels
    assert "tuned profile" in labels


def test_model_that_does_not_load(home: Path, r1_tiny, tmp_path: Path) -> None:
    """A GGUF r1run can read but llama.cpp cannot load: llama-bench's own error line is shown."""
    data = r1_tiny.path.read_bytes()
    at = data.index(b"deepseek2", data.index(b"general.architecture"))
    bad = tmp_path / "unknown-arch.gguf"
    bad.write_bytes(data[:at] + b"deepseekX" + data[at + 9:])
    res = invoke("bench", str(bad), *TINY)
    assert res.exit_code == 1
    assert "llama-bench failed (exit 1)" in res.stderr
    assert "unknown model architecture: 'deepseekX'" in res.stderr
    assert "hint:" in res.stderr and "Traceback" not in res.output


def test_no_llama_bench(home: Path, smollm2: Path, llama_bin: Path, tmp_path: Path, monkeypatch) -> None:
    partial = tmp_path / "bin"
    partial.mkdir()
    shutil.copy2(llama_bin / "llama-completion", partial / "llama-completion")
    monkeypatch.setenv("R1RUN_LLAMA_BIN", str(partial))
    res = invoke("bench", str(smollm2), *TINY)
    assert res.exit_code == 1
    assert "has no llama-bench" in res.stderr
