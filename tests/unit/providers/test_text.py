"""Deterministic text, seeding and the token approximation."""

from __future__ import annotations

import random

import pytest

from replay.providers.text import WORDS, count_tokens, rng_for, split_tokens, synthetic_text


def test_rng_for_is_stable_and_known() -> None:
    assert rng_for("fp", 0).random() == rng_for("fp", 0).random()
    # Pinned: a change here changes every synthetic answer and every golden file.
    assert rng_for("abc", 1).getrandbits(32) == 886974170


def test_rng_for_separates_parts_and_types() -> None:
    def first(*parts: str | int) -> float:
        return rng_for(*parts).random()

    assert first("ab", "c") != first("a", "bc")
    assert first("1") != first(1)
    assert first("fp", 0) != first("fp", 1)
    assert first() == first()


def test_rng_for_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        rng_for(1.5)  # type: ignore[arg-type]


def test_synthetic_text_shape() -> None:
    for seed in range(50):
        words = 1 + seed % 40
        text = synthetic_text(rng_for("t", seed), words)
        assert text[0].isupper() and text.endswith(".")
        assert len(text.split()) == words
        for word in text.split():
            assert word.strip(".,").lower() in WORDS


def test_synthetic_text_is_deterministic_and_varies() -> None:
    assert synthetic_text(rng_for("a")) == synthetic_text(rng_for("a"))
    assert synthetic_text(random.Random(3)) == synthetic_text(random.Random(3))
    assert len({synthetic_text(rng_for("a", i)) for i in range(10)}) == 10


def test_synthetic_text_needs_a_word() -> None:
    with pytest.raises(ValueError):
        synthetic_text(rng_for("a"), 0)


SAMPLES = [
    "",
    "Hi",
    "Hi, you.",
    "  leading and trailing  ",
    "   ",
    "line\nbreaks\r\n and\ttabs\n",
    "12345 and 3.14159",
    "Olá, 世界! 🙂 café",
    "don't stop-me_now",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_split_tokens_concatenates_back(text: str) -> None:
    assert "".join(split_tokens(text)) == text
    assert all(split_tokens(text))


def test_split_tokens_carry_leading_space() -> None:
    assert split_tokens("Hi, you there.") == ["Hi", ",", " you", " there", "."]
    assert split_tokens("a  b ") == ["a", "  b "]
    assert split_tokens("") == []


def test_count_tokens_documented_rules() -> None:
    assert count_tokens("") == 0
    assert count_tokens("   ") == 1
    assert count_tokens("Hello") == 1
    assert count_tokens("Hello, world.") == 4
    assert count_tokens("1234567") == 3
    assert count_tokens("世界") == 2


@pytest.mark.parametrize("text", SAMPLES)
def test_count_tokens_is_additive_over_split_tokens(text: str) -> None:
    pieces = split_tokens(text)
    assert sum(count_tokens(p) for p in pieces) == count_tokens(text)


def test_count_tokens_is_monotonic_when_appending() -> None:
    text = synthetic_text(rng_for("mono"), 60)
    counts = [count_tokens(text[:i]) for i in range(len(text) + 1)]
    assert counts == sorted(counts)
    for a in SAMPLES:
        for b in SAMPLES:
            assert count_tokens(a + b) >= count_tokens(a)


def test_count_tokens_is_near_real_bpe_for_prose() -> None:
    text = synthetic_text(rng_for("prose"), 100)
    assert 100 <= count_tokens(text) <= 140
