"""`r1run bench MODEL --engine llama.cpp,ik_llama.cpp`: each engine in its r1run default configuration (what
`r1run chat --engine E` runs), measured side by side, stored per model and machine so that `--engine auto`
runs the faster one (r1run.run.engine.choose).

Stored as R1RUN_HOME/results/engines/<model sha256[:16]>-<machine fingerprint>.json (schema r1run.engines/1):

    {"schema": "r1run.engines/1", "time": "2026-11-30T23:40:00+0000",
     "model": {"path": ..., "bytes": ..., "sha256": ...}, "machine": {"fingerprint": ...},
     "test": {"n_prompt": 128, "n_gen": 32, "rounds": 3, "threads": 2},
     "engines": {"llama.cpp": {"prompt": [..], "gen": [..], "flags": [..]}, "ik_llama.cpp": {...}},
     "faster": "ik_llama.cpp", "gen_ratio": 1.34, "prompt_ratio": 1.5,
     "perplexity": {"llama.cpp": {"value": 46.5, "error": 6.9, "line": "Final estimate: PPL = ..."}, ...},
     "agree": true}

`agree`: whether the engines' perplexities over r1run's text (bench.agreement) are within 1% of each other;
false means the faster engine computes something else on this model, and `--engine auto` keeps llama.cpp.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from r1run.bench import agreement, core, store, sweep
from r1run.errors import BadInput
from r1run.fsutil import write_atomic
from r1run.home import log_path_for
from r1run.llama import args
from r1run.run.engine import ENGINE_CHOICES, Measurement

SCHEMA = "r1run.engines/1"


def parse_list(text: str) -> list[str] | None:
    """`llama.cpp,ik_llama.cpp` -> both names; one name (or auto) -> None: not a comparison."""
    names = [n.strip().lower() for n in text.split(",")]
    if len(names) == 1:
        return None
    unknown = [n for n in names if n not in ENGINE_CHOICES[1:]]
    if unknown:  # `auto` too: it is one of the two, not a third to compare
        raise BadInput(f"--engine {text!r}: unknown engine {unknown[0]!r} to compare",
                       f"choose among: {', '.join(ENGINE_CHOICES[1:])}, e.g. --engine llama.cpp,ik_llama.cpp")
    if len(set(names)) != len(names):
        raise BadInput(f"--engine {text!r}: give distinct engines to compare",
                       "e.g. --engine llama.cpp,ik_llama.cpp")
    return names


@dataclass
class Comparison:
    setups: dict[str, core.Setup]
    configs: dict[str, sweep.Config]
    prompt: dict[str, list[float]]
    gen: dict[str, list[float]]
    n_prompt: int
    n_gen: int
    rounds: int
    started: float
    perplexity: dict[str, agreement.Perplexity | None] = field(default_factory=dict)

    @property
    def agree(self) -> bool | None:
        """Whether every engine computed the same perplexity (None when one could not be measured)."""
        found = list(self.perplexity.values())
        if len(found) < 2 or any(p is None for p in found):
            return None
        first = found[0]
        assert first is not None
        return all(agreement.agree(first, p) for p in found[1:] if p is not None)

    def median(self, what: str, engine: str) -> float | None:
        samples = getattr(self, what)[engine]
        return statistics.median(samples) if samples else None

    @property
    def faster(self) -> str:
        return max(self.gen, key=lambda e: self.median("gen", e) or 0.0)

    def ratio(self, what: str) -> float | None:
        """The faster engine's speed over the other's (2 engines)."""
        others = [e for e in self.gen if e != self.faster]
        a, b = self.median(what, self.faster), self.median(what, others[0]) if others else None
        return a / b if a and b else None


def compare(o: core.BenchRequest, names: list[str]) -> Comparison:
    """Each engine's r1run default, the same thread count for all, `o.repetitions` rounds alternating the
    order (drift on a shared machine hits them alike), one llama-bench run (-r 1) per engine per round."""
    core.validate(o)
    setups = {n: core.prepare(replace(o, engine=n)) for n in names}
    threads = setups[names[0]].default.threads
    configs = {n: replace(s.default, threads=threads) for n, s in setups.items()}
    prompt: dict[str, list[float]] = {n: [] for n in names}
    gen: dict[str, list[float]] = {n: [] for n in names}
    started = time.time()
    for r in range(o.repetitions):
        for n in (names if r % 2 == 0 else names[::-1]):
            rows, _build, _logs = core.measure(setups[n], [sweep.Invocation(configs[n], label=n)],
                                               n_prompt=o.n_prompt, n_gen=o.n_gen, repetitions=1, rpc=o.rpc)
            for row in rows:
                if row.prompt is not None:
                    prompt[n].append(row.prompt.median)
                if row.gen is not None:
                    gen[n].append(row.gen.median)
    perplexity = {n: _perplexity(setups[n], configs[n].threads) for n in names}
    return Comparison(setups, configs, prompt, gen, o.n_prompt, o.n_gen, o.repetitions, started, perplexity)


def _perplexity(setup: core.Setup, threads: int | None) -> agreement.Perplexity | None:
    """This engine's perplexity over r1run's text (None when its build has no llama-imatrix)."""
    program = setup.caps.path("imatrix")
    if program is None:
        return None
    log = log_path_for(setup.home.ensure(setup.home.logs), "bench", detail=f"perplexity-{setup.install.engine}")
    flags: tuple[str, ...] = ()
    if setup.prepared is not None:  # the run r1run would make: its placement (-ngl, -ot) and its kernels (-rtr, -fa)
        spec = replace(setup.prepared.config.spec, ctx=agreement.CTX, threads=threads, n_predict=None, temp=None,
                       min_p=None, top_p=None, seed=None, parallel=None, extra=())
        flags = tuple(args.run_flags(spec, setup.caps))
    return agreement.measure(program, Path(setup.target.path), log, threads=threads, run_flags=flags)


def results_dir(home) -> Path:
    return home.results / "engines"


def to_record(c: Comparison, sha256: str) -> dict:
    first = next(iter(c.setups.values()))
    info = first.target.info
    return {
        "schema": SCHEMA,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(c.started)),
        "model": {"name": first.target.name, "path": str(first.target.path), "sha256": sha256,
                  "bytes": sum(sh.file_bytes for sh in info.shards), "architecture": info.architecture},
        "machine": {"fingerprint": store.fingerprint(store.machine_identity(()))},
        "test": {"n_prompt": c.n_prompt, "n_gen": c.n_gen, "rounds": c.rounds,
                 "threads": next(iter(c.configs.values())).threads},
        "engines": {n: {"prompt": c.prompt[n], "gen": c.gen[n], "build": s.install.origin,
                        "flags": sweep.argv(s.program, Path(s.target.path), sweep.Invocation(c.configs[n]),
                                            n_prompt=c.n_prompt, n_gen=c.n_gen, repetitions=1,
                                            **{**core.bench_format(s.caps), "progress": False})[1:]}
                    for n, s in c.setups.items()},
        "faster": c.faster, "gen_ratio": c.ratio("gen"), "prompt_ratio": c.ratio("prompt"),
        "perplexity": {n: ({"value": p.value, "error": p.error, "line": p.line} if p is not None else None)
                       for n, p in c.perplexity.items()},
        "agree": c.agree,
    }


def save(home, record: dict) -> Path:
    path = results_dir(home) / f"{record['model']['sha256'][:16]}-{record['machine']['fingerprint']}.json"
    write_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def find_for_target(home, target) -> Measurement | None:
    """The stored comparison for this model on this machine, if any (hashing the model only when a result for a
    file of its size exists)."""
    folder = results_dir(home)
    if not folder.is_dir():
        return None
    size = sum(sh.file_bytes for sh in target.info.shards)
    records = []
    for f in sorted(folder.glob("*.json")):
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("schema") == SCHEMA and rec.get("model", {}).get("bytes") == size:
            records.append(rec)
    fp = store.fingerprint(store.machine_identity(()))
    records = [r for r in records if r.get("machine", {}).get("fingerprint") == fp]
    if not records:
        return None
    sha = store.model_sha256(home, [Path(sh.path) for sh in target.info.shards])
    rec = next((r for r in records if r["model"].get("sha256") == sha), None)
    if rec is None:
        return None
    ppl = {n: float(p["value"]) for n, p in (rec.get("perplexity") or {}).items() if isinstance(p, dict)}
    return Measurement(faster=rec["faster"], gen_ratio=rec.get("gen_ratio"), measured_at=rec.get("time", "?"),
                       agree=rec.get("agree"), perplexity=ppl)
