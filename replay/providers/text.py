"""Deterministic made-up text and the token counter that synthetic usage figures rest on.

Owns: seeding a `random.Random` from stable parts (fingerprint, occurrence, model, ...), the
filler text of synthetic answers, and the documented token approximation (`count_tokens`) with
its streaming counterpart (`split_tokens`). Does not own: which parts seed which answer (the
responders decide), response shapes, framing (`sse.py`) or pacing (the chunk server).

Everything here is pure and stable across processes and Python versions: seeds come from
SHA-256, never from `hash()`, and only `Random` methods whose output CPython has kept stable
(`random`, `randrange`, `randint`, `choice`, `getrandbits`) are used on them.
"""

from __future__ import annotations

import hashlib
import random
import re

# A small fixed vocabulary: changing it changes every synthetic answer (and golden files).
WORDS: tuple[str, ...] = (
    "the", "model", "answer", "request", "replay", "cassette", "data", "value", "result",
    "system", "test", "simple", "stable", "quick", "clear", "small", "token", "stream",
    "response", "proxy", "record", "this", "that", "with", "from", "into", "over", "under",
    "about", "after", "before", "every", "each", "some", "many", "other", "same", "new",
    "good", "fine", "useful", "final", "first", "next", "last", "short", "long", "plain",
    "makes", "keeps", "gives", "shows", "takes", "finds", "reads", "writes", "sends", "returns",
    "checks", "works", "and", "or", "but", "so", "then", "also", "here", "there", "now", "today",
)  # fmt: skip

# One token: a run of ASCII letters, up to three digits, or any other single non-space
# character; whitespace is carried by the token that follows it.
_TOKEN = re.compile(r"\s*(?:[A-Za-z]+|[0-9]{1,3}|\S)")


def rng_for(*parts: str | int) -> random.Random:
    """A `Random` seeded from SHA-256 of `parts`; the same parts give the same stream anywhere.

    Parts are tagged with their type and length, so `("1",)` and `(1,)`, or `("ab", "c")` and
    `("a", "bc")`, seed different streams. A bool counts as the int it is.
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            raw, tag = part.encode("utf-8", "surrogatepass"), b"s"  # lone surrogates too
        elif isinstance(part, int):
            raw, tag = str(int(part)).encode("ascii"), b"i"
        else:
            raise TypeError(f"rng_for takes str or int parts, not {type(part).__name__}")
        digest.update(tag + str(len(raw)).encode("ascii") + b":" + raw)
    return random.Random(int.from_bytes(digest.digest(), "big"))


def synthetic_text(rng: random.Random, words: int = 24) -> str:
    """`words` words from `WORDS` in sentences of 5 to 12 words, each capitalised and ending
    with a period (an occasional comma inside). Deterministic for a given rng state."""
    if words < 1:
        raise ValueError(f"synthetic_text needs at least one word, got {words}")
    sentences: list[str] = []
    left = words
    while left:
        size = min(left, rng.randint(5, 12))
        if 0 < left - size < 3:  # never leave a stub sentence of one or two words
            size = left
        chosen = [rng.choice(WORDS) for _ in range(size)]
        if size >= 8:
            at = rng.randint(2, size - 3)
            chosen[at] += ","
        chosen[0] = chosen[0].capitalize()
        sentences.append(" ".join(chosen) + ".")
        left -= size
    return " ".join(sentences)


def split_tokens(text: str) -> list[str]:
    """`text` cut into the pieces a synthetic stream sends one by one; `"".join` gives `text`.

    A piece is one token in the sense of `count_tokens` (a word, a group of up to three digits,
    or a punctuation mark or other character) with the whitespace before it; trailing
    whitespace joins the last piece. `"Hi, you."` gives `["Hi", ",", " you", "."]`.
    """
    pieces = [m.group() for m in _TOKEN.finditer(text)]
    consumed = sum(map(len, pieces))
    if consumed < len(text):  # only trailing whitespace is left over
        if pieces:
            pieces[-1] += text[consumed:]
        else:
            pieces.append(text)
    return pieces


def count_tokens(text: str) -> int:
    """Approximate token count: the number of `split_tokens` pieces, at least 1 if non-empty.

    A run of ASCII letters is one token, digits count in groups of three, and every other
    non-space character (punctuation, CJK, emoji, an accented letter) is one token. For
    English prose this lands near real BPE counts (about 1.3 tokens a word); it under-counts
    long or rare words and over-counts accented text. It is monotonic (appending text never
    lowers the count) and additive over `split_tokens`: the pieces' counts sum to the whole
    text's, so usage in a final stream chunk matches the chunks sent. "" counts 0.
    """
    if not text:
        return 0
    return max(1, len(_TOKEN.findall(text)))
