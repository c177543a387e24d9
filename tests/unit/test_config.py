"""Settings.from_options: every option validated, with a message that names it."""

from __future__ import annotations

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
        ("replay_cassette", "a/b"),
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


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "x" * 200, "/abs"])
def test_namespaces_must_be_plain_names(name: str) -> None:
    with pytest.raises(ConfigError):
        check_namespace(name)


def test_plain_namespace_is_accepted() -> None:
    assert check_namespace("suite_1.v2-a") == "suite_1.v2-a"
