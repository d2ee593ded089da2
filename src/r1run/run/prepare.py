"""Everything a model-running command decides before llama.cpp starts, in one call:

    prepared = prepare(home, request, llama_bin)
    prepared.install, prepared.caps     # which llama.cpp, and what its programs can do
    prepared.target                     # the model (and why it was chosen, when the user named none)
    prepared.machine                    # detected, or as the user described it; RPC workers asked once
    prepared.config                     # the run configuration (r1run.run.config.decide)

chat, serve, bench and quickstart call this; `r1run plan` builds the same pieces for each quant.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from r1run import hardware, rpc, running
from r1run.errors import BadInput, LlamaFailed, ModelNotLoaded
from r1run.home import Home
from r1run.llama import discover
from r1run.llama.discover import LlamaInstall
from r1run.llama.probe import Capabilities
from r1run.perf import loadfail
from r1run.planner import bandwidth as bw
from r1run.planner.machine import MachineDescription, MachineSpec, from_hardware, with_overrides
from r1run.rpc import WorkerDevice
from r1run.run import engine
from r1run.run.config import Profile, Request, RunConfig, decide
from r1run.run.target import Target, resolve


@dataclass(frozen=True)
class Prepared:
    install: LlamaInstall
    caps: Capabilities
    target: Target
    machine: MachineSpec
    config: RunConfig
    engine_note: str = ""  # which engine and why (also the first of config.notes), "" when there was no choice

    def record(self, kind: running.Kind, *, name: str = "", url: str = "", log: str = "") -> running.Record:
        """How `r1run ps` shows this run while it lasts."""
        t = self.target
        build = self.install.build
        return running.Record(kind=kind, name=name or t.served_name or t.name, model=t.key, quant=t.quant,
                              paths=tuple(s.path for s in t.info.shards) or (str(t.path),),
                              engine=f"llama.cpp {build.release}" if build else f"llama.cpp ({self.install.origin})",
                              url=url, log=log)


# Finds the tuned profile for a model on this machine (r1run.bench.profile.find_for_target), given by the
# commands that apply one; run/ itself knows nothing of benchmarks.
ProfileFinder = Callable[[Home, Target, tuple[str, ...]], "Profile | None"]
# Finds the stored engine comparison for a model on this machine (r1run.bench.engines.find_for_target).
MeasurementFinder = Callable[[Home, Target], "engine.Measurement | None"]


def prepare(home: Home, req: Request, llama_bin: Path | None, find_profile: ProfileFinder | None = None,
            find_measurement: MeasurementFinder | None = None) -> Prepared:
    """Find llama.cpp and the model, check RPC workers, see the machine, and decide the run (with the tuned
    profile `find_profile` finds, unless the request says --no-profile)."""
    target = resolve(home, req.model, req.quant)
    install, engine_note = find_engine(home, req.engine, target, llama_bin, find_measurement, req.rpc)
    caps = discover.capabilities(install, home)
    # A worker that is down or of another release: a clear error before any model loads.
    found = rpc.check_workers(req.rpc, caps) if req.rpc else []
    machine = machine_for(home, req.machine, req.rpc, found)
    profile = find_profile(home, target, req.rpc) if req.profile and find_profile is not None else None
    config = decide(target, req, caps, machine, default_threads=threads_for(req), profile=profile)
    if engine_note:
        config = replace(config, notes=(engine_note, *config.notes))
    return Prepared(install, caps, target, machine, config, engine_note)


def fall_back(home: Home, req: Request, failed: Prepared, error: ModelNotLoaded,
              find_profile: ProfileFinder | None = None,
              find_measurement: MeasurementFinder | None = None) -> Prepared:
    """After ik_llama.cpp could not load the model (`error`, read from its log by r1run.perf.loadfail): the same
    request on llama.cpp, whose first note says why, when the engine was `auto`; a one-line error when the user
    asked for ik_llama.cpp. Any other failure to load is raised as it is."""
    if failed.install.engine != "ik_llama.cpp" or failed.install.build is None:
        raise error
    what = f"ik_llama.cpp ({failed.install.build.id}) cannot load {failed.target.path.name}: {error.reason}"
    if loadfail.backend_failed(error.reason):  # the build's GPU, not the file: say what to build
        what = f"ik_llama.cpp ({failed.install.build.id}) cannot run here: {error.reason}"
        cpu = ("build it for this machine's CPU: `r1run build --engine ik_llama.cpp --backend cpu`, or run it "
               "where the GPU's driver works")
        if req.engine != "auto" or "llama.cpp" not in discover.built_engines(home):
            raise LlamaFailed(what, f"{cpu}; {error.hint}")
    if req.engine != "auto":
        raise LlamaFailed(what, f"run it on llama.cpp: --engine llama.cpp; {error.hint}")
    if "llama.cpp" not in discover.built_engines(home):
        raise LlamaFailed(what, "build llama.cpp to run it there: `r1run build`")
    run = prepare(home, replace(req, engine="llama.cpp"), None, find_profile, find_measurement)
    could = "could not run here" if loadfail.backend_failed(error.reason) else "could not load this model"
    note = f"engine llama.cpp: ik_llama.cpp {could} ({error.reason}); running it on llama.cpp instead"
    notes = run.config.notes[1:] if run.engine_note else run.config.notes  # not "engine llama.cpp (--engine)"
    return replace(run, config=replace(run.config, notes=(note, *notes)), engine_note=note)


def find_engine(home: Home, requested: str, target: Target, llama_bin: Path | None,
                find_measurement: MeasurementFinder | None = None,
                workers: tuple[str, ...] = ()) -> tuple[LlamaInstall, str]:
    """The programs to run `target` with (r1run.run.engine decides which engine), and the note saying why.
    Programs the user pointed at (--llama-bin) are used as they are."""
    if llama_bin is not None:
        return discover.find(home, llama_bin), ""
    built = {name: m.backend for name, m in discover.built_engines(home).items()}
    measured = (find_measurement(home, target) if find_measurement is not None and requested == "auto"
                and len(built) > 1 else None)
    types = frozenset(t.type for t in target.info.tensors)
    choice = engine.choose(requested, target.info.architecture, built, measured, rpc=bool(workers),
                           tensor_types=types)
    return discover.find(home, None, choice.name), choice.note


def threads_for(req: Request) -> tuple[int, str] | None:
    """r1run's default thread count for this machine; None when the user set one, or described another machine
    (then llama.cpp's default, the cores of wherever it runs)."""
    if req.threads is not None or req.machine.overrides_memory:
        return None
    return default_threads()


def default_threads() -> tuple[int, str]:
    """Physical (performance) cores, less those other programs keep busy; with the reason."""
    cpu = hardware.detect_cpu()
    if cpu.performance_cores:
        n, why = cpu.performance_cores, "performance cores"
    else:
        n, why = max(min(cpu.physical_cores, cpu.usable_cores), 1), "physical cores"
    # llama.cpp's threads wait for each other at every step, so one that shares its core with another
    # program stalls them all: on 2 cores kept busy by other work, 2 threads generated 5-10x slower than
    # 1 (benchmarks/bench_defaults.py, docs/bench.md). Leave the cores other programs are using.
    busy = round(hardware.busy_cores() * cpu.physical_cores / max(cpu.logical_cores, 1))
    if busy >= 1 and n > 1:
        return max(1, n - busy), f"{n} {why} less {busy} busy with other programs"
    return n, why


def machine_for(home: Home, desc: MachineDescription, workers: tuple[str, ...],
                found: list[WorkerDevice]) -> MachineSpec:
    """This machine as detected, with what the user described instead; RPC workers' devices as they reported
    them (`found`), or as `--device-memory` says."""
    rates = bw.parse_bandwidth_option(desc.bandwidth)
    base = from_hardware(hardware.detect(), rates.get("cpu") or bw.ram_bandwidth(home))
    if workers and not found and not desc.device_memory:
        raise BadInput("no memory known for the RPC workers", "give it with --device-memory HOST:PORT=SIZE, or build "
                       "llama.cpp with RPC (`r1run build`) so r1run can ask them")
    return with_overrides(base, gpu_memory=desc.gpu_memory, ram=desc.ram, bandwidth=desc.bandwidth,
                          unified=desc.unified, gpu_name=desc.gpu_name, rpc=",".join(workers) or None,
                          device_memory=desc.device_memory,
                          rpc_found=None if desc.device_memory else found or None)
