"""A small byte-level BPE vocabulary with DeepSeek-R1's special tokens and chat template.

llama.cpp reads it as a "gpt2" tokenizer with the `deepseek-v3` pre-tokenizer, the
same kind DeepSeek-R1's own GGUF files carry, so it tokenizes any text (every byte
has a token) and matches the chat special tokens whole.
"""

from __future__ import annotations

import collections
import functools
import itertools
import re
from dataclasses import dataclass

# gguf's TokenType values (gguf.TokenType), repeated here so this module needs no numpy.
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK = "<think>"
END_THINK = "</think>"

# As in DeepSeek-R1's tokenizer: sentence markers are control tokens at ids 0-2, the
# chat and tool markers are added tokens at the end of the vocabulary.
_LEADING_SPECIALS = ((BOS, CONTROL), (EOS, CONTROL), (PAD, CONTROL))
_TRAILING_SPECIALS = tuple((t, USER_DEFINED) for t in (
    USER, ASSISTANT, THINK, END_THINK,
    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>",
    "<｜tool▁sep｜>",
))

# DeepSeek-R1's chat template, as llama.cpp keeps it in
# models/templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja (the R1 family's template).
CHAT_TEMPLATE = (
    '{% if not add_generation_prompt is defined -%}\n'
    '  {%- set add_generation_prompt = false -%}\n'
    '{%- endif -%}\n'
    "{%- set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') -%}\n"
    '{%- for message in messages -%}\n'
    "  {%- if message['role'] == 'system' -%}\n"
    "    {%- set ns.system_prompt = message['content'] -%}\n"
    '  {%- endif -%}\n'
    '{%- endfor -%}{{bos_token}}{{ns.system_prompt}}\n'
    '{%- for message in messages -%}\n'
    "  {%- if message['role'] == 'user' -%}\n"
    "    {%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}\n"
    '  {%- endif -%}\n'
    "  {%- if message['role'] == 'assistant' and message['content'] is none -%}\n"
    '    {%- set ns.is_tool = false -%}\n'
    "    {%- for tool in message['tool_calls']-%}\n"
    "      {%- if not ns.is_first -%}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}\n"
    '        {%- set ns.is_first = true -%}\n'
    "        {%- else -%}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}\n"
    '      {%- endif -%}\n'
    '    {%- endfor -%}\n'
    '  {%- endif -%}\n'
    "  {%- if message['role'] == 'assistant' and message['content'] is not none -%}\n"
    "    {%- if ns.is_tool -%}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}\n"
    '      {%- set ns.is_tool = false -%}\n'
    '      {%- else -%}\n'
    "      {%- set content = message['content'] -%}\n"
    "      {%- if '</think>' in content -%}\n"
    "        {%- set content = content.split('</think>')[-1] -%}\n"
    "      {%- endif -%}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}\n"
    '    {%- endif -%}\n'
    '  {%- endif -%}\n'
    "  {%- if message['role'] == 'tool' -%}\n"
    '    {%- set ns.is_tool = true -%}\n'
    "    {%- if ns.is_output_first -%}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}\n"
    '      {%- set ns.is_output_first = false -%}\n'
    "      {%- else -%}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}\n"
    '    {%- endif -%}\n'
    '  {%- endif -%}\n'
    '{%- endfor -%}\n'
    "{%- if ns.is_tool -%}{{'<｜tool▁outputs▁end｜>'}}\n"
    '{%- endif -%}\n'
    "{%- if add_generation_prompt and not ns.is_tool -%}{{'<｜Assistant｜><think>\\n'}}\n"
    '{%- endif %}'
)

# Plain English the merges are learned from; also the text llama-imatrix reads.
CORPUS = """\
The quick brown fox jumps over the lazy dog. A language model reads a prompt one token at a time
and writes the next token, then the next, until it reaches the end of the answer or the limit it
was given. Running a large model on a small machine is a question of memory: the weights must live
somewhere, in the memory of the graphics card, in the main memory of the computer, or on the disk,
and every token that the model writes reads a part of them again.

DeepSeek-R1 is a mixture of experts. Each layer has many experts, and a small router chooses a few
of them for every token, so only a part of the weights is read for each token. The first layers are
dense and every token passes through all of their weights. A shared expert is always used as well.
The attention uses a compressed cache of keys and values, which is why the cache is small for such a
large model. The model thinks before it answers: it writes its reasoning between two tags, and then
it writes the answer that the user will read.

When you ask the model a question, it may think for a long time. It can count from one to ten: one,
two, three, four, five, six, seven, eight, nine, ten. It can also count with numbers: 1, 2, 3, 4, 5,
6, 7, 8, 9, 10, 100, 1000, 2025, 65536. It knows that water boils at 100 degrees and that the speed
of light is about 300000 kilometres per second. It answers in English, and it tries to be helpful,
honest and clear. Questions, answers, and the thoughts between them are all made of tokens.

How fast does it run? That depends on the bandwidth of the memory that holds the weights. A card with
fast memory reads the weights of a token quickly; the main memory is slower, and the disk is slower
still. If the whole model does not fit, the slowest part sets the speed of every token. This is why
people place the weights that every token needs on the fastest device first, and then fill the rest
of the space with as many experts as will fit. The planner does this work for you, and it tells you
what it chose and why, before anything is downloaded or started.

Hello! How are you today? I am fine, thank you. What would you like to talk about? Let us think
about it step by step. First, we read the question. Second, we find what we know. Third, we check
the answer, and then we write it down. "Why?" she asked. 'Because it works,' he said; and so it did.
"""


@functools.lru_cache(maxsize=1)
def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to printable characters, which byte-level BPE vocabularies use."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


# Close to the deepseek-v3 pre-tokenizer for ASCII text: digit runs of up to three, words with
# their leading space, punctuation runs, newlines and spaces.
_PRETOKEN = re.compile(r"\d{1,3}| ?[A-Za-z]+| ?[^\sA-Za-z\d]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    merges: tuple[str, ...]
    bos_id: int
    eos_id: int
    pad_id: int

    def id_of(self, token: str) -> int:
        return self.tokens.index(token)


def _learn_merges(text: str, n_merges: int) -> list[tuple[str, str]]:
    """Classic BPE training: repeatedly merge the most frequent adjacent pair (ties: first seen)."""
    b2u = _byte_to_unicode()
    words = collections.Counter(
        tuple(b2u[b] for b in piece.encode("utf-8")) for piece in _PRETOKEN.findall(text)
    )
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for word, freq in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += freq
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: kv[1])[0]  # max keeps the first of equal counts
        merges.append(best)
        joined = best[0] + best[1]
        new_words: collections.Counter[tuple[str, ...]] = collections.Counter()
        for word, freq in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] += freq
        words = new_words
    return merges


@functools.lru_cache(maxsize=4)
def build_vocab(n_merges: int = 600) -> Vocab:
    """The special tokens, all 256 bytes, then up to `n_merges` merged tokens learned from CORPUS."""
    b2u = _byte_to_unicode()
    tokens: list[str] = [t for t, _ in _LEADING_SPECIALS]
    types: list[int] = [k for _, k in _LEADING_SPECIALS]
    for b in range(256):
        tokens.append(b2u[b])
        types.append(NORMAL)
    merges = _learn_merges(CORPUS, n_merges)
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            tokens.append(a + b)
            types.append(NORMAL)
    for t, k in _TRAILING_SPECIALS:
        tokens.append(t)
        types.append(k)
    return Vocab(
        tokens=tuple(tokens), token_types=tuple(types), merges=tuple(f"{a} {b}" for a, b in merges),
        bos_id=0, eos_id=1, pad_id=2,
    )
