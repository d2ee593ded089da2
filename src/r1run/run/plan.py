"""`r1run plan`'s core: for each quant, the run configuration chat would use on this machine (or one described),
where its memory goes, how fast it can decode, and its flags. Returns a PlanReport; never prints.

The configuration comes from `r1run.run.config.decide`, exactly as for chat, serve and bench, and the flags
from `llama.args.run_flags`, the builder every run's argv is made with: what plan prints is what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from r1run import catalog as cat
from r1run import rpc
from r1run.errors import ToolMissing
from r1run.home import Home
from r1run.llama import args, discover
from r1run.llama.probe import Capabilities
from r1run.models import ModelNotReady, choose
from r1run.planner.measure import fit_params
from r1run.planner.plan import (
    FitComparison,
    ModelSource,
    PlanReport,
    expected_row,
    machine_row,
    row_for,
    sources,
    speed_model_summary,
    verdict,
)
from r1run.planner.speed import Calibration, CpuArithmetic
from r1run.run.config import Request, context_spec, decide
from r1run.run.prepare import MeasurementFinder, ProfileFinder, find_engine, machine_for, threads_for
from r1run.run.target import Target, resolve


@dataclass(frozen=True)
class PlanRequest:
    run: Request                      # the same options chat takes (model, context, placement, machine...)
    quants: list[str] | None = None   # several quants of a catalog model; ["*"] for all of them
    llama_bin: Path | None = None


# this machine's correction to the expected speed, from its saved bench results (bench.calibration)
Calibrator = Callable[[tuple[str, ...]], Optional[Calibration]]
# this CPU's arithmetic for a file type at a thread count, measured with the engine's programs (bench.arithmetic)
ArithmeticFinder = Callable[[Capabilities, Optional[str], int], Optional[CpuArithmetic]]


def plan(home: Home, pr: PlanRequest, find_profile: ProfileFinder | None = None,
         find_measurement: MeasurementFinder | None = None, calibrate: Calibrator | None = None,
         measure_arithmetic: ArithmeticFinder | None = None) -> PlanReport:
    req = pr.run
    choice = choose(home, req.model, pr.quants[0] if pr.quants and pr.quants != ["*"] else None)
    quants = pr.quants or ([choice.quant] if choice.quant else None)
    label, srcs, warnings = sources(choice.model, quants, home)
    engine, engine_note, caps = _engine(home, req, pr.llama_bin, _target(home, choice.model, srcs[0]), warnings,
                                        find_measurement)
    found = rpc.check_workers(req.rpc, caps) if req.rpc and not req.machine.device_memory else []
    machine = machine_for(home, req.machine, req.rpc, found)
    if machine.described == "detected" and not machine.devices:
        warnings.append("no GPU found: planning CPU-only (describe one with --gpu-name 'RTX 4090' or "
                        "--gpu-memory 24GiB)")
    threads = threads_for(req)
    # a described machine is not this one: its own bench rows say nothing about it
    calibration = calibrate(req.rpc) if calibrate is not None and machine.described == "detected" else None
    here = measure_arithmetic if machine.described == "detected" else None
    rows, specs = [], []
    for src in srcs:
        target = _target(home, choice.model, src)
        profile = (find_profile(home, target, req.rpc) if find_profile is not None and req.profile
                   and src.path is not None else None)
        config = decide(target, req, caps, machine, default_threads=threads, profile=profile)
        fit = None
        if src.path is not None and caps.fit and not req.machine.overrides_memory:
            fit = _llama_fit(caps, src.path, config.spec)
        specs.append(context_spec(config.spec))
        rows.append(row_for(src, config.plan, specs[-1], args.run_flags(config.spec, caps), fit,
                            repo=None if src.origin == "local" else _repo(home, choice.model),
                            extra_notes=[n for n in config.notes if "does not fit" in n],
                            expected=expected_row(config.plan, machine, engine, config.spec.threads, calibration,
                                                  cpu_arithmetic(here, caps, src.info.file_type, config))))
    catalog = any(src.origin != "local" for src in srcs)
    return PlanReport(model=label, machine=machine_row(machine), cache_type_k=specs[0].cache_type_k,
                      cache_type_v=specs[0].cache_type_v, rows=rows, warnings=warnings,
                      chosen_because=choice.reason and choice.describe(), engine=engine,
                      engine_note=engine_note or None, speed_model=speed_model_summary(),
                      verdict=verdict(rows, label if catalog else str(req.model), catalog))


def cpu_arithmetic(find: ArithmeticFinder | None, caps: Capabilities, file_type: str | None,
                   config) -> CpuArithmetic | None:
    """This CPU's measured arithmetic for a plan that computes on the CPU, at its threads (None: not measured)."""
    if find is None or config.spec.threads is None or not any(s.kind == "cpu" and s.bytes
                                                              for s in config.plan.stages):
        return None
    return find(caps, file_type, config.spec.threads)


def _repo(home: Home, model: str | None) -> str | None:
    catalog = cat.load(home)
    return catalog.model(model or catalog.default_model).repo


def _engine(home: Home, req: Request, llama_bin: Path | None, target: Target, warnings: list[str],
            find_measurement: MeasurementFinder | None) -> tuple[str, str, Capabilities]:
    """The engine chat would run `target` on (r1run.run.engine decides, as for chat), why, and what its programs can
    do: the flags plan shows are that engine's (ik_llama.cpp's -rtr and K cache, for one)."""
    try:
        install, note = find_engine(home, req.engine, target, llama_bin, find_measurement, req.rpc)
    except ToolMissing:
        warnings.append("no llama.cpp found: flags assume a current release; run `r1run build`")
        return "llama.cpp", "", Capabilities.assumed_current()
    return install.engine, note, discover.capabilities(install, home)


def _target(home: Home, model: str, src: ModelSource) -> Target:
    """What chat would run for this source: the same resolution when the files are here, else the catalog's
    settings for a quant known only from its header."""
    if src.origin in ("local", "download"):
        try:
            return resolve(home, str(src.path) if src.origin == "local" else model,
                           None if src.origin == "local" else src.label)
        except ModelNotReady:
            pass
    catalog = cat.load(home)
    entry = catalog.model(model)
    settings = entry.settings_for(src.label)
    return Target(name=entry.key, path=Path(src.info.source), settings=settings, settings_source="catalog",
                  info=src.info, prompt_template=settings.prompt_template, key=entry.key, quant=src.label)


def _llama_fit(caps: Capabilities, path: Path, spec: args.RunSpec) -> FitComparison | None:
    """What llama.cpp's own `llama-fit-params` would choose, shown beside r1run's placement."""
    program = caps.path("fit-params")
    if program is None:
        return None
    cs = context_spec(spec)
    ans = fit_params(program, path, ["-c", str(cs.ctx), "-ctk", cs.cache_type_k, "-ctv", cs.cache_type_v,
                                     "-ub", str(cs.ubatch)])
    return FitComparison(ok=ans.ok, flags=ans.flags, message=ans.message)
