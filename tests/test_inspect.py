"""`r1run inspect` and the bad inputs of issue 3: each one a clean r1run error, never a traceback."""

from __future__ import annotations

import json
import shutil
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gguf_samples import (
    BytesSource,
    gguf_string,
    header,
    kv_string,
    tensor_info,
    write_all_value_types,
    write_small_deepseek,
)
from r1run.cli.app import make_app
from r1run.errors import GGUFError
from r1run.gguf import model_from_headers, read_header, read_model
from testkit.headers import add_deepseek2_metadata, write_header_only

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(make_app(), ["inspect", *map(str, args)])


def assert_clean_failure(res, *words: str) -> None:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    err = res.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and any(line.startswith("hint: ") for line in lines), err
    for w in words:
        assert w in err, err


# --- the command --------------------------------------------------------------------------------

def test_inspect_table_and_layers(tmp_path):
    files = write_small_deepseek(tmp_path / "m.gguf", "mla", shards=3)
    res = run_cli(files[0], "--layers")
    assert res.exit_code == 0, res.output
    for text in ("deepseek2", "IQ1_S", "KV cache layout", "mla", "8 routed (2 active), 1 shared", "per layer"):
        assert text in res.stdout


def test_inspect_json_schema(tmp_path):
    files = write_small_deepseek(tmp_path / "m.gguf", "original", shards=3)
    res = run_cli(files[2], "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema"] == "r1run.inspect/1" and data["tensors"] is None
    assert data["kv_layout"] == "original" and data["hparams"]["block_count"] == 5
    assert [s["split_no"] for s in data["shards"]] == [0, 1, 2]
    assert sum(layer["bytes"] for layer in data["layers"]) + data["non_layer_bytes"] == data["tensor_bytes"]
    documented = (Path(__file__).parent.parent / "docs" / "inspect.md").read_text()
    for key in list(data) + list(data["hparams"]) + list(data["layers"][0]) + list(data["shards"][0]):
        assert f"`{key}`" in documented, f"{key} is not documented in docs/inspect.md"
    with_tensors = json.loads(run_cli(files[0], "--json", "--tensors").stdout)
    assert len(with_tensors["tensors"]) == data["tensor_count"]


def test_unknown_architecture_is_a_generic_estimate_with_a_warning(tmp_path):
    path = write_all_value_types(tmp_path / "odd.gguf", arch="frobnicator")
    info = read_model(path)
    assert not info.architecture_known and info.warnings and info.kv_layout == "standard"
    assert info.hparams.block_count == 1  # counted from tensor names: frobnicator.block_count is absent
    res = run_cli(path)
    assert res.exit_code == 0 and "unknown architecture" in res.stderr


# --- bad input ------------------------------------------------------------------------------------

def test_not_a_gguf(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_bytes(b"\x00" * 64)
    assert_clean_failure(run_cli(p), "not a GGUF")
    (tmp_path / "empty.gguf").write_bytes(b"")
    assert_clean_failure(run_cli(tmp_path / "empty.gguf"), "not a GGUF")


def test_missing_path():
    assert_clean_failure(run_cli("/nonexistent/model.gguf"), "no such file")


@pytest.mark.parametrize("keep", [3, 10, 24, 100, 5000, -300])
def test_truncated_header(tmp_path, keep):
    [path] = write_small_deepseek(tmp_path / "m.gguf", "original")
    h = read_header(path)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[: keep if keep > 0 else h.data_offset + keep])
    assert_clean_failure(run_cli(cut), "not a GGUF" if 0 < keep <= 3 else "truncated")


def test_truncated_data_is_an_incomplete_download(tmp_path):
    [path] = write_small_deepseek(tmp_path / "m.gguf", "original")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 4096)
    assert_clean_failure(run_cli(path), "incomplete")


def test_one_shard_of_three_missing(tmp_path):
    files = write_small_deepseek(tmp_path / "m.gguf", "mla", shards=3)
    files[1].unlink()
    for target in (files[0], tmp_path):
        assert_clean_failure(run_cli(target), "shard 2 of 3 missing")


def test_shards_of_two_different_models_mixed(tmp_path):
    from dataclasses import replace

    from gguf_samples import SMALL_DS

    a = write_small_deepseek(tmp_path / "a" / "m.gguf", "mla", shards=3)
    b = write_small_deepseek(tmp_path / "b" / "m.gguf", "mla", shards=3, dims=replace(SMALL_DS, n_layer=6))
    shutil.copy(b[1], a[1])
    assert_clean_failure(run_cli(a[0]), "different models")


def test_shard_renamed_out_of_its_set(tmp_path):
    files = write_small_deepseek(tmp_path / "m.gguf", "mla", shards=3)
    lone = tmp_path / "lone.gguf"
    shutil.copy(files[0], lone)
    assert_clean_failure(run_cli(lone), "shard 1 of 3")


def test_folder_with_two_models(tmp_path):
    write_small_deepseek(tmp_path / "a.gguf", "mla")
    write_small_deepseek(tmp_path / "b.gguf", "original", shards=2)
    assert_clean_failure(run_cli(tmp_path), "holds 2 models")


def test_gguf_v1_is_refused():
    with pytest.raises(GGUFError, match="version 1"):
        read_header(BytesSource(header(0, 0, version=1)))


ABSURD = {
    "tensor count 2^40": header(2**40, 0),
    "kv count 2^40": header(0, 2**40),
    "string of 2^50 bytes": header(0, 1, gguf_string("k") + struct.pack("<IQ", 8, 2**50)),
    "array of 2^60 items": header(0, 1, gguf_string("k") + struct.pack("<IIQ", 9, 4, 2**60)),
    "string array of 2^60 items": header(0, 1, gguf_string("k") + struct.pack("<IIQ", 9, 8, 2**60)),
    "nested arrays of 2^60": header(0, 1, gguf_string("k") + struct.pack("<IIQ", 9, 9, 2**60)),
    "deep nesting": header(0, 1, gguf_string("k") + struct.pack("<IIQ", 9, 9, 1) * 64),
    "key of 2^50 bytes": header(0, 1, struct.pack("<Q", 2**50)),
    "n_dims 5": header(1, 0, tensor_info("t", (1, 1, 1, 1, 1))),
    "n_dims 2^31": header(1, 0, tensor_info("t", (), n_dims=2**31)),
    "dims overflowing int64": header(1, 0, tensor_info("t", (2**63 + 1,))),
    "elements 2^64": header(1, 0, tensor_info("t", (2**32, 2**32, 2**10))),
    "unknown tensor type": header(1, 0, tensor_info("t", (32,), ggml_type=999)),
    "unknown value type": header(0, 1, gguf_string("k") + struct.pack("<I", 77)),
    "long tensor name": header(1, 0, tensor_info("x" * 200, (32,))),
    "misaligned offset": header(1, 0, tensor_info("t", (32,), offset=3)),
    "bad alignment": header(0, 1, gguf_string("general.alignment") + struct.pack("<II", 4, 3)),
    "duplicate key": header(0, 2, kv_string("a", "x") * 2),
    "duplicate tensor": header(2, 0, tensor_info("t", (32,)) * 2),
    "block_count 2^40": header(1, 2, kv_string("general.architecture", "llama") + gguf_string("llama.block_count")
                               + struct.pack("<IQ", 10, 2**40) + tensor_info("t", (32,))),
    "layer 10^15": header(1, 1, kv_string("general.architecture", "llama") + tensor_info("blk.999999999999999.x", (32,))),
}


@pytest.mark.parametrize("name", list(ABSURD))
def test_absurd_counts_fail_cleanly_without_allocating(name):
    data = ABSURD[name] + b"\0" * 4096
    tracemalloc.start()
    try:
        with pytest.raises(GGUFError):
            model_from_headers([read_header(BytesSource(data, name=name))])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{name}: peak {peak:,} bytes"


def test_absurd_count_through_the_cli(tmp_path):
    p = tmp_path / "evil.gguf"
    p.write_bytes(ABSURD["array of 2^60 items"])
    assert_clean_failure(run_cli(p), "claims")


# --- fuzzing ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def valid_headers(tmp_path_factory) -> list[bytes]:
    """Whole small files: every value type (both byte orders), and a 3-layer DeepSeek-shaped model."""
    from dataclasses import replace

    import gguf

    from gguf_samples import SMALL_DS
    from testkit.headers import deepseek2_header_tensors, mixed_types, synthetic_vocab

    d = tmp_path_factory.mktemp("fuzz")
    out = [write_all_value_types(d / "le.gguf").read_bytes(),
           write_all_value_types(d / "be.gguf", endianess=gguf.GGUFEndian.BIG).read_bytes()]
    dims = replace(SMALL_DS, n_layer=2, n_expert=2, n_expert_used=1)
    vocab = synthetic_vocab(300, 50)
    [p] = write_header_only(d / "ds.gguf", "deepseek2", deepseek2_header_tensors(dims, "mla", 300, mixed_types),
                            lambda w: add_deepseek2_metadata(w, dims, "mla", name="f", file_type=24, vocab=vocab))
    h = read_header(p)
    out.append(p.read_bytes()[: h.data_offset])  # header only: mutations land in the parsed part
    return out


def _mutate(data: bytes, draw) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        kind = draw(st.sampled_from(["byte", "u64", "u32", "cut", "splice"]))
        pos = draw(st.integers(0, max(0, len(buf) - 1)))
        if kind == "byte":
            buf[pos] = draw(st.integers(0, 255))
        elif kind in ("u64", "u32"):
            size = 8 if kind == "u64" else 4
            val = draw(st.sampled_from([0, 1, 5, 255, 2**31, 2**32 - 1, 2**40, 2**50, 2**60, 2**63, 2**64 - 1]))
            buf[pos:pos + size] = (val % 2 ** (8 * size)).to_bytes(size, "little")
        elif kind == "cut":
            del buf[pos:]
        else:
            buf[pos:pos] = draw(st.binary(max_size=16))
    return bytes(buf)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_headers_only_raise_r1run_errors(valid_headers, data):
    base = valid_headers[data.draw(st.integers(0, len(valid_headers) - 1))]
    mutated = _mutate(base, data.draw)
    tracemalloc.start()
    try:
        h = read_header(BytesSource(mutated, name="fuzz"))
        model_from_headers([h])
    except GGUFError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 64 << 20


def test_hub_targets_parse():
    from r1run.errors import BadInput
    from r1run.inspect_target import parse_hub_target

    assert parse_hub_target("hf://unsloth/DeepSeek-R1-GGUF/DeepSeek-R1-UD-IQ1_S") == \
        ("unsloth/DeepSeek-R1-GGUF", "DeepSeek-R1-UD-IQ1_S")
    assert parse_hub_target("hf://unsloth/DeepSeek-R1-GGUF") == ("unsloth/DeepSeek-R1-GGUF", "")
    with pytest.raises(BadInput):
        parse_hub_target("hf://unsloth")


def test_catalog_model_not_downloaded_and_hub_unreachable_is_a_clean_error(r1run_home, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    res = run_cli("deepseek-r1", "--quant", "UD-IQ1_S")
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit)
    assert "not downloaded" in res.stderr and "r1run download deepseek-r1 --quant UD-IQ1_S" in res.stderr
