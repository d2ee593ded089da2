"""`r1run bench` without llama-bench: sweep expansion, argv, recorded output, tuning rules, storage, CLI input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import invoke
from r1run.bench import core, profile, runner, store, sweep, tune
from r1run.bench.sweep import Config, Invocation
from r1run.errors import BadInput
from r1run.home import Home
from r1run.llama.args import Placement, RunSpec
from r1run.run.config import Request

DATA = Path(__file__).parent / "data" / "bench"


# --- parsing the lists --------------------------------------------------------------------------

def test_parse_ints_and_auto():
    assert sweep.parse_ints("1,2, 4", "--threads", minimum=1) == [1, 2, 4]
    assert sweep.parse_ints("2,2,1", "--threads", minimum=1) == [2, 1]
    assert sweep.parse_ints("auto,0,10", "--gpu-layers", allow_auto=True) == ["auto", 0, 10]
    assert sweep.parse_ints(None, "--threads") is None


@pytest.mark.parametrize("text, fragment", [
    ("2,x", "'x' is not a whole number"),
    ("", "empty value"),
    ("1,,2", "empty value"),
    ("0", "below 1"),
    ("auto", "'auto' is not a whole number"),  # threads take auto only where allowed
])
def test_parse_ints_rejects(text, fragment):
    with pytest.raises(BadInput, match=fragment):
        sweep.parse_ints(text, "--threads", minimum=1)


def test_flash_attn_and_cache_types():
    assert sweep.parse_flash_attn("on,off,1,0,auto") == ["on", "off", "auto"]
    with pytest.raises(BadInput, match="unknown value 'maybe'"):
        sweep.parse_flash_attn("on,maybe")
    assert sweep.parse_cache_types("f16,Q4_0", "--cache-type-k") == ["f16", "q4_0"]
    with pytest.raises(BadInput, match="unknown cache type 'q3'"):
        sweep.parse_cache_types("q3", "--cache-type-k")


# --- expansion and argv -------------------------------------------------------------------------

BASE = Config(threads=2, gpu_layers=0, flash_attn="auto", cache_type_k="f16", cache_type_v="f16", batch=2048,
              ubatch=512)


def test_expand_is_one_invocation_with_comma_lists():
    inv = sweep.expand(BASE, {"threads": [1, 2], "flash_attn": ["on", "off"], "cache_type_k": ["q4_0"]})
    configs = inv.configs()
    assert len(configs) == 4
    assert {c.cache_type_k for c in configs} == {"q4_0"}  # a single value is folded into the fixed part
    argv = sweep.argv(Path("/bin/llama-bench"), Path("m.gguf"), inv, n_prompt=16, n_gen=8, repetitions=2)
    assert argv[:11] == ["/bin/llama-bench", "-m", "m.gguf", "-p", "16", "-n", "8", "-r", "2", "-o", "jsonl"]
    joined = " ".join(argv)
    assert "-t 1,2" in joined and "-fa on,off" in joined and "-ctk q4_0" in joined and "-ngl 0" in joined
    assert argv[-1] == "--progress"


def test_argv_leaves_unset_knobs_to_llama_bench():
    argv = sweep.argv(Path("b"), Path("m"), Invocation(Config()), n_prompt=1, n_gen=1, repetitions=1, progress=False)
    assert argv == ["b", "-m", "m", "-p", "1", "-n", "1", "-r", "1", "-o", "jsonl"]


def test_from_run_spec_is_what_chat_runs():
    spec = RunSpec(model=Path("m.gguf"), ctx=4096, threads=8, cache_type_k="q4_0",
                   placement=Placement(gpu_layers=62, cpu_moe=True, tensor_split="3,1",
                                       tensor_overrides=(r"blk\.3\.ffn_.*_exps\.=CPU", r"blk\.4\.ffn_.*_exps\.=CPU")))
    c = sweep.from_run_spec(spec, n_layers=61)
    assert c.flash_attn == "auto"  # chat leaves -fa unset: the run programs' default is auto
    assert c.n_cpu_moe == 61 and c.tensor_split == "3/1"
    assert c.overrides == r"blk\.3\.ffn_.*_exps\.=CPU;blk\.4\.ffn_.*_exps\.=CPU"
    assert (c.cache_type_k, c.cache_type_v, c.batch, c.ubatch) == ("q4_0", "f16", 2048, 512)


# --- recorded llama-bench output ----------------------------------------------------------------

def test_rows_from_recorded_sweep():
    """tests/data/bench/sweep_smollm2.log: b11434 `-t 1,2 -fa on,off -p 16 -n 8 -r 2 -o jsonl --progress` 2>&1."""
    inv = sweep.expand(Config(cache_type_k="f16"), {"threads": [1, 2], "flash_attn": ["on", "off"]})
    progress, records = [], []
    for line in (DATA / "sweep_smollm2.log").read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        elif m := runner.PROGRESS.search(line):
            progress.append(int(m[1]))
    rows = runner.rows_from(inv, records)
    assert sorted(map(repr, (r.config for r in rows))) == sorted(map(repr, inv.configs()))
    assert all(r.prompt.tokens == 16 and r.gen.tokens == 8 and r.gen.n == 2 for r in rows)
    assert all(r.gen.low <= r.gen.median <= r.gen.high for r in rows)
    assert max(progress) == 8


def test_record_config_reads_flash_attn_values():
    inv = sweep.expand(BASE, {"flash_attn": ["auto", "on", "off"]})
    assert sweep.record_config(inv, {"flash_attn": -1}).flash_attn == "auto"
    assert sweep.record_config(inv, {"flash_attn": 1}).flash_attn == "on"
    assert sweep.record_config(inv, {"flash_attn": False}).flash_attn == "off"


def test_failure_names_llama_bench_error(tmp_path):
    lines = ["llama-bench: benchmark 1/2: starting",
             "gguf_init_from_reader: invalid magic characters: 'not ', expected 'GGUF'",
             "llama_model_load: error loading model: llama_model_loader: failed to load model from /tmp/bad.gguf",
             "llama_bench: error: failed to load model '/tmp/bad.gguf'"]
    exc = runner._failure(1, lines, tmp_path / "x.log")
    assert "error loading model" in exc.message and "exit 1" in exc.message
    assert "complete GGUF" in exc.hint


# --- what gets measured -------------------------------------------------------------------------

def _setup(default: Config):
    return core.Setup(home=None, install=None, caps=None, program=Path("b"), target=None, default=default,
                      default_plan=None, machine=None, bandwidth_source="")


def test_default_row_added_only_when_the_sweep_misses_it():
    s = _setup(BASE)
    invs = core.invocations(s, {"flash_attn": ["on", "off"]})
    assert [i.label for i in invs] == [None, core.DEFAULT_LABEL]  # chat runs fa=auto: measured on its own
    invs = core.invocations(s, {"threads": ["auto", 1]})
    assert len(invs) == 1 and len(invs[0].configs()) == 2  # auto threads = the default's: already in the sweep
    assert [i.label for i in core.invocations(s, {})] == [core.DEFAULT_LABEL]


def test_gpu_layers_numbers_and_auto():
    planned = Config(threads=2, gpu_layers=62, n_cpu_moe=40, flash_attn="auto")
    invs = core.invocations(_setup(planned), {"gpu_layers": [0, 10, "auto"]}, llama_defaults=True)
    numbers, auto, llama = invs
    assert [c.gpu_layers for c in numbers.configs()] == [0, 10] and numbers.base.n_cpu_moe is None
    assert auto.configs() == [planned]
    assert llama.label == core.LLAMA_LABEL and llama.base == Config()


# --- tuning rules -------------------------------------------------------------------------------

def test_tune_candidates():
    assert tune.thread_candidates(2, 2, 2) == [1, 2]
    assert tune.thread_candidates(16, 32, 16) == [8, 16, 32]
    assert tune.cache_candidates("q4_0") == ["q4_0"]  # never more KV memory than r1run planned
    assert tune.cache_candidates(None) == ["f16", "q8_0", "q4_0"]
    moe = tune.placement_candidates(Config(gpu_layers=62, n_cpu_moe=10), 61)
    assert [c.n_cpu_moe for c in moe] == [9, 11, 12]
    dense = tune.placement_candidates(Config(gpu_layers=1), 30)
    assert [c.gpu_layers for c in dense] == [0, 2]


def test_better_needs_more_than_noise():
    def row(median, low, high):
        return runner.Row(Config(), gen=runner.Stat(median, median, 0, low, high, 3, 8))

    assert tune.better(row(110, 108, 112), row(100, 99, 101), "gen")
    assert not tune.better(row(103, 95, 111), row(100, 92, 108), "gen")  # within the spread
    assert not tune.better(row(100.5, 100.5, 100.5), row(100, 100, 100), "gen")  # under 1%


# --- profiles applied by chat -------------------------------------------------------------------

def _profile(settings: dict, **extra) -> profile.Profile:
    return profile.Profile(Path("p.json"), Config(**settings), {"created": "2026-11-29T05:00:00", **extra})


def test_profile_fills_only_what_the_user_left():
    spec = RunSpec(model=Path("m"), ctx=4096, threads=2)
    p = _profile({"threads": 1, "flash_attn": "on", "cache_type_k": "q8_0", "batch": 2048, "ubatch": 256})
    new, note = p.apply(spec, Request())
    assert (new.threads, new.flash_attn, new.cache_type_k, new.ubatch, new.batch) == (1, "on", "q8_0", 256, None)
    assert "threads 1" in note and "--no-profile" in note
    new, _ = p.apply(spec, Request(threads=2, cache_type_k="f16", extra=("-fa", "off")))
    assert (new.threads, new.flash_attn, new.cache_type_k) == (2, None, None)
    new, _ = p.apply(spec, Request(flash_attn="off", ubatch=512))  # given as r1run options, not after --
    assert (new.flash_attn, new.ubatch) == (None, None)


def test_profile_placement_only_when_tuned():
    spec = RunSpec(model=Path("m"), ctx=4096, placement=Placement(gpu_layers=62, n_cpu_moe=10))
    moved = _profile({"gpu_layers": 62, "n_cpu_moe": 12}, placement_tuned=True)
    assert moved.apply(spec, Request())[0].placement == Placement(gpu_layers=62, n_cpu_moe=12)
    assert moved.apply(spec, Request(gpu_layers=20))[0].placement == spec.placement
    assert _profile({"gpu_layers": 0}).apply(spec, Request())[0].placement == spec.placement


# --- storage ------------------------------------------------------------------------------------

def test_sha256_is_cached_by_path_size_mtime(tmp_path):
    import hashlib
    import os

    home = Home(tmp_path / "home")
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + b"x" * 1000)
    assert store.cached_sha256(home, f) is None
    digest = store.file_sha256(home, f)
    assert digest == hashlib.sha256(f.read_bytes()).hexdigest() == store.cached_sha256(home, f)
    f.write_bytes(b"GGUF" + b"y" * 1000)
    os.utime(f, ns=(1, 1))
    assert store.cached_sha256(home, f) is None  # changed: hashed again
    digest2 = store.file_sha256(home, f)
    assert digest2 == hashlib.sha256(f.read_bytes()).hexdigest()
    two = store.model_sha256(home, [f, f])
    assert two == hashlib.sha256(f"{digest2}  m.gguf\n{digest2}  m.gguf\n".encode()).hexdigest()


def test_results_round_trip(tmp_path):
    home = Home(tmp_path / "home")
    assert store.load(home) == []
    store.save(home, {"schema": store.SCHEMA, "model": {"name": "a"}})
    with open(store.results_file(home), "a") as fh:
        fh.write(json.dumps({"schema": "something-else/1"}) + "\n\n")
    assert [r["model"]["name"] for r in store.load(home)] == ["a"]
    with open(store.results_file(home), "a") as fh:
        fh.write("not json\n")
    with pytest.raises(BadInput, match="is not JSON"):
        store.load(home)


def test_fingerprint_ignores_free_memory_and_hostname():
    a = {"os": "Linux", "arch": "x86_64", "cpu": "EPYC", "physical_cores": 2, "logical_cores": 2, "ram_bytes": 23 << 30,
         "gpus": [], "rpc": [], "node": "a"}
    assert store.fingerprint(a) == store.fingerprint({**a, "node": "b"})
    assert store.fingerprint(a) != store.fingerprint({**a, "rpc": ["10.0.0.2:50052"]})


# --- the command: bad input stops before anything runs -----------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--threads", "2,x"], "--threads: 'x' is not a whole number"),
    (["--threads", ""], "empty value"),
    (["--flash-attn", "maybe"], "--flash-attn: unknown value 'maybe'"),
    (["--cache-type-k", "q3"], "unknown cache type 'q3'"),
    (["--gpu-layers", "-1"], "below 0"),
    (["--repetitions", "0"], "--repetitions must be at least 1"),
    (["--prompt-tokens", "0", "-n", "0"], "nothing to measure"),
    (["-p", "512"], "--prompt-tokens 512 (llama-bench's -p)"),
    (["--json", "--csv"], "cannot be combined"),
    (["--tune", "--threads", "1,2"], "--tune chooses the values itself"),
    (["--history", "--tune"], "--history only reads saved results"),
])
def test_cli_bad_input(r1run_home, args, fragment):
    res = invoke("bench", "missing.gguf", *args)
    assert res.exit_code == 2, res.output
    assert fragment in res.output
    assert "Traceback" not in res.output


def test_cli_history_empty(r1run_home):
    res = invoke("bench", "--history")
    assert res.exit_code == 2
    assert "no saved benchmark results" in res.output and "--save" in res.output


def test_saved_version_1_results_are_read_in_version_2_names(tmp_path):
    home = Home(tmp_path / "home")
    old = {"schema": "r1run.bench/1", "time": "2026-11-29T06:25:01+0100", "seconds": 41.2,
           "machine": {"ram_gib": 23, "cpu": "EPYC"}, "model": {"name": "a"}}
    store.results_file(home).parent.mkdir(parents=True)
    store.results_file(home).write_text(json.dumps(old) + "\n")
    rec, = store.load(home)
    assert (rec["schema"], rec["started_at"], rec["took_s"]) == (store.SCHEMA, "2026-11-29T05:25:01Z", 41.2)
    assert rec["machine"] == {"ram_bytes": 23 << 30, "cpu": "EPYC"} and "time" not in rec and "seconds" not in rec
    identity = {"os": "Linux", "arch": "x86_64", "cpu": "EPYC", "physical_cores": 2, "logical_cores": 2, "gpus": [],
                "rpc": []}
    # profiles stored under a version-1 fingerprint are still found
    assert store.fingerprint({**identity, "ram_bytes": 23 << 30}) == store.fingerprint({**identity, "ram_gib": 23})


def test_a_difference_smaller_than_the_spread_is_noise():
    from r1run.bench.runner import Stat

    fast, slow = Stat.of([32.0, 50.0, 68.0], 8), Stat.of([31.0, 31.5, 32.0], 8)  # 50 ±18 vs 31.5 ±0.5
    assert fast.within_noise(slow) and slow.within_noise(fast)
    assert not Stat.of([50.0, 51.0, 52.0], 8).within_noise(slow)  # 51 ±1 vs 31.5 ±0.5: a real difference
    assert not Stat.of([50.0], 8).within_noise(Stat.of([49.0], 8))  # one repetition: no spread, nothing is noise
