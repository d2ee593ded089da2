"""The expected speed (planner.speed): its parts, its fit on the published runs, this machine's calibration, and
`plan` / `quickstart` showing it. The figures themselves: benchmarks/speed_model.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from clihelp import invoke
from gguf_samples import write_small_deepseek
from r1run.bench import calibration
from r1run.planner import published_runs
from r1run.planner import speed as sp
from r1run.planner import speed_fit as fit
from r1run.planner.placement import Stage

GB = 1e9
GiB = 2**30


def _cpu(bytes_: float, rate: float = 100 * GB, layers: int = 10, **kw) -> sp.Workload:
    return sp.Workload((Stage("cpu", "CPU", int(bytes_), rate, layers),), **kw)


def test_a_token_is_memory_then_fixed_costs_and_each_part_is_named() -> None:
    p = sp.Params()
    w = _cpu(10 * GB, threads=32)
    parts = {x.name: x.seconds for x in sp.time_parts(w, p) or ()}
    # 10 GB at 100 GB/s x cpu_eff is memory-bound on 32 threads: the reads dominate
    assert parts["CPU reads"] == pytest.approx(10 / (100 * p.cpu_eff), rel=0.05)
    assert parts["CPU layers"] == pytest.approx(10 * (p.cpu_layer_s + 32 * p.cpu_thread_layer_s))
    # a mixture-of-experts layer makes the threads meet once per expert: more per layer and thread
    moe = {x.name: x.seconds for x in sp.time_parts(_cpu(10 * GB, threads=32, moe=True), p) or ()}
    assert moe["CPU layers"] == pytest.approx(parts["CPU layers"] + 10 * 32 * p.cpu_moe_thread_layer_s)
    assert sp.gen_tps(w, p) == pytest.approx(1 / sum(parts.values()))
    # the same bytes on one thread: the arithmetic is slower than the memory, and is named so
    one = {x.name for x in sp.time_parts(_cpu(10 * GB, threads=1), p) or ()}
    assert "CPU arithmetic" in one and "CPU reads" not in one
    # i-quants cost more arithmetic, ik_llama.cpp reads at its own efficiency
    assert sp.gen_tps(_cpu(10 * GB, threads=1, iquant=True), p) < sp.gen_tps(_cpu(10 * GB, threads=1), p)
    ik = sp.gen_tps(_cpu(10 * GB, threads=64, engine="ik_llama.cpp"), sp.Params(ik_cpu_eff=0.9, cpu_eff=0.5))
    main = sp.gen_tps(_cpu(10 * GB, threads=64), sp.Params(ik_cpu_eff=0.9, cpu_eff=0.5))
    assert ik is not None and main is not None and ik > main


def test_recurrent_layers_on_the_cpu_cost_their_own_time() -> None:
    p = sp.Params(cpu_recurrent_layer_s=2e-3)
    plain = {x.name: x.seconds for x in sp.time_parts(_cpu(2 * GB, layers=48, threads=12, moe=True), p) or ()}
    hybrid = {x.name: x.seconds for x in sp.time_parts(_cpu(2 * GB, layers=48, threads=12, moe=True,
                                                            recurrent_layers=36), p) or ()}
    assert "CPU recurrent layers" not in plain
    assert hybrid["CPU recurrent layers"] == pytest.approx(36 * 2e-3)
    assert {k: v for k, v in hybrid.items() if k != "CPU recurrent layers"} == plain


def _write_hybrid(path: Path, layers: int = 4, interval: int = 4) -> Path:
    """A Qwen3-Next-shaped GGUF: every `interval`-th layer attention, the others Gated DeltaNet (ssm_*)."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "qwen3next")
    w.add_block_count(layers)
    w.add_uint32("qwen3next.full_attention_interval", interval)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    for i in range(layers):
        if (i + 1) % interval == 0:
            for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
                w.add_tensor(f"blk.{i}.{t}.weight", np.zeros((8, 8), dtype=np.float32))
        else:
            w.add_tensor(f"blk.{i}.ssm_a", np.zeros((4,), dtype=np.float32))
            w.add_tensor(f"blk.{i}.ssm_conv1d.weight", np.zeros((4, 8), dtype=np.float32))
            w.add_tensor(f"blk.{i}.ssm_out.weight", np.zeros((8, 8), dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_up.weight", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_models_recurrent_layers_are_counted_from_its_tensors_and_planned_where_they_run(tmp_path: Path) -> None:
    from r1run.gguf import read_model
    from r1run.planner import memory as mem
    from r1run.planner.machine import MachineSpec, with_overrides
    from r1run.planner.placement import Caps, plan_run

    info = read_model(_write_hybrid(tmp_path / "hybrid.gguf", layers=8))
    assert info.architecture == "qwen3next" and info.recurrent_layers == 6  # layers 3 and 7 are attention
    spec = mem.ContextSpec(ctx=512)
    cpu = MachineSpec(ram=16 << 30, cpu_bandwidth=50e9)
    assert sp.Workload.from_plan(plan_run(info, cpu, Caps(), spec, 0)).recurrent_layers == 6
    gpu = with_overrides(cpu, gpu_memory="24GiB", gpu_name="RTX 4090")
    # half the layers on the GPU: half the recurrent layers' state work leaves the CPU (none is timed there)
    assert sp.Workload.from_plan(plan_run(info, gpu, Caps(), spec, 4)).recurrent_layers == 3
    assert sp.Workload.from_plan(plan_run(info, gpu, Caps(), spec, 9)).recurrent_layers == 0
    # a transformer has none
    assert read_model(write_small_deepseek(tmp_path / "ds.gguf", "mla")[0]).recurrent_layers == 0


def test_gpus_rpc_and_disk_each_add_their_cost() -> None:
    p = sp.Params()
    gpu = Stage("gpu", "RTX 4090", int(5 * GB), 1008 * GB, 30)
    cpu = Stage("cpu", "CPU", int(1 * GB), 80 * GB, 31)
    hybrid = sp.Workload((gpu, cpu), split_layers=30, threads=16, moe=True)
    names = [x.name for x in sp.time_parts(hybrid, p) or ()]
    assert names[:2] == ["GPU reads", "GPU layers"] and "experts on the CPU" in names and "device hops" in names
    assert hybrid.kind == "hybrid"
    two_gpus = sp.Workload((gpu, gpu, Stage("cpu", "CPU", 0, 80 * GB, 0)))
    assert two_gpus.kind == "gpu" and [x.name for x in sp.time_parts(two_gpus, p) or ()].count("GPU reads") == 1
    rpc = sp.Workload((Stage("rpc", "RPC worker", int(5 * GB), 80 * GB, 30), cpu), net_rate=12.5e6)
    slow, fast = sp.gen_tps(rpc, p), sp.gen_tps(sp.Workload(rpc.stages, net_rate=1.25e9), p)
    assert rpc.kind == "rpc" and slow is not None and fast is not None and slow < fast
    # one RPC device holding every layer still costs its round trip and its graph, per layer, every token
    alone = sp.Workload((Stage("rpc", "RPC worker", int(GB), 200 * GB, 22),), net_rate=125e6)
    hops = {x.name: x.seconds for x in sp.time_parts(alone, p) or ()}["device hops"]
    assert hops == pytest.approx(p.rpc_hop_s + 22 * p.rpc_layer_bytes / 125e6)
    # ...and, holding the output layer, the logits come back over the network: Gemma 3's 262k floats are 8 ms at 1
    # gigabit, TinyLlama's 32k one
    gemma = sp.Workload(alone.stages, net_rate=125e6, logits_bytes=4 * 262144)
    with_logits = {x.name: x.seconds for x in sp.time_parts(gemma, p) or ()}["device hops"]
    assert with_logits - hops == pytest.approx(4 * 262144 / 125e6)
    paging = sp.Workload((cpu, Stage("disk", "disk", int(20 * GB), 3 * GB, 0)))
    assert paging.kind == "paging" and "disk reads" in [x.name for x in sp.time_parts(paging, p) or ()]
    assert sp.gen_tps(sp.Workload((Stage("gpu", "mystery GPU", int(GB), None, 4),)), p) is None  # unknown: None


def test_expect_gives_a_range_and_a_calibrated_machine_a_narrower_one() -> None:
    model = sp.shipped()
    w = _cpu(10 * GB, threads=32)
    e = sp.expect(w, model)
    assert e is not None and e.low < e.gen_tps < e.high
    assert e.high / e.gen_tps == pytest.approx(model.spread)
    c = sp.expect(w, model, calibration=0.5)
    assert c is not None and c.gen_tps == pytest.approx(0.5 * e.gen_tps)
    assert c.high / c.gen_tps == pytest.approx(math.sqrt(model.spread))


def test_the_shipped_parameters_are_the_fit_of_the_shipped_table_and_its_error_is_recomputed() -> None:
    runs = published_runs.runs()
    cases, skipped = fit.cases(runs)
    model = sp.shipped()
    assert model.fitted_on == len(cases) >= 16 and len(cases) + len(skipped) == len(runs)
    params = fit.fit(cases)
    for name, value in params.to_dict().items():
        assert getattr(model.params, name) == pytest.approx(value, rel=1e-3), name
    checks = fit.leave_one_out(cases)
    median, worst, spread = fit.summary(checks)
    assert (model.loo_median, model.loo_worst, model.spread) == pytest.approx((median, worst, spread), rel=1e-3)
    assert median <= 1.5  # the target for the median run
    # every kind of run the table holds is planned, and each summary names its source
    assert {c.workload.kind for c in cases} >= {"cpu", "gpu", "hybrid"}
    assert all(r["source"] and r["label"] for r in model.runs)


def test_the_closest_published_run_is_of_the_same_kind() -> None:
    model = sp.shipped()
    hybrid = sp.Workload((Stage("gpu", "RTX 3090", int(2 * GB), 936 * GB, 8), Stage("cpu", "CPU", int(9 * GB),
                                                                                   460 * GB, 53)))
    near = sp.closest_published(model, hybrid)
    assert near is not None and near["kind"] == "hybrid"


def test_calibration_is_the_median_of_this_machines_saved_rows() -> None:
    rows = [{"gen": {"median": 50.0}, "expected_tps": 100.0}, {"gen": {"median": 80.0}, "expected_tps": 100.0},
            {"gen": {"median": 30.0}, "expected_tps": None}]
    records = [{"machine": {"fingerprint": "here"}, "model": {"name": "a.gguf"}, "rows": rows},
               {"machine": {"fingerprint": "elsewhere"}, "model": {"name": "b.gguf"}, "rows": rows}]
    found, models = calibration.ratios(records, "here")
    assert found == [0.5, 0.8] and models == ["a.gguf"]


@pytest.mark.llama
def test_bench_saves_what_it_expected_and_plan_calibrates_on_it(home: Path, smollm2: Path) -> None:
    assert "calibrated" not in invoke("plan", str(smollm2), "-t", "2").stdout  # nothing saved yet
    res = invoke("bench", str(smollm2), "--threads", "2", "--prompt-tokens", "16", "-n", "8", "-r", "2", "--save",
                 "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]  # the sweep's row, and chat's own configuration if it differs
    assert all(r["expected_tps"] > 0 for r in rows)
    factor = math.exp(sum(math.log(r["gen"]["median"] / r["expected_tps"]) for r in rows) / len(rows))

    plan = json.loads(invoke("plan", str(smollm2), "-t", "2", "--json").stdout)
    e = plan["rows"][0]["expected"]
    assert e["calibrated_on"] == len(rows) and e["calibration"] == pytest.approx(factor, rel=1e-2)
    assert plan["speed_model"]["fitted_on"] == sp.shipped().fitted_on
    text = invoke("plan", str(smollm2), "-t", "2")
    assert f"calibrated on {len(rows)} saved bench row(s) of this machine" in text.stdout, text.stdout
    # reversible: ignored on request, and never applied to a machine described instead of this one
    plain = json.loads(invoke("plan", str(smollm2), "-t", "2", "--no-calibration", "--json").stdout)
    assert plain["rows"][0]["expected"]["calibrated_on"] == 0
    assert plain["rows"][0]["expected"]["gen_tps"] == pytest.approx(e["gen_tps"] / e["calibration"], rel=1e-2)
    other = json.loads(invoke("plan", str(smollm2), "-t", "2", "--ram", "8GiB", "--json").stdout)
    assert other["rows"][0]["expected"]["calibrated_on"] == 0


def test_plan_shows_an_expected_speed_for_r1_on_a_described_machine_offline(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["deepseek-r1", "--gpu-name", "RTX 3090", "--ram", "768GiB", "--bandwidth", "cpu=460GB/s", "-ngl", "8",
            "-t", "12", "-c", "8192"]
    data = json.loads(invoke("plan", *args, "--json").stdout)
    (row,) = data["rows"]
    e = row["expected"]
    assert e["kind"] == "hybrid" and e["low_tps"] < e["gen_tps"] < e["high_tps"] < row["decode_bound_tps"]
    assert e["closest_published"]["kind"] == "hybrid" and e["closest_published"]["source"]
    text = invoke("plan", *args, env={"COLUMNS": "80"}).stdout
    assert "expected:" in text and "closest published run:" in text and "a token's time:" in text
    assert all(len(line) <= 80 for line in text.splitlines()), text


def test_every_catalog_quant_has_a_size_offline(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = invoke("models", "--json")
    assert res.exit_code == 0, res.output
    missing = [(r["model"], r["quant"]) for r in json.loads(res.stdout)["models"] if r["in_catalog"] and
               not r["size_bytes"]]
    assert missing == []


def test_ram_is_measured_on_every_thread_and_a_one_thread_figure_is_measured_again(tmp_path: Path) -> None:
    from r1run.home import Home
    from r1run.planner import bandwidth

    home = Home(tmp_path / "home")
    cache = home.cache / "bandwidth.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"ram_bytes_per_s": 1.0, "how": "numpy copy of 256 MiB, one thread, best of 0.5 s"}))
    fresh = bandwidth.ram_bandwidth(home)
    assert fresh > 1e9 and json.loads(cache.read_text())["how"] == bandwidth.MEASURE_HOW
    cache.write_text(json.dumps({"ram_bytes_per_s": 5e9, "how": bandwidth.MEASURE_HOW}))
    assert bandwidth.ram_bandwidth(home) == 5e9  # measured the same way: kept


def test_a_ram_figure_measured_while_others_used_the_cpus_is_measured_again_keeping_the_highest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from r1run import cpuload
    from r1run.home import Home
    from r1run.planner import bandwidth

    monkeypatch.delenv(cpuload.BUSY_ENV)  # the suite's "never busy" (conftest) off: r1run's own limit
    home = Home(tmp_path / "home")
    cache = home.cache / "bandwidth.json"
    cache.parent.mkdir(parents=True)

    def cached(value: float, share: float, probes: int) -> None:
        cache.write_text(json.dumps({"ram_bytes_per_s": value, "how": bandwidth.MEASURE_HOW, "busy_share": share,
                                     "probes": probes}))

    cached(1e6, 0.5, 1)  # 1 MB/s, others busy: measured again, and the new figure is higher
    fresh = bandwidth.ram_bandwidth(home)
    entry = json.loads(cache.read_text())
    assert fresh > 1e9 and entry["ram_bytes_per_s"] == fresh and entry["probes"] == 2
    cached(1e15, 0.5, 1)  # an earlier figure above anything measured now: it stands (a bound)
    assert bandwidth.ram_bandwidth(home) == 1e15 and json.loads(cache.read_text())["probes"] == 2
    cached(1e6, 0.5, cpuload.SETTLE_PROBES)  # the best of SETTLE_PROBES busy ones: kept, not measured again
    assert bandwidth.ram_bandwidth(home) == 1e6
    cached(1e6, 0.05, 1)  # quiet enough: kept
    assert bandwidth.ram_bandwidth(home) == 1e6


def test_the_logits_cross_the_network_only_when_an_rpc_device_holds_the_output_layer() -> None:
    from r1run.planner import memory as mem
    from r1run.planner import placement as pl
    from r1run.planner import r1_quants
    from r1run.planner.machine import Device, MachineSpec

    info = r1_quants.model_info("UD-IQ1_S")
    n = info.hparams.block_count
    worker = Device("RPC0", "rpc", "RPC host", 400 * GiB, 400 * GB, "h:50052")
    machine = MachineSpec(ram=64 * GiB, cpu_bandwidth=80 * GB, devices=(worker,))
    spec = mem.ContextSpec(ctx=2048)
    every = sp.Workload.from_plan(pl.plan_run(info, machine, pl.Caps(), spec, n + 1))
    assert every.logits_bytes == 4 * info.hparams.vocab_size  # R1's 129,280 floats, 0.5 MB a token
    layers_only = sp.Workload.from_plan(pl.plan_run(info, machine, pl.Caps(), spec, n))
    assert layers_only.logits_bytes == 0  # the output layer stayed here
    gemma = next(r for r in published_runs.runs() if r.id == "llama-16276-rpc-5090-1660-gemma3-4b-q4_0")
    assert fit.workload(gemma).logits_bytes == 4 * 262144
