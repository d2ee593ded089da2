"""This CPU's arithmetic, measured with llama-bench on a probe model quantized by llama-quantize (bench.arithmetic).

The conversion and the speed model's use of it are pure; the probe itself runs the real llama.cpp build on the
model it writes, and `r1run plan` on this machine shows what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import run_cli
from r1run import cpuload
from r1run.bench import arithmetic as ar
from r1run.planner import speed as sp
from r1run.planner.placement import Stage

P = sp.Params()


def test_probe_type_stands_in_for_types_that_need_an_importance_matrix():
    assert ar.probe_type("Q4_1") == "Q4_1" and ar.probe_type("q8_0") == "Q8_0"
    assert ar.probe_type("IQ1_S") == "Q4_K_M" and ar.probe_type("IQ2_XXS") == "Q4_K_M"
    assert ar.probe_type("IQ4_XS") == "IQ4_XS"  # llama-quantize makes it without one
    assert ar.probe_type("BF16") == "BF16"
    assert ar.probe_type(None) == ar.probe_type("all F32 (guessed)") == "Q4_K_M"


def test_from_speeds_takes_out_the_per_layer_costs_the_model_counts_anyway():
    layers_1 = ar.N_LAYER * (P.cpu_layer_s + P.cpu_thread_layer_s)
    layers_2 = ar.N_LAYER * (P.cpu_layer_s + 2 * P.cpu_thread_layer_s)
    t1 = ar.PROBE_PARAMS * 40e-12 + layers_1           # 25 G parameters/s on one thread
    t2 = ar.PROBE_PARAMS * 40e-12 / 1.4 + layers_2     # two threads 1.4x one (2 vCPUs of a VM)
    size = ar.PROBE_PARAMS * 5 // 8  # Q4_1: 5 bits a weight
    a = ar.from_speeds(1 / t1, 1 / t2, 2, "Q4_1", file_type="Q4_1", params=P, probe_bytes=size)
    assert a.param_s == pytest.approx(40e-12) and a.speedup == pytest.approx(1.4) and a.covers_type
    assert a.byte_s == pytest.approx(40e-12 * 8 / 5, rel=1e-3)
    # a second thread slower than one (a busy machine) is taken as no gain, never as a loss; and never more
    # than linear
    assert ar.from_speeds(1 / t1, 0.5 / t1, 2, "Q4_1", file_type="Q4_1", params=P, probe_bytes=size).speedup == 1.0
    assert ar.from_speeds(1 / t1, 10 / t1, 2, "Q4_1", file_type="Q4_1", params=P, probe_bytes=size).speedup == 2.0
    assert not ar.from_speeds(1 / t1, 1 / t2, 2, "Q4_K_M", file_type="IQ1_S", params=P,
                              probe_bytes=size).covers_type


def test_speedup_between_the_measured_threads_is_read_along_their_line():
    a = sp.CpuArithmetic(param_s=40e-12, threads=4, speedup=2.5, quant="Q4_K_M")
    assert a.speedup_at(1) == 1.0 and a.speedup_at(4) == 2.5 and a.speedup_at(3) == pytest.approx(2.0)
    assert sp.CpuArithmetic(param_s=40e-12, threads=1, speedup=1.0, quant="Q4_K_M").speedup_at(8) == 8.0


def _cpu_workload(arithmetic: sp.CpuArithmetic | None, *, iquant: bool = False) -> sp.Workload:
    # 1 GB of 4.5-bit weights in RAM at 50 GB/s, 2 threads: compute-bound at the fitted rate too
    stage = Stage("cpu", "CPU", int(1e9), 50e9, layers=24)
    return sp.Workload((stage,), threads=2, bits_per_weight=4.5, iquant=iquant, arithmetic=arithmetic)


def test_a_measured_arithmetic_replaces_the_fitted_one():
    fitted = sp.gen_tps(_cpu_workload(None), P)
    slow = sp.CpuArithmetic(param_s=P.cpu_param_s * 3, threads=2, speedup=1.4, quant="Q4_K_M")
    measured = sp.gen_tps(_cpu_workload(slow), P)
    assert fitted is not None and measured is not None and measured < fitted / 2
    # measured per byte too: the model's own bytes are what it costs (its 1 GB at 0.2 ns a byte, two threads 1.4x;
    # its reads at the RAM's bandwidth, 29 ms, barely show beside that)
    per_byte = sp.CpuArithmetic(param_s=1.0, threads=2, speedup=1.4, quant="Q4_K_M", byte_s=2e-10)
    parts = {x.name: x.seconds for x in sp.time_parts(_cpu_workload(per_byte), P) or ()}
    assert parts["CPU arithmetic"] == pytest.approx(1e9 * 2e-10 / 1.4, rel=0.01)
    parts = {x.name: x.why for x in sp.time_parts(_cpu_workload(slow), P) or ()}
    assert "measured here" in parts["CPU arithmetic"] and "2 threads 1.40x one" in parts["CPU arithmetic"]
    # an i-quant measured through its Q4_K_M stand-in keeps the fitted i-quant factor; measured as itself, not
    stand_in = sp.CpuArithmetic(param_s=P.cpu_param_s * 3, threads=2, speedup=1.4, quant="Q4_K_M",
                                covers_type=False)
    itself = sp.CpuArithmetic(param_s=P.cpu_param_s * 3, threads=2, speedup=1.4, quant="IQ4_XS")
    iq_stand_in = sp.gen_tps(_cpu_workload(stand_in, iquant=True), P)
    iq_itself = sp.gen_tps(_cpu_workload(itself, iquant=True), P)
    assert iq_stand_in is not None and iq_itself is not None and iq_stand_in < iq_itself


@pytest.mark.llama
def test_probe_measures_with_the_real_build_and_caches_per_type(llama_bin: Path, tmp_path: Path):
    said: list[str] = []
    bench, quantize = llama_bin / "llama-bench", llama_bin / "llama-quantize"
    a = ar.measured(tmp_path, bench, quantize, "Q4_1", 2, on_status=said.append)
    assert a is not None and a.quant == "Q4_1" and a.covers_type and a.threads == 2
    assert 1e9 < 1 / a.param_s < 1e12  # G parameters/s on one thread: any CPU llama.cpp runs on
    assert 1.0 <= a.speedup <= 2.0
    assert said == ["measuring this CPU's Q4_1 arithmetic with llama-bench (once per build and type)"]
    entry = next(iter(json.loads((tmp_path / "arithmetic.json").read_text()).values()))
    assert set(entry["tps"]) == {"1", "2"} and entry["tps"]["1"] > 0  # the speeds it was computed from
    # the same build, type and threads: from the cache, without measuring
    assert ar.measured(tmp_path, bench, quantize, "Q4_1", 2, on_status=said.append) == a and len(said) == 1
    # an i-quant llama-quantize cannot make without an importance matrix: Q4_K_M stands in, said as such
    iq = ar.measured(tmp_path, bench, quantize, "IQ1_S", 1, on_status=said.append)
    assert iq is not None and iq.quant == "Q4_K_M" and not iq.covers_type and iq.threads == 1
    assert said[-1].startswith("measuring this CPU's Q4_K_M arithmetic")


@pytest.mark.llama
def test_a_failed_probe_is_remembered_and_plans_go_on_without_it(llama_bin: Path, tmp_path: Path):
    said: list[str] = []
    # llama-bench given as the quantizer: a real program that cannot quantize
    assert ar.measured(tmp_path, llama_bin / "llama-bench", llama_bin / "llama-bench", "Q4_0", 1,
                       on_status=said.append) is None
    entry = next(iter(json.loads((tmp_path / "arithmetic.json").read_text()).values()))
    assert entry["failed"].startswith("llama-quantize could not make Q4_0")
    assert ar.measured(tmp_path, llama_bin / "llama-bench", llama_bin / "llama-bench", "Q4_0", 1,
                       on_status=said.append) is None and len(said) == 1
    assert ar.measured(tmp_path, None, llama_bin / "llama-quantize", "Q4_0", 1) is None  # no llama-bench


@pytest.mark.llama
def test_plan_on_this_machine_shows_the_measured_arithmetic(home: Path, smollm2: Path):
    (home / "cache" / "arithmetic.json").unlink(missing_ok=True)  # measured afresh, not shared by other tests
    res = run_cli("plan", str(smollm2), "--threads", "2", "--json")
    assert res.returncode == 0, res.stderr
    expected = json.loads(res.stdout)["rows"][0]["expected"]
    a = expected["cpu_arithmetic"]
    assert a["quant"] == "Q4_1" and a["threads"] == 2 and a["param_s"] > 0
    assert "measuring this CPU's Q4_1 arithmetic with llama-bench" in res.stderr
    text = run_cli("plan", str(smollm2), "--threads", "2")
    assert text.returncode == 0 and "this CPU's arithmetic, measured:" in text.stdout
    assert "measuring" not in text.stderr  # measured once
    # a described machine is not this one: nothing measured here applies to it
    described = json.loads(run_cli("plan", str(smollm2), "--ram", "8GiB", "--json").stdout)
    assert described["rows"][0]["expected"]["cpu_arithmetic"] is None


def test_others_share_counts_the_cpu_time_that_was_not_r1runs():
    before = cpuload.CpuClock(wall=100.0, busy=50.0, ours=5.0)
    # 10 s on 2 CPUs: the machine busy 15 CPU-s, of which r1run and its children 10: others 5 of 20
    assert cpuload.others_share(before, cpuload.CpuClock(110.0, 65.0, 15.0), 2) == pytest.approx(0.25)
    assert cpuload.others_share(before, cpuload.CpuClock(110.0, 60.0, 15.0), 2) == 0.0  # never below nothing
    assert cpuload.others_share(before, cpuload.CpuClock(110.0, 200.0, 5.0), 2) == 1.0
    assert cpuload.others_share(before, before, 2) == 0.0
    now = cpuload.CpuClock.now()
    assert now.busy > 0 and now.ours > 0


def test_the_busy_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    for value, limit in (("0.3", 0.3), ("1", 1.0), ("7", cpuload.BUSY_SHARE), ("lots", cpuload.BUSY_SHARE)):
        monkeypatch.setenv(cpuload.BUSY_ENV, value)
        assert cpuload.busy_limit() == limit
    monkeypatch.delenv(cpuload.BUSY_ENV)
    assert cpuload.busy_limit() == cpuload.BUSY_SHARE


@pytest.mark.llama
def test_a_probe_that_shared_the_cpus_is_said_and_measured_again(llama_bin: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    # one CPU spinner per CPU beside the probe: others used far more than BUSY_SHARE of the machine
    import multiprocessing
    import os

    monkeypatch.delenv(cpuload.BUSY_ENV)
    said: list[str] = []
    bench, quantize = llama_bin / "llama-bench", llama_bin / "llama-quantize"
    ctx = multiprocessing.get_context("spawn")
    spinners = [ctx.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for p in spinners:
        p.start()
    try:
        first = ar.measured(tmp_path, bench, quantize, "Q4_0", 1, on_status=said.append)
    finally:
        for p in spinners:
            p.terminate()
            p.join()
    assert first is not None
    entry = next(iter(json.loads((tmp_path / "arithmetic.json").read_text()).values()))
    assert entry["busy_share"] > cpuload.BUSY_SHARE and entry["probes"] == 1, entry
    first_share = entry["busy_share"]
    assert said[-1].startswith("other programs used") and said[-1].endswith("it measures again next time")
    # measured again, at most SETTLE_PROBES times in all, keeping the quietest; then from the cache
    for _ in range(cpuload.SETTLE_PROBES + 1):
        ar.measured(tmp_path, bench, quantize, "Q4_0", 1, on_status=said.append)
    again = [s for s in said if s.startswith("measuring this CPU's Q4_0 arithmetic with llama-bench again")]
    assert 1 <= len(again) <= cpuload.SETTLE_PROBES - 1, said
    entry = next(iter(json.loads((tmp_path / "arithmetic.json").read_text()).values()))
    assert entry["busy_share"] <= first_share and entry["probes"] == len(again) + 1
    assert cpuload.settled(entry)


def _spin() -> None:
    while True:
        pass
