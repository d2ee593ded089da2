"""`r1run plan`: which quant fits this machine, how to place it, how fast it can be. Returns data, never prints.

Where a model's header comes from, best first: a local file or folder; a completed download
(its manifest); the hub, header only, by HTTP Range; for DeepSeek-R1's Unsloth quants, the
synthetic description shipped with r1run (labelled as such in every row's notes).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict

from r1run import catalog as cat
from r1run import hub
from r1run.download import manifest as mf
from r1run.errors import BadInput, R1runError
from r1run.gguf import read_model
from r1run.gguf.model import ModelInfo
from r1run.gguf.remote import read_remote_model
from r1run.planner import memory as mem
from r1run.planner import placement as pl
from r1run.planner import published as pub
from r1run.planner import r1_quants, speed
from r1run.planner.machine import MachineSpec

SCHEMA = "r1run.plan/1"


@dataclass(frozen=True)
class ModelSource:
    label: str                  # quant name or file name
    info: ModelInfo
    origin: str                 # local | download | hub | synthetic
    path: Path | None = None    # local first file, when there is one


class DeviceRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    kind: str
    capacity_bytes: int
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    free_after_bytes: int
    layers: list[int]
    expert_layers: list[int]


class FitComparison(BaseModel):
    model_config = ConfigDict(frozen=True)
    ok: bool
    flags: list[str]
    message: str = ""


class ExpectedRow(BaseModel):
    """The expected speed (`planner.speed`): generation with the range most published runs fell in, prompt
    processing from what similar published runs did, where a token's time goes, the published run closest."""

    model_config = ConfigDict(frozen=True)
    gen_tps: float
    low_tps: float
    high_tps: float
    prompt_tps: Optional[float] = None
    kind: str                              # cpu | gpu | hybrid | rpc | paging
    engine: str
    calibration: float = 1.0               # this machine's factor from its saved bench rows (1: none)
    calibrated_on: int = 0
    seconds_per_token: dict[str, float]
    closest_published: Optional[dict] = None
    cpu_arithmetic: Optional[dict] = None  # this CPU's, measured here (bench.arithmetic); None: the fitted figure


class QuantPlan(BaseModel):
    model_config = ConfigDict(frozen=True)
    quant: str
    source: str
    origin: str
    size_bytes: int
    architecture: str
    kv_layout: str
    n_layers: int
    ctx: int
    max_ctx: int
    kv_bytes: int
    compute_bytes: int
    strategy: str
    gpu_layers: int
    cpu_moe_layers: list[int]
    fits_memory: bool
    weights_on: dict[str, int]          # gpu / rpc / cpu / disk -> bytes of weights
    streams_from_disk_bytes: int
    devices: list[DeviceRow]
    bytes_per_token: dict[str, int]
    decode_bound_tps: Optional[float]
    early_guide_layers: Optional[int]
    flags: list[str]
    llama_fit: Optional[FitComparison] = None
    notes: list[str]
    size_from: str = "header"              # header (read from a GGUF header) | published (the publisher's figure)
    published_bytes: Optional[int] = None  # the publisher's size, when r1run ships it
    published_source: Optional[str] = None
    short_by_bytes: int = 0                # memory missing for this configuration (0 when it fits)
    expected: Optional[ExpectedRow] = None


class MachineRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    described: str
    ram_bytes: int
    cpu_bandwidth: float
    unified: bool
    devices: list[dict]
    cpu_bandwidth_source: str = ""      # measured on this machine | vendor figure | --bandwidth | assumed ...


class Verdict(BaseModel):
    """The answer at the end of a plan: which quants fit, the one to take, the next command."""

    model_config = ConfigDict(frozen=True)
    fits: list[str]
    best: Optional[str] = None             # the largest quant that fits (best quality)
    closest: Optional[str] = None          # when none fits: the one short by the least memory
    closest_short_by_bytes: int = 0
    next_command: Optional[str] = None


class PlanReport(BaseModel):
    model_config = ConfigDict(frozen=True)
    schema_: str = SCHEMA
    model: str
    machine: MachineRow
    cache_type_k: str
    cache_type_v: str
    rows: list[QuantPlan]
    warnings: list[str] = []
    chosen_because: Optional[str] = None  # why this model, when the command named none
    speed_model: Optional[dict] = None     # how well the expected speed did on published runs
    verdict: Optional[Verdict] = None
    engine: str = "llama.cpp"  # the engine chat would run it on (--engine auto chooses as chat does)
    engine_note: Optional[str] = None  # why, when there was a choice

    def to_json(self) -> str:
        data = self.model_dump(mode="json")
        data = {"schema": data.pop("schema_"), **data}  # the tag first (docs/json.md)

        return json.dumps(data, indent=2)


def row_for(src: ModelSource, p: pl.RunPlan, spec: mem.ContextSpec, flags: list[str],
            fit: FitComparison | None = None, repo: str | None = None, extra_notes: Sequence[str] = (),
            expected: ExpectedRow | None = None) -> QuantPlan:
    """One row of the report: a quant's plan `p` at `spec`, with the flags that run it (pure)."""
    info = src.info
    kv = mem.kv_cache(info, spec)
    published = pub.lookup(repo, src.label) if repo else None
    where: dict[str, int] = {"gpu": 0, "rpc": 0, "cpu": 0, "disk": p.streams_from_disk}
    for d in p.devices:
        where[d.kind] = where.get(d.kind, 0) + d.weights
    where["cpu"] = max(0, where["cpu"] - p.streams_from_disk)
    notes = [*extra_notes, *p.notes, *[w for w in info.warnings if w not in p.notes]]
    return QuantPlan(
        quant=src.label, source=info.source, origin=src.origin, size_bytes=info.tensor_bytes,
        architecture=info.architecture, kv_layout=info.kv_layout, n_layers=info.hparams.block_count, ctx=spec.ctx,
        max_ctx=p.max_ctx, kv_bytes=kv.total, compute_bytes=mem.compute_buffer(info, spec).total,
        strategy=p.strategy, gpu_layers=p.gpu_layers, cpu_moe_layers=p.cpu_moe_layers, fits_memory=p.fits_memory,
        weights_on=where, streams_from_disk_bytes=p.streams_from_disk,
        devices=[DeviceRow(name=d.name, kind=d.kind, capacity_bytes=d.capacity, weights_bytes=d.weights,
                           kv_bytes=d.kv, compute_bytes=d.compute, free_after_bytes=d.free_after, layers=d.layers,
                           expert_layers=d.expert_layers) for d in p.devices],
        bytes_per_token=p.bytes_per_token, decode_bound_tps=p.decode_bound_tps,
        early_guide_layers=p.early_guide_layers, flags=flags, llama_fit=fit, notes=notes,
        size_from="published" if src.origin == "synthetic" else "header",
        published_bytes=published.bytes if published else None,
        published_source=published.source if published else None,
        short_by_bytes=p.short_by, expected=expected,
    )


def expected_row(p: pl.RunPlan, machine: MachineSpec, engine: str, threads: int | None,
                 calibration: speed.Calibration | None = None,
                 arithmetic: speed.CpuArithmetic | None = None) -> ExpectedRow | None:
    """`planner.speed`'s expectation for a plan, with this CPU's measured arithmetic and calibrated by this
    machine's own bench rows when given (pure)."""
    work = speed.Workload.from_plan(p, engine, machine.cpu_bandwidth_measured, threads, arithmetic)
    model = speed.shipped()
    e = speed.expect(work, model, calibration.factor if calibration is not None else 1.0)
    if e is None:
        return None
    ratio = model.prompt_ratio.get(work.kind)
    near = speed.closest_published(model, work)
    return ExpectedRow(gen_tps=round(e.gen_tps, 3), low_tps=round(e.low, 3), high_tps=round(e.high, 3),
                       prompt_tps=round(e.gen_tps * ratio, 2) if ratio else None, kind=work.kind, engine=engine,
                       calibration=round(e.calibration, 3), calibrated_on=calibration.rows if calibration else 0,
                       seconds_per_token={x.name: round(x.seconds, 6) for x in e.parts}, closest_published=near,
                       cpu_arithmetic=asdict(arithmetic) if arithmetic is not None else None)


def speed_model_summary() -> dict:
    m = speed.shipped()
    return {"fitted_on": m.fitted_on, "leave_one_out_median_factor": m.loo_median,
            "leave_one_out_worst_factor": m.loo_worst, "range_factor": m.spread}


def verdict(rows: list[QuantPlan], model: str, catalog: bool) -> Verdict:
    """Which quants fit (largest first is best), or which is closest, and the command to run next (pure)."""
    fits = [r for r in rows if r.fits_memory]
    target = f"{model} --quant {{}}" if catalog else shlex.quote(model)
    if fits:
        best = max(fits, key=lambda r: r.size_bytes)
        verb = "chat" if best.origin in ("local", "download") else "download"
        return Verdict(fits=[r.quant for r in fits], best=best.quant,
                       next_command=f"r1run {verb} {target.format(best.quant)}")
    if not rows:
        return Verdict(fits=[])
    closest = min(rows, key=lambda r: r.short_by_bytes)
    verb = "chat" if closest.origin in ("local", "download") else "download"
    return Verdict(fits=[], closest=closest.quant, closest_short_by_bytes=closest.short_by_bytes,
                   next_command=f"r1run {verb} {target.format(closest.quant)}")


def machine_row(m: MachineSpec) -> MachineRow:
    return MachineRow(described=m.described, ram_bytes=m.ram, cpu_bandwidth=m.cpu_bandwidth, unified=m.unified,
                      cpu_bandwidth_source=m.cpu_bandwidth_source,
                      devices=[{"name": d.name, "kind": d.kind, "label": d.label, "free_bytes": d.free,
                                "bandwidth": d.bandwidth} for d in m.devices])


# --- finding the models' headers --------------------------------------------------------------------

def sources(model: str | None, quants: list[str] | None, home, *,
            offline: bool | None = None) -> tuple[str, list[ModelSource], list[str]]:
    """(model label, one ModelSource per quant, warnings) for a path or a catalog key."""

    warnings: list[str] = []
    if model and (Path(model).expanduser().exists() or model.endswith(".gguf") or "/" in model and not _is_repo(model)):
        if quants:
            raise BadInput("--quant and --all-quants choose among a catalog model's quants, not a file",
                           "pass the quant's file (or folder) instead")
        path = Path(model).expanduser()
        info = read_model(path)
        return path.name, [ModelSource(path.name, info, "local", Path(info.shards[0].path))], warnings
    catalog = cat.load(home)
    entry = catalog.model(model or catalog.default_model)
    if quants == ["*"]:
        names = list(entry.quants)
    elif quants:
        names = [catalog.quant(entry, q).name for q in quants]
    else:
        names = [entry.default_quant]
    out = []
    hub_down: list[str] = ["HF_HUB_OFFLINE is set"] if (hub.offline() if offline is None else offline) else []
    for name in names:
        src = _quant_source(entry, name, home, hub_down=hub_down, warnings=warnings)
        if src is not None:
            out.append(src)
    synthetic = [s.label for s in out if s.origin == "synthetic"]
    if synthetic and hub_down and hub_down[0] != "HF_HUB_OFFLINE is set":
        # one warning for the hub, not one per quant
        warnings.insert(0, f"the hub could not be reached ({hub_down[0]}): {len(synthetic)} quant(s) planned from "
                           "their published sizes")
    if not out:
        raise R1runError(f"could not read the header of any {entry.key} quant",
                         "download one (`r1run download`), check the network, or pass a file path")
    return entry.key, out, warnings


def _is_repo(text: str) -> bool:
    return not Path(text).expanduser().exists() and text.count("/") == 1 and not text.startswith((".", "/", "~"))


def _quant_source(entry, name: str, home, *, hub_down: list[str], warnings: list[str]) -> ModelSource | None:
    """A downloaded file, else the hub's header (unless `hub_down` says why not), else the published size."""
    m = mf.load(home, entry.key, name)
    if m is not None and m.complete and m.files:
        first = sorted(Path(m.dir) / f.path for f in m.files if f.path.endswith(".gguf"))
        if first:
            try:
                return ModelSource(name, read_model(first[0]), "download", first[0])
            except R1runError as exc:
                warnings.append(f"{name}: the downloaded files could not be read ({exc.message}); using the header "
                                "from the hub instead")
    quant = entry.quants[name]
    if not hub_down:
        try:
            return ModelSource(name, read_remote_model(entry.repo, folder_of(quant.include)), "hub")
        except hub.HubUnreachable as exc:
            hub_down.append(exc.message.split(": ", 1)[-1] if exc.message.startswith("hf://") else exc.message)
            # ...and the next quants do not ask again
        except R1runError as exc:
            warnings.append(f"{name}: could not read the header from the hub ({exc.message})")
    if entry.architecture == "deepseek2" and entry.repo == _r1_repo() and name in r1_quants.quant_names():
        return ModelSource(name, r1_quants.model_info(name), "synthetic")
    warnings.append(f"{name}: skipped, no header available offline and no published size shipped")
    return None


def _r1_repo() -> str:
    return r1_quants.data_repo()


def folder_of(include: list[str]) -> str:
    """The repo path to read for a quant's include patterns: 'DeepSeek-R1-UD-IQ1_S/*.gguf' -> the folder."""
    pattern = include[0]
    if "*" not in pattern and "?" not in pattern:
        return pattern
    head = pattern.split("*")[0].split("?")[0]
    return head.rsplit("/", 1)[0] if "/" in head else ""
