"""Sweeps as llama-bench invocations: parse the option lists, turn configurations into argv (pure).

llama-bench runs the cartesian product of every comma list it is given (`-t 1,2 -fa on,off` is four
configurations, each a prompt test and a generation test), loading the model once per placement.
r1run therefore sends one invocation per distinct fixed part and lists for the knobs that vary.
Knobs the user did not sweep are pinned to what `r1run chat` would use, never left to llama-bench's
own defaults: llama-bench runs without flash attention unless told, while llama-completion, llama-cli and
llama-server default to `-fa auto`, 20-25% faster generation on an R1-shaped model (docs/bench.md).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from r1run.errors import BadInput
from r1run.llama.args import RunSpec

CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
FLASH_ATTN = {"on": "on", "1": "on", "true": "on", "yes": "on", "off": "off", "0": "off", "false": "off",
              "no": "off", "auto": "auto", "-1": "auto"}
# llama-bench's record value for -fa (b11434: 1, 0, -1; older releases wrote true/false)
FA_FROM_RECORD = {1: "on", 0: "off", -1: "auto", "1": "on", "0": "off", "-1": "auto", "true": "on", "false": "off"}


@dataclass(frozen=True)
class Config:
    """One configuration llama-bench measures. None: llama-bench's own default for that knob."""

    threads: int | None = None
    gpu_layers: int | None = None
    n_cpu_moe: int | None = None
    overrides: str | None = None  # llama-bench -ot: `pattern=BUFT;pattern=BUFT`
    tensor_split: str | None = None  # llama-bench -ts: `3/1`
    flash_attn: str | None = None  # on | off | auto
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    batch: int | None = None
    ubatch: int | None = None
    repack: bool | None = None  # ik_llama.cpp `-rtr 1`

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        names = {"threads": "t", "gpu_layers": "ngl", "n_cpu_moe": "ncmoe", "overrides": "ot", "tensor_split": "ts",
                 "flash_attn": "fa", "cache_type_k": "ctk", "cache_type_v": "ctv", "batch": "b", "ubatch": "ub",
                 "repack": "rtr"}
        return " ".join(f"{names[k]}={v}" for k, v in self.to_dict().items()) or "llama-bench defaults"


KNOBS = tuple(f.name for f in fields(Config))
# knob -> llama-bench flag; every one of these takes a comma list in llama-bench (except -ot, which uses ';')
FLAGS = {"threads": "-t", "gpu_layers": "-ngl", "n_cpu_moe": "-ncmoe", "overrides": "-ot", "tensor_split": "-ts",
         "flash_attn": "-fa", "cache_type_k": "-ctk", "cache_type_v": "-ctv", "batch": "-b", "ubatch": "-ub",
         "repack": "-rtr"}
# What every llama.cpp program (llama-bench included) uses when -b / -ub are not given.
LLAMA_BATCH, LLAMA_UBATCH = 2048, 512
LISTABLE = ("threads", "gpu_layers", "n_cpu_moe", "flash_attn", "cache_type_k", "cache_type_v", "batch", "ubatch")


def from_run_spec(spec: RunSpec, n_layers: int) -> Config:
    """The configuration `r1run chat` runs with, in llama-bench's terms.

    chat leaves -fa unset, which the run programs read as `auto`: pass `-fa auto` explicitly.
    """
    p = spec.placement
    n_cpu_moe = p.n_cpu_moe
    if p.cpu_moe:  # llama-bench has no --cpu-moe: every layer's experts on the CPU is -ncmoe n_layers
        n_cpu_moe = n_layers
    return Config(
        threads=spec.threads, gpu_layers=p.gpu_layers, n_cpu_moe=n_cpu_moe,
        overrides=";".join(p.tensor_overrides) or None,
        tensor_split=p.tensor_split.replace(",", "/") if p.tensor_split else None,
        flash_attn=spec.flash_attn or "auto", cache_type_k=spec.cache_type_k or "f16",
        cache_type_v=spec.cache_type_v or "f16", batch=spec.batch or LLAMA_BATCH, ubatch=spec.ubatch or LLAMA_UBATCH,
        repack=True if spec.repack else None,
    )


# --- parsing the user's lists -------------------------------------------------------------------

def _items(text: str, option: str) -> list[str]:
    items = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in items):
        raise BadInput(f"{option} {text!r} has an empty value", f"give values separated by commas, e.g. {option} 1,2")
    return items


def parse_ints(text: str | None, option: str, *, minimum: int = 0, allow_auto: bool = False) -> list[int | str] | None:
    """`1,2,4` (and `auto` where allowed) -> [1, 2, 4]; None when the option was not given."""
    if text is None:
        return None
    values: list[int | str] = []
    for item in _items(text, option):
        if allow_auto and item.lower() == "auto":
            values.append("auto")
            continue
        try:
            n = int(item)
        except ValueError:
            also = " or auto" if allow_auto else ""
            raise BadInput(f"{option}: {item!r} is not a whole number{also}",
                           f"e.g. {option} {'auto,' if allow_auto else ''}1,2") from None
        if n < minimum:
            raise BadInput(f"{option}: {n} is below {minimum}", f"give numbers from {minimum} up")
        values.append(n)
    return unique(values)


def parse_flash_attn(text: str | None) -> list[str] | None:
    if text is None:
        return None
    out = []
    for item in _items(text, "--flash-attn"):
        value = FLASH_ATTN.get(item.lower())
        if value is None:
            raise BadInput(f"--flash-attn: unknown value {item!r}", "use on, off or auto (e.g. --flash-attn on,off)")
        out.append(value)
    return unique(out)


def parse_cache_types(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    out = []
    for item in _items(text, option):
        if item.lower() not in CACHE_TYPES:
            raise BadInput(f"{option}: unknown cache type {item!r}", f"use one of {', '.join(CACHE_TYPES)}")
        out.append(item.lower())
    return unique(out)


def unique(values: list) -> list:
    return list(dict.fromkeys(values))


# --- expanding into invocations -----------------------------------------------------------------

@dataclass(frozen=True)
class Invocation:
    """One llama-bench run: a fixed part and the knobs it sweeps (comma lists)."""

    base: Config
    lists: tuple[tuple[str, tuple], ...] = ()  # (knob, values) for knobs with more than one value
    label: str | None = None  # a name for every row it gives: "r1run default", "llama.cpp defaults"

    def configs(self) -> list[Config]:
        """Every configuration it measures (llama-bench runs them in its own order)."""
        if not self.lists:
            return [self.base]
        names = [k for k, _ in self.lists]
        combos = itertools.product(*(v for _, v in self.lists))
        return [replace(self.base, **dict(zip(names, combo, strict=True))) for combo in combos]


def expand(base: Config, sweep: dict[str, list]) -> Invocation:
    """A sweep of some knobs around `base` as one invocation; single values are folded into the base."""
    unknown = set(sweep) - set(LISTABLE)
    if unknown:
        raise ValueError(f"cannot sweep {sorted(unknown)}")
    fixed = {k: v[0] for k, v in sweep.items() if v and len(v) == 1}
    lists = tuple((k, tuple(v)) for k, v in sweep.items() if v and len(v) > 1)
    return Invocation(replace(base, **fixed), lists)


# llama-bench `-fa 0|1` (ik_llama.cpp): its run programs read `auto` as on
FA_NUMERIC = {"on": "1", "off": "0", "auto": "1"}


def argv(program: Path, model: Path, inv: Invocation, *, n_prompt: int, n_gen: int, repetitions: int,
         rpc: tuple[str, ...] = (), progress: bool = True, output: str = "jsonl",
         fa_numeric: bool = False) -> list[str]:
    """llama-bench's command line for one invocation, results on stdout as JSON lines (or CSV, where this
    llama-bench has no jsonl: ik_llama.cpp)."""
    cmd = [str(program), "-m", str(model), "-p", str(n_prompt), "-n", str(n_gen), "-r", str(repetitions),
           "-o", output]
    listed = dict(inv.lists)
    for knob in KNOBS:
        values = listed.get(knob)
        if values is None:
            value = getattr(inv.base, knob)
            if value is None:
                continue
            values = (value,)
        if knob == "flash_attn" and fa_numeric:
            values = tuple(unique([FA_NUMERIC[v] for v in values]))
        elif knob == "repack":
            values = tuple("1" if v else "0" for v in values)
        cmd += [FLAGS[knob], ",".join(str(v) for v in values)]
    if rpc:
        cmd += ["-rpc", ",".join(rpc)]
    if progress:
        cmd += ["--progress"]
    return cmd


def record_config(inv: Invocation, params: dict) -> Config:
    """Which of an invocation's configurations a llama-bench record measured (by its swept knobs' values)."""
    values: dict = {}
    for knob, options in inv.lists:
        got = _record_value(knob, params)
        values[knob] = got if got in options else options[0]
    return replace(inv.base, **values)


def _record_value(knob: str, params: dict):
    field_name = {"threads": "n_threads", "gpu_layers": "n_gpu_layers", "n_cpu_moe": "n_cpu_moe",
                  "flash_attn": "flash_attn", "cache_type_k": "type_k", "cache_type_v": "type_v",
                  "batch": "n_batch", "ubatch": "n_ubatch"}[knob]
    value = params.get(field_name)
    if knob == "flash_attn":
        return FA_FROM_RECORD.get(str(value).lower() if isinstance(value, (bool, str)) else value, str(value))
    return value
