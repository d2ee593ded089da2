"""`r1run doctor`: is this machine ready to build and run llama.cpp? Returns checks, never prints."""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from r1run import hardware, proc
from r1run.errors import R1runError
from r1run.home import Home
from r1run.llama import discover, toolchain
from r1run.units import GiB, size

# DeepSeek-R1's smallest dynamic quant (UD-IQ1_S) is about 131 GiB.
R1_SMALLEST_BYTES = 131 * GiB


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    hint: str | None = None


@dataclass(frozen=True)
class Report:
    checks: list[Check]
    machine: dict
    llama: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def to_dict(self) -> dict:
        return {"schema": "r1run.doctor/1", "ok": not self.failed, "checks": [asdict(c) for c in self.checks],
                "machine": self.machine, "llama": self.llama}


def _tool_check(name: str, needed_for: str, have_llama: bool) -> Check:
    path = proc.which(name)
    if path:
        return Check(name, "ok", f"{toolchain.tool_version(path) or 'present'} ({path})")
    status = "warn" if have_llama else "fail"
    return Check(name, status, f"not found (needed to {needed_for})", toolchain.install_hint(name))


def _compiler_check(have_llama: bool) -> Check:
    for name in ("c++", "g++", "clang++"):
        path = proc.which(name)
        if path:
            return Check("compiler", "ok", f"{toolchain.tool_version(path) or name} ({path})")
    return Check("compiler", "warn" if have_llama else "fail", "no C++ compiler found (needed to build llama.cpp)",
                 toolchain.install_hint("cmake"))


def _disk_check(home: Home) -> Check:
    target = home.models
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{size(free)} free for models at {target}"
    if free < GiB:
        return Check("disk", "fail", detail, "free some space or set R1RUN_MODELS to a bigger disk")
    if free < R1_SMALLEST_BYTES:
        return Check("disk", "warn", detail + f"; DeepSeek-R1's smallest quant needs {size(R1_SMALLEST_BYTES)}",
                     "use `r1run download --dir PATH` or R1RUN_MODELS on a bigger disk for R1")
    return Check("disk", "ok", detail)


def _token_check() -> list[Check]:
    checks = []
    source = None
    if os.environ.get("HF_TOKEN"):
        source = "HF_TOKEN"
    else:
        from huggingface_hub import get_token  # noqa: PLC0415  (huggingface_hub loads where used: see r1run.hub)

        source = "huggingface_hub login" if get_token() else None
    checks.append(Check("hf token", "ok", f"set (from {source})" if source else "not set (public models only)"))
    endpoint = os.environ.get("HF_ENDPOINT")
    checks.append(Check("hf endpoint", "ok", endpoint or "default (huggingface.co)"))
    return checks


def _other_engines(home: Home) -> list[Check]:
    """A line for each other engine r1run has built (ik_llama.cpp): its programs, as probed."""
    out = []
    for name, build in discover.built_engines(home).items():
        if name == "llama.cpp":
            continue
        inst = discover.find(home, None, name)
        caps = discover.capabilities(inst, home)
        missing = [r for r in ("chat", "server", "bench") if r not in inst.programs]
        broken = [r for r, p in caps.programs.items() if not p.ok]
        detail = f"{inst.origin}: release {build.release}, {len(inst.programs)} programs"
        detail += f"; missing {', '.join(missing)}" if missing else ""
        detail += f"; not runnable: {', '.join(broken)}" if broken else ""
        status = "fail" if broken or caps.oneshot_role is None else ("warn" if missing else "ok")
        hint = f"run `r1run build --engine {name} --force`" if status != "ok" else None
        out.append(Check(name, status, detail, hint))
    return out


def check(home: Home, llama_bin: Path | None = None) -> Report:
    checks: list[Check] = []
    machine = hardware.detect()
    cpu = machine.cpu
    checks.append(Check("os", "ok", f"{platform.platform()} ({machine.arch})"))
    checks.append(Check("cpu", "ok", f"{cpu.model}: {cpu.physical_cores} physical / {cpu.logical_cores} logical cores"
                        + (f", {cpu.usable_cores} usable" if cpu.usable_cores != cpu.logical_cores else "")
                        + (f", SIMD {' '.join(cpu.simd)}" if cpu.simd else "")))
    checks.append(Check("ram", "ok" if machine.ram_available > 2 * GiB else "warn",
                        f"{size(machine.ram_total)} total, {size(machine.ram_available)} available"))

    installs: list[discover.LlamaInstall] = []
    llama_info: list[dict] = []
    try:
        installs = discover.find_all(home, llama_bin)
    except R1runError as exc:
        checks.append(Check("llama.cpp", "fail", exc.message, exc.hint))
    list_devices = None
    for i, inst in enumerate(installs):
        caps = discover.capabilities(inst, home)
        info = {"origin": inst.origin, "used": i == 0, "build_number": caps.build_number,
                "capabilities": caps.to_dict()}
        llama_info.append(info)
        if i == 0:
            missing = [r for r in ("completion", "chat", "server", "bench", "rpc-server") if r not in inst.programs]
            broken = [r for r, p in caps.programs.items() if not p.ok]
            status = "fail" if broken or caps.oneshot_role is None else ("warn" if missing else "ok")
            detail = f"{inst.origin}: build {caps.build_number or 'unknown'}, {len(inst.programs)} programs"
            if missing:
                detail += f"; missing {', '.join(missing)}"
            if broken:
                detail += f"; not runnable: {', '.join(broken)}"
            checks.append(Check("llama.cpp", status, detail, "run `r1run build --force`" if status != "ok" else None))
            if caps.list_devices:
                prog = caps.path("server") or caps.path("completion")
                if prog is not None:
                    res = proc.run([prog, "--list-devices"], timeout=60)
                    list_devices = res.stdout if res.returncode == 0 else None
    if not installs and not any(c.name == "llama.cpp" for c in checks):
        checks.append(Check("llama.cpp", "fail", "not found", "run `r1run build`"))
    checks += _other_engines(home)

    gpus = hardware.detect_gpus(list_devices) if list_devices else machine.gpus
    if gpus:
        for g in gpus:
            checks.append(Check(f"gpu {g.device or g.name}", "ok",
                                f"{g.name}: {size(g.total_bytes)} total, {size(g.free_bytes)} free ({g.source})"))
    else:
        checks.append(Check("gpu", "ok", "none found: CPU only"))

    have_llama = bool(installs)
    checks.append(_tool_check("cmake", "build llama.cpp", have_llama))
    checks.append(_compiler_check(have_llama))
    git = proc.which("git")
    checks.append(Check("git", "ok", f"{toolchain.tool_version(git)} ({git})") if git else
                  Check("git", "warn", "not found: builds use the PyPI source", toolchain.install_hint("git")))
    cc = proc.which("ccache")
    checks.append(Check("ccache", "ok", f"{toolchain.tool_version(cc)} ({cc})") if cc else
                  Check("ccache", "warn", "not found (optional: faster rebuilds)", toolchain.install_hint("ccache")))
    checks.append(_disk_check(home))
    checks.extend(_token_check())
    mdict = machine.to_dict()
    mdict["ram_total_bytes"], mdict["ram_available_bytes"] = mdict.pop("ram_total"), mdict.pop("ram_available")
    mdict["gpus"] = [asdict(g) for g in gpus]
    return Report(checks, mdict, llama_info)
