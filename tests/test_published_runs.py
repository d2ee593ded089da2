"""The shipped table of published speed measurements (planner/data/published_runs.json): every row sourced,
quoted, self-consistent and physically possible; the table spread over the kinds of machine the speed model
must cover."""

from __future__ import annotations

import re

import pytest

from r1run.planner import gpus
from r1run.planner import published as pub
from r1run.planner import published_runs as pr

RUNS = pr.runs()
IDS = [r.id for r in RUNS]
_SOURCE = re.compile(r"^(https?://\S+|[\w.-]+/[\w.-]+#\d+|[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+)$")


def _as_published(value: float) -> str:
    """A figure as a publisher writes it: 7.0 -> '7', 11.89 -> '11.89'."""
    return f"{value:g}"


def _active_bytes(run: pr.PublishedRun) -> float:
    assert run.file_bytes is not None
    return run.file_bytes * run.params_active / run.params_total


def test_every_row_loads_with_a_unique_slug():
    assert len(IDS) == len(set(IDS))
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", i) for i in IDS), IDS
    assert pr.by_id(IDS[0]) is RUNS[0] and pr.by_id("no-such-run") is None


@pytest.mark.parametrize("run", RUNS, ids=IDS)
def test_a_row_names_its_source_and_quotes_its_figures(run: pr.PublishedRun):
    assert _SOURCE.match(run.source), run.source
    assert run.source_title.strip()
    assert _as_published(run.gen_tps) in run.quote, (run.gen_tps, run.quote)
    if run.prompt_tps is not None:
        assert _as_published(run.prompt_tps) in run.quote, (run.prompt_tps, run.quote)
    assert run.date is None or re.fullmatch(r"20\d\d-(0[1-9]|1[0-2])", run.date)


@pytest.mark.parametrize("run", RUNS, ids=IDS)
def test_a_row_is_self_consistent(run: pr.PublishedRun):
    m = run.machine
    assert run.engine in pr.ENGINES and run.placement in pr.PLACEMENTS
    assert 0 < run.params_active <= run.params_total
    assert 0.01 < run.gen_tps < 1000
    assert run.prompt_tps is None or 0.1 < run.prompt_tps < 100_000
    for g in m.gpus + m.rpc_gpus:
        spec = gpus.lookup(g.name)
        assert spec is not None and spec.name == g.name, f"{g.name!r} is not a row of gpus.json"
        assert g.count >= 1
    if run.file_bytes is not None:  # 1.3 to 17 bits per weight: from IQ1_S to F16
        assert 1.3 < run.file_bytes * 8 / run.params_total < 17, run.file_bytes
    assert m.ram_bandwidth_gbs is None or 10 < m.ram_bandwidth_gbs < 2000
    # where weights sit in RAM, the RAM's bandwidth is essential: no row without it
    if run.placement in ("cpu", "gpu+cpu", "unified", "paging"):
        assert m.ram_bandwidth_gbs is not None, "weights in RAM need the RAM's bandwidth"
    kinds = {"cpu": not m.gpus, "unified": m.unified, "rpc": m.rpc_hosts > 0,
             "gpu": bool(m.gpus) and not m.unified, "gpu+cpu": bool(m.gpus) and not m.unified}
    assert kinds.get(run.placement, True), (run.placement, m)
    if m.unified:
        assert all(g.name.startswith("Apple ") for g in m.gpus)
    if run.placement == "gpu+cpu":
        assert run.experts_on_cpu or (run.gpu_layers or 0) < 61
    if run.placement == "paging":  # the weights do not fit in RAM and VRAM together
        vram = sum(gpus.lookup(g.name).memory_bytes * g.count for g in m.gpus)  # type: ignore[union-attr]
        assert run.file_bytes and m.ram_bytes and run.file_bytes > m.ram_bytes + vram


@pytest.mark.parametrize("run", [r for r in RUNS if r.file_bytes is not None], ids=lambda r: r.id)
def test_no_row_reads_its_active_weights_faster_than_its_fastest_memory(run: pr.PublishedRun):
    # Decode reads at least the active weights once per token; a row claiming more than its fastest memory
    # could deliver (with 20% slack for cache and rounding) has a typo in a figure or a size.
    m = run.machine
    fastest = max([m.ram_bandwidth_gbs or 0.0] + [gpus.lookup(g.name).bandwidth / 1e9  # type: ignore[union-attr]
                                                  for g in m.gpus + m.rpc_gpus])
    needed = run.gen_tps * _active_bytes(run) / 1e9
    assert needed <= 1.2 * fastest, f"{needed:.0f} GB/s needed, {fastest:.0f} GB/s available"


def test_catalog_quants_use_the_catalogs_published_size():
    sizes = {s.quant: s.bytes for s in pub.all_sizes() if s.repo == "unsloth/DeepSeek-R1-GGUF"}
    for run in RUNS:
        if run.model == "deepseek-r1" and run.quant in sizes:
            assert run.file_bytes == sizes[run.quant], run.id


def test_the_issues_named_runs_are_present():
    by_figure = {(r.machine.cpu, r.quant, r.gen_tps) for r in RUNS}
    assert ("AMD EPYC 9654", "UD-IQ1_S", 3.28) in by_figure
    two_h100 = [r for r in RUNS if r.quant == "UD-IQ1_S" and [(g.name, g.count) for g in r.machine.gpus] == [("H100", 2)]]
    assert any(r.gen_tps == 11.89 and r.gpu_layers == 62 and "q4_0" in (r.flags or "") for r in two_h100)


def test_the_table_spreads_over_the_machines_the_model_must_cover():
    assert len(RUNS) >= 16
    deepseek = [r for r in RUNS if r.arch == "deepseek2"]
    small = [r for r in RUNS if r.params_total < 100e9]
    assert {"cpu", "gpu+cpu", "rpc", "paging"} <= {r.placement for r in deepseek}
    assert any(r.machine.gpu_count >= 2 and r.placement == "gpu" for r in deepseek)   # several GPUs
    assert any(r.machine.gpu_count == 1 and r.placement == "gpu+cpu" for r in deepseek)  # one GPU plus RAM
    assert {r.engine for r in deepseek} == set(pr.ENGINES)
    assert any(r.placement == "unified" for r in RUNS)  # Apple silicon
    assert {"cpu", "gpu", "unified"} <= {r.placement for r in small}
    assert any(r.params_active < r.params_total for r in small)  # a small MoE
