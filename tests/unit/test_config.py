"""Settings.from_options: every option validated, with a message that names it."""

from __future__ import annotations

import re

import pytest

from replay.config import OPTION_SPECS, MissPolicy, Mode, Settings, SyntheticTools, check_namespace
from replay.errors import ConfigError


def test_defaults_match_the_spec_table() -> None:
    s = Settings.from_options({})
    assert (s.mode, s.miss, s.dir, s.speed) == (Mode.REPLAY, MissPolicy.SYNTHETIC, "cassettes", 1.0)
    assert s.cassette is None and s.report is None and not s.record_errors
    assert s.synthetic_tools is SyntheticTools.AUTO


def test_values_are_parsed() -> None:
    s = Settings.from_options(
        {
            "replay_mode": "auto",
            "replay_miss": "forward",
            "replay_speed": "2.5",
            "replay_ignore": "user, metadata.trace_id,messages.*.name",
            "replay_hosts": "*.example.com,api.openai.com",
            "replay_cassette": "suite-a",
            "replay_record_errors": True,
            "replay_synthetic_tools": "forced",
        }
    )
    assert s.mode is Mode.AUTO and s.miss is MissPolicy.FORWARD and s.speed == 2.5
    assert s.ignore == ("user", "metadata.trace_id", "messages.*.name")
    assert s.hosts == ("*.example.com", "api.openai.com")
    assert s.cassette == "suite-a" and s.record_errors
    assert s.synthetic_tools is SyntheticTools.FORCED


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("replay_mode", "replya"),
        ("replay_miss", "ignore"),
        ("replay_speed", "fast"),
        ("replay_speed", "-1"),
        ("replay_speed", "nan"),
        ("replay_speed", "inf"),
        ("replay_cassette", "../etc"),
        ("replay_cassette", "a/../b"),
        ("replay_cassette", "a\\b"),
        ("replay_ignore", "a..b"),
        ("replay_dir", ""),
        ("replay_pacer_ports", 0),
        ("replay_max_body", 0),
        ("replay_max_body", 1023),
        ("replay_max_body", 2**41),
        ("replay_max_body", True),
        ("replay_max_body", "64M"),
        ("replay_max_body", -5),
        ("replay_synthetic_tools", "always"),
    ],
)
def test_bad_values_name_the_option(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_options({name: value})


def test_max_body_defaults_to_64_mib_and_accepts_a_number_or_digits() -> None:
    assert Settings.from_options({}).max_body == 64 * 2**20 == Settings().max_body
    assert Settings.from_options({"replay_max_body": 16 * 2**20}).max_body == 16 * 2**20
    assert Settings.from_options({"replay_max_body": "2048"}).max_body == 2048


def test_every_option_has_help_and_a_parseable_type() -> None:
    for spec in OPTION_SPECS:
        assert spec.name.startswith("replay_") and len(spec.help) > 20
        assert spec.typespec in (str, bool, int, str | None)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        (".", "starts with '.'"),
        ("..", "starts with '.'"),
        ("a/../b", "starts with '.'"),
        ("a/./b", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("a/.hidden", "starts with '.'"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("/abs", "relative path"),
        ("a\\b", "is not a separator"),
        ("a\x00b", "control characters"),
        ("a\nb", "control characters"),
        ("a\x7fb", "control characters"),
        ("x" * 256, "longer than 255 bytes"),
        ("é" * 128, "longer than 255 bytes"),
        ("a/" * 512 + "a", "longer than 1024 characters"),
    ],
)
def test_bad_namespaces_are_refused_with_the_reason(name: str, why: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)):
        check_namespace(name)


@pytest.mark.parametrize(
    "name",
    [
        "suite_1.v2-a",
        "a/b/c",
        "tests/test_chat/test_summary[gpt-4o]",
        "a/ff/00",
        "x" * 255,
        "unicode/日本語 with spaces",
        "a..b/c.",
    ],
)
def test_relative_paths_of_plain_segments_are_namespaces(name: str) -> None:
    assert check_namespace(name) == name


def test_replay_cassette_takes_a_nested_namespace_and_refuses_a_bad_one() -> None:
    assert Settings.from_options({"replay_cassette": "ci/nightly"}).cassette == "ci/nightly"
    with pytest.raises(
        ConfigError, match=re.escape("replay_cassette: invalid namespace 'ci/../x'")
    ):
        Settings.from_options({"replay_cassette": "ci/../x"})
