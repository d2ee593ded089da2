"""Answers to the Flappy Bird prompt through r1run's own run path (the engine, placement and flags chat uses)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from r1run.eval.flappy import CACHE_TYPE_K, PROMPT
from r1run.run import oneshot
from r1run.run.prepare import Prepared


@dataclass(frozen=True)
class Generated:
    seed: int
    text: str  # the reasoning in <think>...</think>, then the answer: what is saved and scored
    gen_tps: float | None
    tokens: int | None
    seconds: float
    log_path: Path | None
    interrupted: bool = False  # Ctrl-C: the text is partial


def with_k_cache(prepared: Prepared) -> Prepared:
    """K cache q4_0 where the file allows it (a head size that q4_0's 32-value blocks divide), unless set."""
    spec = prepared.config.spec
    if spec.cache_type_k is not None:
        return prepared
    hp = prepared.target.info.hparams
    heads = hp.at_layer("head_count", 0)
    head_size = hp.key_length or (hp.embedding_length // heads if hp.embedding_length and heads else None)
    if not head_size or head_size % 32:
        return prepared
    config = replace(prepared.config, spec=replace(spec, cache_type_k=CACHE_TYPE_K),
                     notes=(*prepared.config.notes, f"K cache {CACHE_TYPE_K} (the Flappy Bird test's setting)"))
    return replace(prepared, config=config)


def answer_once(prepared: Prepared, seed: int, *, logs: Path, events: oneshot.Events | None = None) -> Generated:
    """One answer with this seed; the prompt in the model's own format."""
    spec = replace(prepared.config.spec, seed=seed)
    start = time.monotonic()
    result = oneshot.answer(spec, prepared.caps, prepared.target.render(PROMPT), logs=logs, events=events,
                            starts_thinking=prepared.target.starts_thinking)
    text = f"<think>{result.reasoning}</think>\n{result.answer}" if result.reasoning else result.answer
    ev = result.summary.gen if result.summary is not None else None
    return Generated(seed, text, ev.tps if ev else None, ev.tokens if ev else None, time.monotonic() - start,
                     result.log_path, result.interrupted)
