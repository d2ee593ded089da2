"""Split a streamed answer into reasoning (between <think> and </think>) and the answer itself."""

from __future__ import annotations

from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Piece:
    thinking: bool
    text: str


class ThinkSplitter:
    """Feed text chunks as they stream; get back pieces tagged thinking or answer.

    Tags may be split across chunks ("<thi" + "nk>"), so a possible tag prefix at the
    end of a chunk is held back until the next chunk decides it. DeepSeek-R1 answers
    `<think>\\nreasoning...\\n</think>\\n\\nanswer`; newer templates put `<think>` in the
    prompt, so the output starts inside the reasoning and only `</think>` appears:
    `starts_thinking=True` covers that.
    """

    def __init__(self, starts_thinking: bool = False) -> None:
        self.thinking = starts_thinking
        self._held = ""
        self.reasoning: list[str] = []
        self.answer: list[str] = []

    def feed(self, chunk: str) -> list[Piece]:
        text = self._held + chunk
        self._held = ""
        pieces: list[Piece] = []
        while text:
            tag = CLOSE if self.thinking else OPEN
            idx = text.find(tag)
            if idx >= 0:
                self._emit(pieces, text[:idx])
                text = text[idx + len(tag):]
                self.thinking = not self.thinking
                continue
            keep = _partial_suffix(text, tag)
            self._emit(pieces, text[: len(text) - keep])
            self._held = text[len(text) - keep:]
            break
        return pieces

    def close(self) -> list[Piece]:
        pieces: list[Piece] = []
        self._emit(pieces, self._held)
        self._held = ""
        return pieces

    def _emit(self, pieces: list[Piece], text: str) -> None:
        if not text:
            return
        (self.reasoning if self.thinking else self.answer).append(text)
        pieces.append(Piece(self.thinking, text))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a proper start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
