"""Probe llama.cpp programs once (`--version`, `--help`) and derive what they can do.

Command lines are built from these capabilities, never from a hard-coded release.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from r1run import proc
from r1run.fsutil import locked, write_atomic

PROBE_SCHEMA = 3

_SPLIT = re.compile(r"\s{2,}")
_FLAG = re.compile(r"^--?[A-Za-z][\w-]*$")


def parse_help_flags(text: str) -> list[str]:
    """Every flag a program's `--help` lists. Handles llama.cpp's common-args layout

        -t,    --threads N                      number of CPU threads to use during generation (default: -1)
        -ot,   --override-tensor <tensor name pattern>=<buffer type>,...

    llama-bench's (`  -ngl, --n-gpu-layers <n>   (default: 99)`) and the RPC server's
    (`  -H HOST, --host HOST      host to bind to (default: 127.0.0.1)`).
    """
    flags: list[str] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("-"):
            continue
        for segment in _SPLIT.split(line):
            if not segment.startswith("-"):
                break  # the description column
            for token in segment.replace(",", " ").split():
                token = token.split("=", 1)[0]
                if _FLAG.match(token) and token not in seen:
                    seen.add(token)
                    flags.append(token)
    return flags


_VERSION = re.compile(r"version:\s*(?P<number>\d+)\s*\((?P<commit>[^)]*)\)")
_VERSION_NEW = re.compile(r"version:\s*(?P<semver>[\w.-]+)\s*\(build (?P<number>\d+), commit (?P<commit>[^)]*)\)")


def parse_version(text: str) -> tuple[int | None, str | None]:
    """Build number and commit from `--version`:

        version: 11434 (a1b2c3d)                                (releases through 2026)
        version: 0.6.0-dev (build 0, commit unknown)            (newer trees)
    Build 0 means "unknown" (a tree without git).
    """
    m = _VERSION_NEW.search(text) or _VERSION.search(text)
    if not m:
        return None, None
    number = int(m.group("number"))
    commit = m.group("commit").strip()
    return (number or None), (None if commit in ("", "unknown") else commit)


@dataclass(frozen=True)
class ProgramProbe:
    path: str
    ok: bool  # --help ran and listed flags
    build_number: int | None
    commit: str | None
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    flash_attn_values: bool = False  # `-fa, --flash-attn [on|off|auto]` rather than a bare switch
    flash_attn_numeric: bool = False  # ik_llama.cpp's llama-bench: `-fa, --flash-attn <0|1>`
    fit_values: bool = False  # `--fit [on|off]` rather than ik_llama.cpp's bare `--fit`
    output_formats: list[str] = field(default_factory=list)  # llama-bench `-o, --output <csv|json|jsonl|md|sql>`

    def has(self, *names: str) -> bool:
        return any(n in self.flags for n in names)


def probe_program(path: Path) -> ProgramProbe:
    # In a scratch folder: ik_llama.cpp's programs write llama.log into their working directory even for --help.
    with tempfile.TemporaryDirectory(prefix="r1run-probe-") as scratch:
        ver = proc.run([path, "--version"], timeout=30, cwd=Path(scratch))
        helped = proc.run([path, "--help"], timeout=30, cwd=Path(scratch))
    number, commit = parse_version(ver.stdout + "\n" + ver.stderr)
    flags = parse_help_flags(helped.stdout + "\n" + helped.stderr)
    if not flags:
        last = (helped.stderr.strip().splitlines() or helped.stdout.strip().splitlines() or ["no output"])[-1]
        return ProgramProbe(str(path), False, number, commit, [], f"--help exited {helped.returncode}: {last}")
    return ProgramProbe(str(path), True, number, commit, flags, **help_details(helped.stdout + helped.stderr))


# `-fa, --flash-attn [on|off|auto]` (b11434), `-fa, --flash-attn (auto|on|off|0|1)` (ik_llama.cpp's llama-cli)
_FA_VALUES = re.compile(r"--flash-attn\s*[\[(<]?(?:on|off|auto)\|")
_FA_NUMERIC = re.compile(r"--flash-attn\s*<0\|1>")  # ik_llama.cpp's llama-bench: `-fa, --flash-attn <0|1>`
_FIT_VALUES = re.compile(r"--fit\s*[\[(<]?(?:on|off|auto)\|")  # not ik's bare `       --fit      automatically...`
_OUTPUT = re.compile(r"--output\s*<([a-z|]+)>")  # llama-bench: `-o, --output <csv|json|jsonl|md|sql>`


def help_details(text: str) -> dict:
    """How a program's `--help` says its flags take values, where releases and engines differ."""
    out = _OUTPUT.search(text)
    return {"flash_attn_values": bool(_FA_VALUES.search(text)), "flash_attn_numeric": bool(_FA_NUMERIC.search(text)),
            "fit_values": bool(_FIT_VALUES.search(text)), "output_formats": out.group(1).split("|") if out else []}


def _key(path: Path) -> dict[str, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"mtime_ns": st.st_mtime_ns, "size": st.st_size}


def probe_cached(path: Path, cache_file: Path) -> ProgramProbe:
    """Probe once per (path, mtime, size); later calls read the cache."""
    path = path.resolve()
    key = _key(path)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(locked(cache_file.with_suffix(".lock")))
        except OSError:  # the cache's folder cannot be written: probe without it
            return probe_program(path)
        try:
            data = json.loads(cache_file.read_text())
            if data.get("schema") != PROBE_SCHEMA:
                data = {}
        except (OSError, ValueError):
            data = {}
        entries = data.setdefault("programs", {})
        hit = entries.get(str(path))
        if hit and key and hit.get("key") == key:
            return ProgramProbe(**hit["probe"])
        result = probe_program(path)
        entries[str(path)] = {"key": key, "probe": asdict(result)}
        data["schema"] = PROBE_SCHEMA
        with contextlib.suppress(OSError):  # a cache: an unwritable home only costs the next run a probe
            write_atomic(cache_file, json.dumps(data, indent=1))
        return result


@dataclass(frozen=True)
class Capabilities:
    """What the llama.cpp in use can do, derived from its programs' probes."""

    programs: dict[str, ProgramProbe]  # role -> probe
    build_number: int | None
    oneshot_role: str | None  # program for one-shot raw completion: "completion", or old "chat" with -no-cnv
    oneshot_flags: list[str]  # extra flags that program needs for raw one-shot (e.g. ["-no-cnv"])
    chat_role: str | None  # interactive chat with the model's template
    chat_single_turn: bool  # `llama-cli -st`
    fit: bool  # llama.cpp fits to free memory itself (`--fit`)
    n_cpu_moe: bool
    cpu_moe: bool
    override_tensor: bool
    rpc: bool
    list_devices: bool
    flash_attn_values: bool  # `-fa on|off|auto` (newer) vs a bare switch (older)
    jinja: bool
    reasoning_format: bool
    rpc_server: str | None  # path of the RPC server program, whatever the release calls it
    # ik_llama.cpp's knobs (absent from mainline): MLA attention, fused MoE, run-time repacking to interleaved
    # types (`-rtr`, which also turns mmap off), attention max batch, smart expert reduction
    mla: bool = False
    fused_moe: bool = False  # `-fmoe` or `-no-fmoe` (on by default where the latter exists)
    run_time_repack: bool = False
    attn_max_batch: bool = False
    smart_expert_reduction: bool = False
    fit_switch: bool = False  # `--fit` takes no value (ik_llama.cpp) rather than `--fit on|off`
    bench_output: str | None = None  # the llama-bench format r1run reads: jsonl, else csv (ik_llama.cpp)
    bench_progress: bool = False  # llama-bench `--progress`
    bench_flash_attn_numeric: bool = False  # llama-bench `-fa 0|1` (ik_llama.cpp) rather than on|off|auto

    @classmethod
    def assumed_current(cls) -> "Capabilities":
        """What a current llama.cpp can do, for plans made where none is installed (no programs to run)."""
        return cls(programs={}, build_number=None, oneshot_role=None, oneshot_flags=[], chat_role=None,
                   chat_single_turn=True, fit=False, n_cpu_moe=True, cpu_moe=True, override_tensor=True, rpc=True,
                   list_devices=False, flash_attn_values=True, jinja=True, reasoning_format=True, rpc_server=None)

    def path(self, role: str) -> Path | None:
        p = self.programs.get(role)
        return Path(p.path) if p else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["programs"] = {role: {"path": p.path, "ok": p.ok, "build_number": p.build_number, "commit": p.commit,
                                "n_flags": len(p.flags), "error": p.error}
                         for role, p in self.programs.items()}
        return d


def derive(programs: dict[str, ProgramProbe]) -> Capabilities:
    """Capabilities from the probes of one llama.cpp's programs (role -> probe)."""
    comp, chat, server = programs.get("completion"), programs.get("chat"), programs.get("server")
    bench = programs.get("bench")
    runner = comp or server or chat  # a program with the common model/context flags

    if comp is not None and comp.ok:
        oneshot_role, oneshot_flags = "completion", (["-no-cnv"] if comp.has("-no-cnv", "--no-conversation") else [])
    elif chat is not None and chat.has("-no-cnv", "--no-conversation"):
        oneshot_role, oneshot_flags = "chat", ["-no-cnv"]  # 2025 llama-cli: still the old one-shot program
    elif chat is not None and chat.ok and chat.has("-cnv", "--conversation") and not chat.has("-st", "--single-turn"):
        oneshot_role, oneshot_flags = "chat", []  # 2024 / ik_llama.cpp llama-cli: one-shot unless -cnv
    else:
        oneshot_role, oneshot_flags = None, []

    def anyhas(*names: str) -> bool:
        return any(p is not None and p.has(*names) for p in (runner, chat, server, comp))

    numbers = [p.build_number for p in programs.values() if p.build_number]
    rpc_srv = programs.get("rpc-server")
    return Capabilities(
        programs=programs,
        build_number=max(numbers) if numbers else None,
        oneshot_role=oneshot_role,
        oneshot_flags=oneshot_flags,
        chat_role="chat" if chat is not None and chat.ok else None,
        chat_single_turn=chat is not None and chat.has("-st", "--single-turn"),
        fit=anyhas("--fit", "-fit"),
        n_cpu_moe=anyhas("--n-cpu-moe", "-ncmoe"),
        cpu_moe=anyhas("--cpu-moe", "-cmoe"),
        override_tensor=anyhas("--override-tensor", "-ot"),
        rpc=anyhas("--rpc"),
        list_devices=anyhas("--list-devices"),
        flash_attn_values=runner is not None and runner.flash_attn_values,
        jinja=anyhas("--jinja"),
        reasoning_format=anyhas("--reasoning-format"),
        rpc_server=rpc_srv.path if rpc_srv is not None and rpc_srv.ok else None,
        mla=anyhas("-mla", "--mla-use"),
        fused_moe=anyhas("-fmoe", "--fused-moe", "-no-fmoe", "--no-fused-moe"),
        run_time_repack=anyhas("-rtr", "--run-time-repack"),
        attn_max_batch=anyhas("-amb", "--attention-max-batch"),
        smart_expert_reduction=anyhas("-ser", "--smart-expert-reduction"),
        fit_switch=anyhas("--fit") and not any(p.fit_values for p in (runner, chat, server) if p is not None),
        bench_output=_bench_output(bench),
        bench_progress=bench is not None and bench.has("--progress"),
        bench_flash_attn_numeric=bench is not None and bench.flash_attn_numeric,
    )


def _bench_output(bench: ProgramProbe | None) -> str | None:
    if bench is None or not bench.ok:
        return None
    for fmt in ("jsonl", "csv"):
        if fmt in bench.output_formats:
            return fmt
    return "jsonl" if not bench.output_formats else None
