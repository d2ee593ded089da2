"""`r1run plan` through the CLI: tables, JSON, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nethelp import free_port
from r1run.cli.app import make_app

runner = CliRunner()
QUANTS = ["UD-IQ1_S", "UD-IQ1_M", "UD-IQ2_XXS", "UD-Q2_K_XL", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K",
          "Q8_0", "BF16"]
MACHINE = ["--gpu-memory", "24GiB", "--gpu-name", "RTX 4090", "--ram", "128GiB", "--bandwidth", "cpu=80GB/s"]


@pytest.fixture(autouse=True)
def offline(r1run_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no llama.cpp: flags for the current release
    return r1run_home


def invoke(*args: str):
    return runner.invoke(make_app(), list(args))


def test_plan_r1_json_offline():
    res = invoke("plan", "deepseek-r1", "--quant", "UD-IQ1_S", "--ctx", "4096", *MACHINE, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema"] == "r1run.plan/1" and data["model"] == "deepseek-r1"
    row = data["rows"][0]
    assert row["quant"] == "UD-IQ1_S" and row["origin"] == "synthetic" and row["fits_memory"]
    assert row["flags"][:2] == ["-c", "4096"]
    assert row["flags"][row["flags"].index("-ctk") + 1] == "q4_0"  # the catalog's recommended K cache type
    assert "-t" not in row["flags"]  # a described machine: llama.cpp's default threads where it runs
    assert "--cpu-moe" in row["flags"] and row["decode_bound_tps"] > 0
    assert row["early_guide_layers"] == 7 and row["devices"][0]["name"] == "CUDA0"


def test_plan_all_quants_reads_at_a_glance_offline():
    res = invoke("plan", "deepseek-r1", "--all-quants", *MACHINE)
    assert res.exit_code == 0, res.output
    out = res.stdout
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    # every catalog quant has a row with a size, none dropped, none "?"
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in QUANTS}
    assert set(rows) == set(QUANTS)
    assert all(float(r[1]) > 100 and r[2] == "pub" for r in rows.values())
    # the catalog's 8192 does not fit 24 GiB + 128 GiB with UD-IQ1_S: the context shrinks, and the flags say so
    ctx = rows["UD-IQ1_S"][8]
    assert rows["UD-IQ1_S"][3] == "yes" and int(ctx) < 8192
    assert f"UD-IQ1_S: r1run runs -c {ctx} " in out
    assert f"context {ctx} (the catalog's 8192 does not fit this machine" in out
    # the early guide's -ngl is labelled as the guide's, beside what r1run runs
    assert "the early guide's rule" in out and "gives -ngl 7; r1run runs -ngl" in " ".join(out.split())
    # a note shared by every quant is not repeated per quant; the synthetic-header note lives in the legend
    assert out.count("synthetic header") == 0 and out.count("pub = the publisher's size") == 1
    # the verdict and the next command
    assert f"fits: UD-IQ1_S with -c {ctx}" in out
    assert "does not fit: UD-IQ1_M," in out and "closest is UD-IQ1_M, short by" in " ".join(out.split())
    assert lines[-1] == "next: r1run download deepseek-r1 --quant UD-IQ1_S"
    verdict = json.loads(invoke("plan", "deepseek-r1", "--all-quants", *MACHINE, "--json").stdout)["verdict"]
    assert verdict["fits"] == ["UD-IQ1_S"] and verdict["next_command"] == lines[-1].removeprefix("next: ")


def test_no_word_is_broken_when_piped_at_80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    res = invoke("plan", "deepseek-r1", "--all-quants", "--gpu-memory", "80GiB,80GiB", "--gpu-name", "H100",
                 "--ram", "256GiB")
    assert res.exit_code == 0, res.output
    words = set(res.stdout.split())
    for whole in ("UD-IQ1_S", "UD-Q2_K_XL", "publisher's", "weights", "upper", "bound", "CUDA0:", "CUDA1:"):
        assert any(whole in w for w in words), whole
    assert not {"_S", "UD-IQ1", "weight", "s"} & words


def test_an_unreachable_hub_is_one_warning(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    res = invoke("plan", "deepseek-r1", "--all-quants", *MACHINE)
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    hub = [w for w in warnings if "hub" in w]
    assert len(hub) == 1 and "11 quant(s) planned from their published sizes" in hub[0], warnings
    assert not any("skipped" in w for w in warnings)


def test_a_gpu_described_by_name_has_memory_and_a_decode_bound():
    data = json.loads(invoke("plan", "deepseek-r1", "--gpu-name", "RTX 4090", "--ram", "128GiB", "--json").stdout)
    m = data["machine"]
    assert m["devices"][0]["free_bytes"] == 24 * 2**30 and m["devices"][0]["bandwidth"] == 1008e9
    # described RAM: not this host's measured bandwidth, an assumption that says so
    assert m["cpu_bandwidth"] == 80e9 and m["cpu_bandwidth_source"].startswith("assumed")
    assert data["rows"][0]["decode_bound_tps"] > 0
    mac = json.loads(invoke("plan", "deepseek-r1", "--gpu-name", "M3 Max", "--json").stdout)["machine"]
    assert mac["unified"] and mac["ram_bytes"] == 128 * 2**30 and mac["cpu_bandwidth"] == 400e9
    assert mac["devices"][0]["bandwidth"] == 400e9


def test_an_unknown_gpu_name_says_what_to_pass():
    res = invoke("plan", "deepseek-r1", "--gpu-name", "Voodoo 5")
    assert res.exit_code == 2
    assert "'Voodoo 5' is not in r1run's GPU table" in res.stderr and "--gpu-memory" in res.stderr
    assert "Traceback" not in res.output


def test_plan_a_local_file(smollm2):
    res = invoke("plan", str(smollm2), "--gpu-memory", "0", "--ram", "8GiB", "--bandwidth", "20GB/s", "--json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["rows"][0]
    assert row["origin"] == "local" and row["strategy"] == "cpu-only" and row["fits_memory"]
    assert row["decode_bound_tps"] == pytest.approx(20e9 / (row["bytes_per_token"]["cpu"]), rel=1e-6)
    text = invoke("plan", str(smollm2), "--gpu-memory", "0", "--ram", "8GiB", "--bandwidth", "20GB/s").stdout
    assert all(len(line) <= 80 for line in text.splitlines()) and "…" not in text, text  # a long file name too
    assert text.splitlines()[-1] == f"next: r1run chat {smollm2}"


def test_context_above_training_warns(smollm2):
    res = invoke("plan", str(smollm2), "--ctx", "20000", "--gpu-memory", "0", "--ram", "8GiB", "--bandwidth",
                 "20GB/s", "--json")
    assert res.exit_code == 0
    assert any("trained context 8192" in n for n in json.loads(res.stdout)["rows"][0]["notes"])


@pytest.mark.parametrize("args, message", [
    (["--ctx", "0"], "--ctx-size must be a positive"),
    (["--ctx", "-5"], "--ctx-size must be a positive"),
    (["-fa", "maybe"], "--flash-attn must be on, off or auto"),
    (["--gpu-memory", "lots"], "cannot read --gpu-memory"),
    (["--gpu-memory", "24GiB,"], "cannot read --gpu-memory"),
    (["--ram", "12XB"], "cannot read --ram"),
    (["--quant", "Q9_Z"], "no quant 'Q9_Z'; its quants: UD-IQ1_S"),
    (["--gpu-layers", "many"], "--gpu-layers must be"),
    (["--bandwidth", "fast"], "cannot read bandwidth"),
    (["--cache-type-k", "q3_k"], "unknown KV cache type"),
    (["--rpc", "host-without-port"], "is not host:port"),
])
def test_bad_input_is_one_line_and_nonzero(args, message):
    res = invoke("plan", "deepseek-r1", *MACHINE, *args)
    assert res.exit_code != 0
    assert message in res.output and "Traceback" not in res.output
    assert "hint:" in res.output or "error:" in res.output


def test_unknown_model_and_missing_file():
    res = invoke("plan", "no-such-model", *MACHINE)
    assert res.exit_code == 2 and "unknown model 'no-such-model'" in res.output
    res = invoke("plan", "/nonexistent/model.gguf", *MACHINE)
    assert res.exit_code == 2 and "no such file" in res.output


def test_unknown_architecture_is_estimated_with_a_warning(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "odd.gguf"
    w = gguf.GGUFWriter(path, "notanarch")
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_context_length(2048)
    for i in range(2):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.ones((64, 64), dtype=np.float32))
    w.add_tensor("token_embd.weight", np.ones((100, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    res = invoke("plan", str(path), "--gpu-memory", "0", "--ram", "1GiB", "--bandwidth", "10GB/s", "--json")
    assert res.exit_code == 0, res.output
    notes = json.loads(res.stdout)["rows"][0]["notes"]
    assert any("generic estimate" in n for n in notes)


def test_a_note_every_quant_shares_is_said_once():
    res = invoke("plan", "deepseek-r1", "--all-quants", "--gpu-memory", "24GiB", "--ram", "128GiB")
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert text.count("memory bandwidth of GPU unknown") == 1 and "For every quant:" in text
