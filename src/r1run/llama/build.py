"""`r1run build`: fetch llama.cpp, configure it for a backend, build the programs r1run uses."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from r1run import __version__, hardware, hub, proc
from r1run.errors import BuildFailed
from r1run.fsutil import locked
from r1run.home import Home, log_path_for
from r1run.llama import amx, cmake, engines, ik_source, manifest, patches, source, toolchain, ui
from r1run.llama.cmake import Backend, Toolchain
from r1run.llama.engines import LLAMA_CPP, Engine
from r1run.llama.manifest import BuildManifest, SourceInfo
from r1run.llama.ui import UiChoice, UiMode
from r1run.units import utc_now


@dataclass(frozen=True)
class BuildRequest:
    source: source.SourceSpec
    backend: Backend | None = None  # None: detect
    jobs: int | None = None  # None: physical cores
    force: bool = False
    extra_cmake: tuple[str, ...] = ()
    ui: UiMode = UiMode.AUTO
    engine: Engine = LLAMA_CPP


@dataclass(frozen=True)
class BuildPlan:
    id: str
    backend: Backend
    backend_reason: str
    jobs: int
    flags: list[str]
    dir: Path
    cmake_dir: Path
    ui: UiChoice
    commands: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class BuildResult:
    manifest: BuildManifest
    reused: bool
    source_note: str
    log_path: Path | None


@dataclass
class BuildEvents:
    """Callbacks the CLI uses to show progress; the core never prints."""

    on_status: Callable[[str], None] = lambda msg: None
    on_progress: Callable[[float, str], None] = lambda pct, line: None


def default_jobs() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def build_id(release: str, backend: Backend, extra: tuple[str, ...], engine: Engine = LLAMA_CPP) -> str:
    bid = f"{engine.id_prefix}{release[:12]}-{backend.value}"
    if extra:
        bid += "-" + hashlib.sha256("\0".join(extra).encode()).hexdigest()[:8]
    return bid


def make_plan(req: BuildRequest, home: Home, tc: Toolchain) -> BuildPlan:
    """Everything decided before touching the network or the compiler."""
    if req.backend is None:
        backend, reason = cmake.detect_backend(tc)
    else:
        backend, reason = req.backend, "requested"
    engines.check_backend(req.engine, backend)
    cmake.check_backend(backend, tc)
    jobs = cmake.validate_jobs(req.jobs) if req.jobs is not None else default_jobs()
    # A local tree is only labelled with a release when the user says which (`--ref`).
    known = req.source.kind != "path" or req.source.release_explicit
    release = req.source.release if known else "local"
    bid = build_id(release, backend, req.extra_cmake, req.engine)
    bdir = home.builds / bid
    mainline = req.engine is LLAMA_CPP
    ui_choice = (ui.choose(req.ui, tc, offline=hub.offline()) if mainline else
                 UiChoice("none", f"{req.engine.name} builds its server's own web UI"))
    flags = cmake.cmake_flags(backend, ccache=bool(tc.ccache),
                              release_number=source.release_number(release) if known and mainline else None,
                              extra=req.extra_cmake, gpu_present=tc.nvidia_gpu, ui=ui_choice.source,
                              without_amx=_without_amx(home))
    cdir = bdir / "cmake"
    fetch_commands = source.fetch_commands if mainline else ik_source.fetch_commands
    commands = fetch_commands(req.source, home.sources) if req.source.kind != "path" else []
    tree = f"<{req.engine.name} source>" if req.source.kind != "path" else str(req.source.path)
    commands += [
        ["cmake", "-S", tree, "-B", str(cdir), *flags],
        ["cmake", "--build", str(cdir), "--target", "help"],
        ["cmake", "--build", str(cdir), "--config", "Release", "-j", str(jobs), "--target",
         *[names[0] for names in cmake.PROGRAM_TARGETS.values()]],
    ]
    return BuildPlan(bid, backend, reason, jobs, flags, bdir, cdir, ui_choice, commands)


def _without_amx(home: Home) -> tuple[str, ...]:
    """This CPU's flags when its AMX crashed a build here before (llama.amx); () otherwise."""
    flags = hardware.cpuinfo_flags()
    return flags if amx.advertised(flags) and amx.known_to_crash(home.cache) else ()


def _up_to_date(existing: BuildManifest | None, req: BuildRequest, plan: BuildPlan, digest: str | None,
                home: Home) -> bool:
    if existing is None or existing.missing_binaries() or _needs_repatch(existing, home):
        return False
    flags = [f for f in existing.cmake_flags if f not in cmake.OLD_LAYOUT_FLAGS]
    # a build that fell back from -march=native on this CPU (llama.amx) is this plan's build, even in a home that
    # has not seen the crash itself
    fell_back = amx.advertised(cpu := hardware.cpuinfo_flags()) and flags == cmake.without_native(plan.flags, cpu)
    if (flags != plan.flags and not fell_back) or existing.backend != plan.backend.value \
            or existing.engine != req.engine.name:
        return False
    if req.source.kind == "path":
        return digest is not None and existing.source.digest == digest
    releases = {req.source.release}
    if req.engine is not LLAMA_CPP and not req.source.release_explicit:
        releases.add(engines.IK_PINNED_COMMIT)  # `--source auto` got the pinned commit from git
    return existing.release in releases and req.source.kind in ("auto", existing.source.kind)


_FAILURE_HINTS = (
    (re.compile(r"No CMAKE_(C|CXX)_COMPILER could be found|C(XX)? compiler identification is unknown"),
     None),  # filled with the OS-specific compiler hint below
    # CMake 3.25 with nvcc 13.0, configuring ik_llama.cpp (which asks for C++20 in CUDA): measured here
    (re.compile(r'requires the language dialect "CUDA\d+"'),
     "this CMake does not know how to ask nvcc for that C++ dialect: install a newer CMake (`pip install cmake`; "
     "4.4 worked with nvcc 13.0) and run the build again"),
    (re.compile(r"CUDA Toolkit not found|Failed to find nvcc|No CUDA toolset found|CMAKE_CUDA_COMPILER|"
                r"CUDA_ARCHITECTURES|CUDA::|ggml-cuda", re.I),
     "the CUDA toolkit was not usable: fix its install, or build for the CPU with `r1run build --backend cpu`"),
    (re.compile(r"Could not find .*(hip|rocm)", re.I),
     "ROCm was not usable: fix its install, or build for the CPU with `r1run build --backend cpu`"),
    (re.compile(r"Could NOT find Vulkan|glslc", re.I),
     "the Vulkan SDK was not usable: fix its install, or build for the CPU with `r1run build --backend cpu`"),
)


def failure_hint(lines: list[str], log_path: Path) -> str:
    text = "\n".join(lines)
    for pattern, hint in _FAILURE_HINTS:
        if pattern.search(text):
            return hint or toolchain.install_hint("cmake")
    return f"read the full log at {log_path}; `r1run build --force` starts again"


def _read_cache_value(cache: Path, key: str) -> str | None:
    try:
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith(key + ":"):
                return line.split("=", 1)[1]
    except OSError:
        return None
    return None


def build(req: BuildRequest, home: Home, tc: Toolchain, events: BuildEvents | None = None) -> BuildResult:
    ev = events or BuildEvents()
    plan = make_plan(req, home, tc)
    with locked(home.builds / f".{plan.id}.lock"):
        existing = manifest.load(home, plan.id)
        digest = None
        fetched: source.Source | None = None
        if req.source.kind == "path" and existing is not None and not req.force:
            fetched = _fetch(req, home)
            digest = fetched.digest
        if not req.force and _up_to_date(existing, req, plan, digest, home):
            assert existing is not None
            if manifest.default_id(home, existing.engine) is None:
                manifest.set_default(home, existing.id, existing.engine)
            return BuildResult(existing, True, "already built", None)

        cmake_bin = toolchain.require_cmake()
        ev.on_status(f"backend: {plan.backend.value} ({plan.backend_reason})")
        ev.on_status(f"web UI: {plan.ui.source} ({plan.ui.reason})")
        if fetched is None:
            ev.on_status(f"getting {req.engine.name} {req.source.release} (source: {req.source.kind})"
                         if req.source.kind != "path" else f"using {req.engine.name} from {req.source.path}")
            fetched = _fetch(req, home)
        flags = plan.flags + cmake.layout_flags((fetched.tree / "tools" / "server").is_dir(),
                                                (fetched.tree / "examples" / "main").is_dir())
        ev.on_status(f"source: {fetched.kind} {fetched.location} ({fetched.note})")
        applied = _patch(fetched, ev)

        log_path = log_path_for(home.ensure(home.logs), "build", detail=plan.id)
        started = time.monotonic()
        cdir = plan.cmake_dir
        cached_home = _read_cache_value(cdir / "CMakeCache.txt", "CMAKE_HOME_DIRECTORY")
        if cached_home is not None and Path(cached_home).resolve() != fetched.tree.resolve():
            shutil.rmtree(cdir, ignore_errors=True)  # configured from another tree: start clean

        def step(argv: list[str], what: str, on_line=None) -> None:
            code, tail = proc.stream(argv, log_path=log_path, on_line=on_line)
            if code != 0:
                raise BuildFailed(f"{what} failed (exit {code})", failure_hint(tail, log_path),
                                  log_path=log_path, tail=tail)

        ev.on_status("configuring with CMake")
        step([cmake_bin, "-S", str(fetched.tree), "-B", str(cdir), *flags], "CMake configure")
        help_out = proc.run([cmake_bin, "--build", str(cdir), "--target", "help"])
        targets = cmake.choose_targets(cmake.parse_target_help(help_out.stdout))
        if "completion" not in targets and "chat" not in targets:
            raise BuildFailed(f"this {req.engine.name} tree has neither llama-completion nor llama-cli",
                              "use a llama.cpp release from 2025 or later (`--ref`)", log_path=log_path,
                              tail=help_out.stdout.splitlines()[-30:])
        ev.on_status(f"building {len(targets)} programs with {plan.jobs} jobs: {' '.join(targets.values())}")

        said_ui: list[str] = []  # ui-assets.cmake's `UI: ...` lines: how the web UI was provisioned

        def on_line(line: str) -> None:
            pct = cmake.progress_of(line)
            if pct is not None:
                ev.on_progress(pct, line)
            elif "UI: " in line:
                said_ui.append(line)
                if "UI: running" in line or "UI: downloading" in line:  # minutes of npm, or a download
                    ev.on_status("web UI: " + line.split("UI: ", 1)[1].strip())

        compile_argv = [cmake_bin, "--build", str(cdir), "--config", "Release", "-j", str(plan.jobs), "--target",
                        *targets.values()]
        step(compile_argv, f"building {req.engine.name}", on_line)
        binaries = _install(cdir, plan.dir / "bin", targets)
        crash = _amx_crash(home, flags, binaries)
        if crash is not None:  # -march=native built AMX kernels this CPU cannot run: again without them
            ev.on_status(f"this CPU advertises AMX, but the new build's AMX kernels crashed on it ({crash}, as in some "
                         "VMs): building again without -march=native, with each of its other features")
            flags = cmake.without_native(flags, hardware.cpuinfo_flags())
            step([cmake_bin, "-S", str(fetched.tree), "-B", str(cdir), *flags], "CMake configure")
            step(compile_argv, f"building {req.engine.name}", on_line)
            binaries = _install(cdir, plan.dir / "bin", targets)
        ui_info = _ui_outcome(plan.ui, cdir, fetched.tree, said_ui, has_server="server" in binaries)
        shutil.rmtree(cdir / ui.NODE_MODULES, ignore_errors=True)
        if ui_info.source == "none" and plan.ui.source != "none":
            ev.on_status(f"web UI: none: {ui_info.reason} (`r1run build --force` tries again)")
        elif ui_info.source != "none":
            ev.on_status(f"web UI: {ui_info.source}, embedded in llama-server")
        compiler_path = _read_cache_value(cdir / "CMakeCache.txt", "CMAKE_CXX_COMPILER")
        result = BuildManifest(
            id=plan.id,
            engine=req.engine.name,
            release=fetched.release,
            source=SourceInfo(kind=fetched.kind, location=fetched.location, digest=fetched.digest),
            backend=plan.backend.value,
            backend_reason=plan.backend_reason,
            cmake_flags=flags,
            cmake_version=toolchain.tool_version(cmake_bin),
            compiler=(toolchain.tool_version(compiler_path) if compiler_path else None),
            jobs=plan.jobs,
            targets=targets,
            binaries={role: str(p) for role, p in binaries.items()},
            build_seconds=round(time.monotonic() - started, 1),
            built_at=utc_now(),
            r1run_version=__version__,
            path=str(plan.dir),
            ui=ui_info,
            patches=applied,
        )
        manifest.save(home, result)
        manifest.set_default(home, result.id, result.engine)
        return BuildResult(result, False, fetched.note, log_path)


def _patch(fetched: source.Source, ev: BuildEvents) -> list[str]:
    """r1run's fixes (llama.patches) in a tree it fetched or extracted itself; a user's own tree is only told
    about."""
    if fetched.kind in ("git", "pypi", "tarball"):
        return patches.apply(fetched.tree)
    if patches.needs_log_flush(fetched.tree):
        ev.on_status("note: this llama.cpp can lose its last output lines at exit, timings included "
                     "(llama.cpp#25504); r1run fixes that only in the sources it fetches itself, not in yours")
    return []


def _needs_repatch(existing: BuildManifest, home: Home) -> bool:
    """A build made before r1run patched its sources, from a fetched tree that wants a fix (llama.patches)."""
    if existing.patches is not None or existing.engine != LLAMA_CPP.name:
        return False
    tree = source.fetched_tree(home.sources, existing.source.kind, existing.release, existing.source.digest)
    return tree is not None and bool(patches.applies(tree))


def _amx_crash(home: Home, flags: list[str], binaries: dict[str, Path]) -> str | None:
    """How a -march=native build's prompt died on a CPU that advertises AMX (llama.amx), remembered for the next
    builds; None when it ran, or nothing needed checking."""
    if cmake.NATIVE not in flags or not amx.advertised(hardware.cpuinfo_flags()):
        return None
    if "bench" not in binaries or "quantize" not in binaries:
        return None
    crash = amx.prompt_crashes(binaries["bench"], binaries["quantize"])
    if crash is not None:
        amx.remember(home.cache, crash)
    return crash


def _fetch(req: BuildRequest, home: Home) -> source.Source:
    if req.engine is LLAMA_CPP:
        return source.fetch(req.source, home.sources)
    if req.source.kind == "path":
        fetched = source.fetch(req.source, home.sources)
        # A local ik tree without git (an extracted sdist) needs the build info r1run writes for the sdist.
        ik_source.supply_build_info(fetched.tree, number=0, commit=fetched.release)
        return fetched
    return ik_source.fetch(req.source, home.sources)


def _ui_outcome(choice: UiChoice, cdir: Path, tree: Path, said: list[str], *, has_server: bool) -> manifest.UiInfo:
    if not has_server:
        return manifest.UiInfo(source="none", reason="this build has no llama-server")
    try:
        header: str | None = (cdir / ui.HEADER).read_text(errors="replace")
    except OSError:
        header = None  # a release before tools/ui
    legacy = any((tree / p).is_file() for p in ui.LEGACY_ASSETS)
    return ui.outcome(choice, header, legacy, said)


def _find_binary(cdir: Path, target: str) -> Path | None:
    for candidate in (cdir / "bin" / target, cdir / "bin" / "Release" / target, cdir / target):
        for p in (candidate, candidate.with_suffix(".exe")):
            if p.is_file():
                return p
    return None


def _install(cdir: Path, bin_dir: Path, targets: dict[str, str]) -> dict[str, Path]:
    """Copy the built programs into bin/ in one swap, so a failed rebuild never breaks a working build."""
    staging = bin_dir.with_name("bin.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    installed: dict[str, Path] = {}
    for role, target in targets.items():
        built = _find_binary(cdir, target)
        if built is None:
            continue
        shutil.copy2(built, staging / built.name)
        installed[role] = bin_dir / built.name
    old = bin_dir.with_name("bin.old")
    shutil.rmtree(old, ignore_errors=True)
    if bin_dir.exists():
        bin_dir.rename(old)
    staging.rename(bin_dir)
    shutil.rmtree(old, ignore_errors=True)
    return installed
