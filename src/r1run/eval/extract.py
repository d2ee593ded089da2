"""The game a model wrote: the last python block of its answer, after the reasoning."""

from __future__ import annotations

import re

# ```python / ```py / ```Python3 fences; the closing fence on a line of its own.
_FENCE = re.compile(r"^[ \t]*```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^[ \t]*```[ \t]*$", re.M | re.S)


def after_thinking(text: str) -> str:
    """The answer proper: what follows the last `</think>` (all of it when there is none)."""
    head, sep, tail = text.rpartition("</think>")
    return tail if sep else text


def last_python_block(text: str) -> str | None:
    """The last fenced python block after `</think>`; an unlabelled block only when no block says python.

    A block the model never closed (it ran out of tokens) does not count: the game is unfinished.
    """
    blocks = [(m.group("lang").lower(), m.group("code")) for m in _FENCE.finditer(after_thinking(text))]
    python = [code for lang, code in blocks if lang in ("python", "py", "python3")]
    if python:
        return python[-1]
    bare = [code for lang, code in blocks if not lang]
    return bare[-1] if bare else None


def why_no_game(text: str) -> str:
    """What an answer without a python block to play holds instead, in a few words."""
    tail = after_thinking(text)
    if re.search(r"^[ \t]*```[ \t]*(python|py|python3)?[ \t]*$", tail, re.M | re.I):
        return "no complete python block in the answer (the last one is never closed: cut off?)"
    return "no python block in the answer"


def game_source(text: str, *, is_python_file: bool) -> str | None:
    """The code to score: a .py file as it is, a markdown answer's last python block."""
    return text if is_python_file else last_python_block(text)
