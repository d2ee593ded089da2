"""`r1run plan` through the CLI: tables, JSON, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from r1run.cli.app import make_app

runner = CliRunner()
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


def test_plan_all_quants_table():
    res = invoke("plan", "deepseek-r1", "--all-quants", *MACHINE)
    assert res.exit_code == 0, res.output
    for q in ("UD-IQ1_S", "UD-IQ1_M", "UD-IQ2_XXS", "UD-Q2_K_XL"):
        assert q in res.stdout
    assert "flags:" in res.stdout and "does not fit" in res.stdout


def test_plan_a_local_file(smollm2):
    res = invoke("plan", str(smollm2), "--gpu-memory", "0", "--ram", "8GiB", "--bandwidth", "20GB/s", "--json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)["rows"][0]
    assert row["origin"] == "local" and row["strategy"] == "cpu-only" and row["fits_memory"]
    assert row["decode_bound_tps"] == pytest.approx(20e9 / (row["bytes_per_token"]["cpu"]), rel=1e-6)


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
