"""Which engine runs a model: the one the user named, else a stated rule (pure).

    choose("auto", "deepseek2", {"llama.cpp": "cpu", "ik_llama.cpp": "cpu"})
      -> EngineChoice("ik_llama.cpp", "engine ik_llama.cpp (deepseek2 model, ik_llama.cpp built for cpu: ...)")

ik_llama.cpp is faster for DeepSeek's architecture on CPU and CUDA (MLA with flash attention, fused MoE,
run-time repacking: 1.47x prompt and 1.15x generation on an R1-shaped model here, FIELD_NOTES 12); for other
architectures it is not known to win, so mainline stays the engine there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from r1run.errors import BadInput, ToolMissing
from r1run.llama.engines import ENGINES

ENGINE_CHOICES = ("auto", *ENGINES)
IK_ARCHITECTURES = ("deepseek2",)


@dataclass(frozen=True)
class Measurement:
    """`r1run bench MODEL --engine llama.cpp,ik_llama.cpp` stored for this model on this machine."""

    faster: str
    gen_ratio: float | None  # the faster engine's generation speed over the other's
    measured_at: str
    agree: bool | None = None  # the engines' perplexities within 1% (bench.agreement); None: not measured
    perplexity: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineChoice:
    name: str
    note: str  # what was chosen and why, printed with the other choices of the run ("" when there was no choice)


def parse(text: str) -> str:
    value = text.strip().lower()
    if value not in ENGINE_CHOICES:
        raise BadInput(f"unknown engine {text!r}", f"choose one of: {', '.join(ENGINE_CHOICES)}")
    return value


# With RPC workers, ik_llama.cpp 0.1.5 reports every layer offloaded yet keeps every weight on this machine and
# gives the worker nothing to do (measured with its own rpc-server -cpu, SmolLM2, --rpc ... -ngl 99):
#     llm_load_tensors: offloaded 31/31 layers to GPU
#     llm_load_tensors:        CPU buffer size =    92.10 MiB
#     llama_init_from_model: RPC0[127.0.0.1:50772] compute buffer size =     0.00 MiB
# Its --help lists --rpc all the same, so this cannot be probed: RPC runs stay on llama.cpp.
NO_RPC = ("ik_llama.cpp",)

# Tensor types ik_llama.cpp 0.1.5 computes wrongly on this machine's CPU (AMD EPYC, AVX-512) in batches, measured
# with bench.agreement (its llama-imatrix) and with chat on SmolLM2: Q4_1 gives a perplexity of 228.3 where
# llama.cpp gives 46.5 (Q8_0 of the same weights: 46.89 vs 47.07), and a 550-token prompt is answered
#     "The text about a large block of weights is a mix of text about a large block of weights,"
# where llama.cpp answers "The introduction of the printing press in the 15th century had a profound impact".
# Short prompts agree (the single-token path is right), so a quick test would not show it.
IK_WRONG_TYPES = {"ik_llama.cpp": frozenset({"Q4_1"})}


def choose(requested: str, architecture: str | None, built: dict[str, str],
           measured: Measurement | None = None, rpc: bool = False,
           tensor_types: frozenset[str] = frozenset()) -> EngineChoice:
    """`requested` (auto or an engine) for a model of `architecture` holding `tensor_types`, given the engines
    built here (engine -> the backend its default build has), what a measurement on this machine found, if any,
    and whether the run spreads the model over RPC workers."""
    if requested != "auto":
        if rpc and requested in NO_RPC:
            raise BadInput(f"--rpc does not work with {requested}: its RPC client keeps every weight on this "
                           "machine (the workers get none)", "run it on llama.cpp: --engine llama.cpp")
        if requested not in built and requested != "llama.cpp":
            raise ToolMissing(f"--engine {requested}: no {requested} build here",
                              f"run `r1run build --engine {requested}`")
        return EngineChoice(requested, f"engine {requested} (--engine)")
    if rpc and any(name in built for name in NO_RPC):
        return EngineChoice("llama.cpp", "engine llama.cpp (--rpc: ik_llama.cpp's RPC client keeps every weight on "
                            "this machine)")
    choice = _auto(architecture, built, measured)
    wrong = ", ".join(sorted(tensor_types & IK_WRONG_TYPES.get(choice.name, frozenset())))
    if wrong and "llama.cpp" in built:
        return EngineChoice("llama.cpp", f"engine llama.cpp ({choice.name} computes {wrong} tensors wrongly in "
                            "prompt batches, measured on this model's type; --engine to change)")
    if wrong:  # nothing else is built: run it, and say what to expect
        return EngineChoice(choice.name, f"{choice.note}; beware: it computes {wrong} tensors wrongly in prompt "
                            "batches (long prompts), measured; `r1run build` adds llama.cpp")
    return choice


def _auto(architecture: str | None, built: dict[str, str], measured: Measurement | None) -> EngineChoice:
    if measured is not None and measured.agree is False and "llama.cpp" in built:
        ppl = " vs ".join(f"{e} {v:.4g}" for e, v in measured.perplexity.items())
        return EngineChoice("llama.cpp", f"engine llama.cpp (the engines disagree on this model: perplexity {ppl} "
                            f"on r1run's text, measured {measured.measured_at}; a faster engine must compute the "
                            "same function; --engine to change)")
    if measured is not None and measured.faster in built and len(built) > 1:
        ratio = f"{measured.gen_ratio:.2f}x generation" if measured.gen_ratio else "faster generation"
        return EngineChoice(measured.faster, f"engine {measured.faster} ({ratio} on this model, measured "
                            f"{measured.measured_at} by `r1run bench --engine llama.cpp,ik_llama.cpp`; --engine to "
                            "change)")
    ik, main = built.get("ik_llama.cpp"), built.get("llama.cpp")
    if ik is None:
        return EngineChoice("llama.cpp", "")  # nothing to choose from: mainline's output stays as it was
    if architecture in IK_ARCHITECTURES and (main is None or main == ik):
        return EngineChoice("ik_llama.cpp", f"engine ik_llama.cpp ({architecture} model and an ik_llama.cpp build "
                            f"for {ik}: the faster engine for DeepSeek; --engine llama.cpp to change)")
    if main is None:
        return EngineChoice("ik_llama.cpp", "engine ik_llama.cpp (the only engine built here)")
    if architecture in IK_ARCHITECTURES:
        return EngineChoice("llama.cpp", f"engine llama.cpp (its build is for {main}, ik_llama.cpp's for {ik}; "
                            "--engine ik_llama.cpp to change)")
    return EngineChoice("llama.cpp", f"engine llama.cpp ({architecture or 'this'} model: ik_llama.cpp is not "
                        "known to be faster for it; --engine ik_llama.cpp to change)")
