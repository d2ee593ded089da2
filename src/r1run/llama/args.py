"""Pure argument builders: a RunSpec and the probed Capabilities in, a llama.cpp argv out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from r1run.errors import BadInput, ToolMissing
from r1run.llama.probe import Capabilities


@dataclass(frozen=True)
class Placement:
    """Where the weights go: what `-ngl`, `-ot`, `--n-cpu-moe` say. None/empty: let llama.cpp decide."""

    gpu_layers: int | None = None
    tensor_overrides: tuple[str, ...] = ()  # each one `-ot` value, e.g. r"blk\.(3|4)\.ffn_.*_exps\.=CPU"
    n_cpu_moe: int | None = None
    cpu_moe: bool = False  # `--cpu-moe`: every layer's routed experts stay in RAM
    tensor_split: str | None = None  # `-ts 3,1`

    def describe(self) -> str:
        parts = []
        if self.gpu_layers is not None:
            parts.append(f"-ngl {self.gpu_layers}")
        if self.cpu_moe:
            parts.append("--cpu-moe")
        if self.n_cpu_moe is not None:
            parts.append(f"--n-cpu-moe {self.n_cpu_moe}")
        parts += [f"-ot {ot}" for ot in self.tensor_overrides]
        if self.tensor_split:
            parts.append(f"-ts {self.tensor_split}")
        return " ".join(parts) or "llama.cpp defaults"


@dataclass(frozen=True)
class RunSpec:
    model: Path  # a GGUF file, or the first shard of a split model
    ctx: int
    threads: int | None = None
    placement: Placement = field(default_factory=Placement)
    n_predict: int | None = None
    temp: float | None = None
    min_p: float | None = None
    top_p: float | None = None
    seed: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    flash_attn: str | None = None  # on | off | auto
    batch: int | None = None
    ubatch: int | None = None
    parallel: int | None = None  # llama-server's slots (-np)
    repack: bool = False  # ik_llama.cpp `-rtr`: repack weights to interleaved types at load (turns mmap off)
    rpc: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # passed through verbatim, last so they win

    def with_placement(self, placement: Placement) -> "RunSpec":
        return replace(self, placement=placement)

    def with_ctx(self, ctx: int) -> "RunSpec":
        return replace(self, ctx=ctx)


def _require(caps: Capabilities, role: str, what: str) -> Path:
    path = caps.path(role)
    if path is None:
        raise ToolMissing(f"this llama.cpp has no program for {what}", "run `r1run build` to get a complete build")
    return path


def placement_flags(p: Placement, caps: Capabilities) -> list[str]:
    """`-ngl`, `-ts`, `-ot`, `--cpu-moe`, `--n-cpu-moe` for a placement, as this llama.cpp spells them."""
    argv: list[str] = []
    if p.gpu_layers is not None:
        argv += ["-ngl", str(p.gpu_layers)]
    if p.tensor_split:
        argv += ["-ts", p.tensor_split]
    if p.tensor_overrides:
        if not caps.override_tensor:
            raise BadInput("this llama.cpp cannot place tensors (-ot/--override-tensor)",
                           "update llama.cpp with `r1run build --force`, or use --gpu-layers N")
        for ot in p.tensor_overrides:
            argv += ["-ot", ot]
    if p.cpu_moe:
        if not caps.cpu_moe:
            raise BadInput("this llama.cpp has no --cpu-moe", "update llama.cpp with `r1run build --force`")
        argv += ["--cpu-moe"]
    if p.n_cpu_moe is not None:
        if not caps.n_cpu_moe:
            raise BadInput("this llama.cpp has no --n-cpu-moe", "update llama.cpp with `r1run build --force`")
        argv += ["--n-cpu-moe", str(p.n_cpu_moe)]
    return argv


def run_flags(spec: RunSpec, caps: Capabilities) -> list[str]:
    """How the model runs, the same for every program: context, threads, placement, KV cache, flash attention,
    batches, RPC workers and sampling. `r1run plan` prints exactly these; every argv below holds them verbatim
    right after `-m MODEL`."""
    argv = ["-c", str(spec.ctx)]
    if spec.threads is not None:
        argv += ["-t", str(spec.threads)]
    argv += placement_flags(spec.placement, caps)
    if spec.cache_type_k:
        argv += ["-ctk", spec.cache_type_k]
    if spec.cache_type_v:
        argv += ["-ctv", spec.cache_type_v]
    if spec.flash_attn is not None:
        if caps.flash_attn_values:
            argv += ["-fa", spec.flash_attn]
        elif spec.flash_attn == "on":
            argv += ["-fa"]  # older releases: a bare switch
    if spec.repack:
        if not caps.run_time_repack:
            raise BadInput("this llama.cpp cannot repack weights at load (-rtr)", "drop -rtr, or use ik_llama.cpp")
        argv += ["--run-time-repack"]  # the spelling ik_llama.cpp's run programs list in --help (0.1.5: no -rtr)
    if spec.batch is not None:
        argv += ["-b", str(spec.batch)]
    if spec.ubatch is not None:
        argv += ["-ub", str(spec.ubatch)]
    if spec.parallel is not None:
        argv += ["-np", str(spec.parallel)]
    if spec.rpc:
        if not caps.rpc:
            raise BadInput("this llama.cpp was built without RPC support",
                           "rebuild with `r1run build --force` (r1run always enables -DGGML_RPC=ON)")
        argv += ["--rpc", ",".join(spec.rpc)]
    if spec.temp is not None:
        argv += ["--temp", f"{spec.temp:g}"]
    if spec.min_p is not None:
        argv += ["--min-p", f"{spec.min_p:g}"]
    if spec.top_p is not None:
        argv += ["--top-p", f"{spec.top_p:g}"]
    if spec.seed is not None:
        argv += ["-s", str(spec.seed)]
    return argv


def _verbosity(caps: Capabilities, role: str) -> list[str]:
    """Ask for the load and memory lines (`load_tensors: offloaded ...`, buffer sizes): debug level in b11434."""
    probe = caps.programs.get(role)
    return ["-lv", "4"] if probe is not None and probe.has("-lv", "--log-verbosity") else []


def writes_trace_log(caps: Capabilities, role: str | None) -> bool:
    """Programs with 2024's trace log (`--log-enable`; ik_llama.cpp 0.1.5) open `main.log` / `llama.log` in their
    working directory before they read their arguments (`--log-disable` would also silence their stderr): r1run
    starts them in its log folder instead. Their model path is absolute; a relative path after `--` is then read
    from there."""
    probe = caps.programs.get(role) if role else None
    return probe is not None and probe.has("--log-enable")


def oneshot_argv(spec: RunSpec, caps: Capabilities, prompt_text: str) -> list[str]:
    """One answer to a raw, already-formatted prompt, then exit (llama-completion -no-cnv, or 2025's llama-cli)."""
    if caps.oneshot_role is None:
        raise ToolMissing("this llama.cpp has no program for one-shot completion (llama-completion)",
                          "run `r1run build` to get a complete build")
    program = _require(caps, caps.oneshot_role, "one-shot completion")
    probe = caps.programs[caps.oneshot_role]
    argv = [str(program), "-m", str(spec.model), *run_flags(spec, caps), "-p", prompt_text, *caps.oneshot_flags]
    if spec.n_predict is not None:
        argv += ["-n", str(spec.n_predict)]
    if probe.has("--no-display-prompt"):
        argv += ["--no-display-prompt"]
    argv += _verbosity(caps, caps.oneshot_role)
    return argv + list(spec.extra)


def chat_argv(spec: RunSpec, caps: Capabilities, system_prompt: str | None = None) -> list[str]:
    """An interactive conversation with the model's own chat template (llama-cli)."""
    program = _require(caps, "chat", "interactive chat (llama-cli)")
    probe = caps.programs["chat"]
    argv = [str(program), "-m", str(spec.model), *run_flags(spec, caps)]
    if spec.n_predict is not None:
        argv += ["-n", str(spec.n_predict)]
    if not probe.has("-st") and probe.has("-cnv", "--conversation"):
        argv += ["-cnv"]  # 2025 releases: conversation mode was a flag
    if system_prompt and probe.has("-sys", "--system-prompt"):
        argv += ["-sys", system_prompt]
    argv += _verbosity(caps, "chat")
    return argv + list(spec.extra)


def server_argv(spec: RunSpec, caps: Capabilities, *, host: str, port: int, api_key: str | None = None,
                api_key_file: Path | None = None, reasoning_format: str | None = "deepseek",
                alias: str | None = None) -> list[str]:
    """llama-server with the same tuning; R1's reasoning returned apart (`reasoning_content`); the model
    named `alias` in the API where this llama-server can (`--alias`; else it reports the file's path).

    Prefer `api_key_file` (the key stays out of the process list); `api_key` is for releases without it.
    """
    program = _require(caps, "server", "serving (llama-server)")
    argv = [str(program), "-m", str(spec.model), *run_flags(spec, caps), "--host", host, "--port", str(port)]
    if alias and caps.programs["server"].has("--alias", "-a"):
        argv += ["--alias", alias]
    if spec.n_predict is not None:
        argv += ["-n", str(spec.n_predict)]
    if api_key_file is not None:
        argv += ["--api-key-file", str(api_key_file)]
    elif api_key:
        argv += ["--api-key", api_key]
    if reasoning_format and caps.reasoning_format:
        argv += ["--reasoning-format", reasoning_format]
    # ik_llama.cpp 0.1.5's server (the one with -mla) answered SmolLM2 with an empty message (1 token, then stop)
    # under --jinja, and "The capital of France is Paris." without it; its built-in templates cover DeepSeek's.
    if caps.jinja and caps.programs["server"].has("--jinja") and not caps.mla:
        argv += ["--jinja"]
    argv += _verbosity(caps, "server")
    return argv + list(spec.extra)
