"""Separating R1's reasoning from its answer while it streams."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from r1run.think import ThinkSplitter

SAMPLE = "<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help?"


def _run(chunks: list[str], starts: bool = False) -> ThinkSplitter:
    s = ThinkSplitter(starts_thinking=starts)
    for c in chunks:
        s.feed(c)
    s.close()
    return s


def test_whole_text() -> None:
    s = _run([SAMPLE])
    assert "".join(s.reasoning) == "\nThe user greets me. I should greet back.\n"
    assert "".join(s.answer) == "\n\nHello! How can I help?"


def test_tags_split_across_chunks() -> None:
    s = _run(["<th", "ink>\nhm", "m</thi", "nk>", "ok"])
    assert "".join(s.reasoning) == "\nhmm" and "".join(s.answer) == "ok"


def test_prompt_already_opened_the_thinking() -> None:
    s = _run(["reasoning here</think>answer"], starts=True)
    assert "".join(s.reasoning) == "reasoning here" and "".join(s.answer) == "answer"


def test_no_tags_and_lone_angle_brackets() -> None:
    s = _run(["a < b and <th", "is is not a tag"])
    assert "".join(s.answer) == "a < b and <this is not a tag" and s.reasoning == []


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_any_chunking_gives_the_same_split(seed: int) -> None:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(SAMPLE)), rng.randint(0, 12)))
    chunks = [SAMPLE[i:j] for i, j in zip([0, *cuts], [*cuts, len(SAMPLE)], strict=True)]
    whole, parts = _run([SAMPLE]), _run(chunks)
    assert "".join(parts.reasoning) == "".join(whole.reasoning)
    assert "".join(parts.answer) == "".join(whole.answer)
