"""The store on S3: moto's real S3 API server on 127.0.0.1 (a subprocess), reached through
a relay that counts requests and injects faults (tests/support/s3server.py). No mock of
the client library: boto3 speaks HTTP to a server."""

from __future__ import annotations

import importlib.util
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.s3server import MotoServer, Relay, s3_env
from test_store import FP, OTHER, make, redacted, text_of

from replay import codec
from replay.config import Settings
from replay.errors import ConfigError, StoreError, StoreUnavailable
from replay.models import Key
from replay.store import Store, WriteOutcome


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def relay(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Relay]:
    with Relay(moto.port) as r:
        for name, value in s3_env(r.endpoint).items():
            monkeypatch.setenv(name, value)
        yield r


@pytest.fixture
def url(moto: MotoServer) -> str:
    return f"s3://{moto.bucket('b-' + secrets.token_hex(6))}/team/ci"


def open_store(url: str, cache: Path, claim: bool = True) -> Store:
    return Store(url, cache_dir=cache, claim_names=claim)


def record(url: str, cache: Path, count: int, text: str = "hello") -> None:
    with open_store(url, cache) as writer:
        results = [writer.put(redacted(make(occurrence=n, text=text))) for n in range(count)]
        assert writer.flush(60)
        assert [r.outcome for r in results] == [WriteOutcome.WRITTEN] * count


def test_a_fresh_cache_costs_one_request_a_file_and_a_repeat_none(
    url: str, relay: Relay, tmp_path: Path
) -> None:
    record(url, tmp_path / "writer", 5)
    relay.requests.clear()
    with open_store(url, tmp_path / "reader") as reader:
        assert reader.remote
        assert relay.requests == {}  # nothing listed or fetched at startup
        for n in range(5):
            assert text_of(reader.get(Key("default", FP, n))) == "hello"
        assert relay.requests == {"GET": 5}
        for n in range(5):
            assert text_of(reader.get_latest(Key("default", FP, n))) == "hello"
    with open_store(url, tmp_path / "reader") as again:  # a new run, the same cache
        for n in range(5):
            assert text_of(again.get(Key("default", FP, n))) == "hello"
    assert relay.requests == {"GET": 5}


def test_a_miss_costs_a_get_and_a_listing_once(url: str, relay: Relay, tmp_path: Path) -> None:
    record(url, tmp_path / "writer", 2)
    relay.requests.clear()
    with open_store(url, tmp_path / "reader") as reader:
        assert text_of(reader.get_latest(Key("default", FP, 7))) == "hello"  # the last repeats
        assert reader.get_latest(Key("default", OTHER, 0)) is None
        seen = dict(relay.requests)
        for _ in range(3):
            assert text_of(reader.get_latest(Key("default", FP, 7))) == "hello"
            assert reader.get_latest(Key("default", OTHER, 0)) is None
        assert relay.requests == seen


def test_entries_list_the_bucket_and_read_file_reads_any_entry(
    url: str, relay: Relay, tmp_path: Path
) -> None:
    record(url, tmp_path / "writer", 3)
    with open_store(url, tmp_path / "reader") as reader:
        listed = list(reader.entries())
        assert [k for _, k in listed] == [Key("default", FP, n) for n in range(3)]
        data = reader.read_file(listed[0][0])
        assert data is not None and text_of(codec.decode(data)) == "hello"
        assert reader.read_file(listed[0][0], max_file_bytes=10) is None


def test_a_claim_never_overwrites_and_record_mode_does(
    url: str, relay: Relay, tmp_path: Path
) -> None:
    record(url, tmp_path / "first", 1, text="first")
    with open_store(url, tmp_path / "second") as second:
        assert second.put(redacted(make(text="second"))).wait(30) is WriteOutcome.LOST
        assert text_of(second.get(Key("default", FP, 0))) == "first"
    with open_store(url, tmp_path / "third", claim=False) as recorder:
        assert recorder.put(redacted(make(text="third"))).wait(30) is WriteOutcome.WRITTEN
    with open_store(url, tmp_path / "fresh") as reader:
        assert text_of(reader.get(Key("default", FP, 0))) == "third"


def test_a_put_whose_answer_was_lost_and_retried_is_still_ours(
    url: str, relay: Relay, tmp_path: Path
) -> None:
    relay.lose_next_put_answer = True  # stored, but the client never hears it: it retries
    with open_store(url, tmp_path / "c") as store:
        assert store.put(redacted(make())).wait(60) is WriteOutcome.WRITTEN
    assert relay.requests["PUT"] >= 2


def test_a_failing_write_is_retried_with_backoff_off_the_clients_path(
    url: str, relay: Relay, tmp_path: Path
) -> None:
    relay.fail_next = 3
    with open_store(url, tmp_path / "c") as store:
        put = store.put(redacted(make()))
        assert put.outcome is WriteOutcome.PENDING  # put returned before any request ended
        assert text_of(store.get(Key("default", FP, 0))) == "hello"  # pending: visible
        assert put.wait(60) is WriteOutcome.WRITTEN
    assert relay.requests["PUT"] >= 4
    with open_store(url, tmp_path / "fresh") as reader:
        assert text_of(reader.get(Key("default", FP, 0))) == "hello"


def test_a_write_that_keeps_failing_is_dropped_with_an_error(
    url: str, relay: Relay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    relay.fail_with = 500
    with open_store(url, tmp_path / "c") as store, caplog.at_level(logging.ERROR):
        assert store.put(redacted(make())).wait(120) is WriteOutcome.FAILED
    assert url in caplog.text and "interaction dropped" in caplog.text
    relay.fail_with = 0
    with open_store(url, tmp_path / "fresh") as reader:
        assert reader.get(Key("default", FP, 0)) is None  # nothing half-written


@pytest.mark.parametrize("fault", ["503", "slow", "unreachable"])
def test_lookups_answer_from_the_cache_when_the_store_fails(
    fault: str, url: str, relay: Relay, tmp_path: Path
) -> None:
    record(url, tmp_path / "writer", 2)
    with open_store(url, tmp_path / "reader") as reader:
        reader.get(Key("default", FP, 0))  # warm: occurrence 0 only
    if fault == "503":
        relay.fail_with = 503
    elif fault == "slow":
        relay.delay = 2.0
    else:
        relay.stop()
    with open_store(url, tmp_path / "reader") as reader:
        assert text_of(reader.get(Key("default", FP, 0))) == "hello"
        if fault == "slow":  # slow but up: it answers
            assert text_of(reader.get(Key("default", FP, 1))) == "hello"
            return
        # Past the last cached occurrence: the cache's copies answer.
        assert text_of(reader.get_latest(Key("default", FP, 9))) == "hello"
        with pytest.raises(StoreUnavailable, match=url):
            reader.get(Key("default", FP, 1))
        asked = dict(relay.requests)
        with pytest.raises(StoreUnavailable, match=url):
            reader.get_latest(Key("default", OTHER, 0))
        assert relay.requests == asked  # the store counts as down: no request, at once


def test_a_store_that_ignores_if_none_match_is_refused(
    url: str, relay: Relay, tmp_path: Path
) -> None:
    relay.drop_if_none_match = True
    with (
        open_store(url, tmp_path / "c") as store,
        pytest.raises(StoreError, match="ignores conditional writes"),
    ):
        store.check_claims()
    relay.drop_if_none_match = False
    with open_store(url, tmp_path / "c") as store:
        assert store.check_claims() is True
    assert [k for _, k in store.entries()] == []  # the probe left nothing behind


def test_read_only_credentials_replay_and_never_write(
    url: str, relay: Relay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record(url, tmp_path / "writer", 1)
    relay.deny_writes = True
    with open_store(url, tmp_path / "fork") as fork, caplog.at_level(logging.WARNING):
        assert fork.check_claims() is False
        assert not fork.may_write("default")
        assert not fork.put(redacted(make(occurrence=1)))
        assert text_of(fork.get(Key("default", FP, 0))) == "hello"
    assert "refuses writes" in caplog.text
    with open_store(url, tmp_path / "late") as late:  # no probe: the first write finds out
        assert late.put(redacted(make(occurrence=1))).wait(60) is WriteOutcome.FAILED
        assert late.read_only and not late.put(redacted(make(occurrence=2)))


def test_config_takes_an_s3_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_options({"replay_dir": "s3://bucket/prefix", "replay_cache": "/c"})
    assert (settings.dir, settings.cache) == ("s3://bucket/prefix", "/c")
    for bad in ("s3://", "s3://B/x", "s3://bucket/../x", "s3://bucket//x"):
        with pytest.raises(ConfigError, match="replay_dir"):
            Settings.from_options({"replay_dir": bad})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else real(name)
    )
    with pytest.raises(ConfigError) as refused:
        Settings.from_options({"replay_dir": "s3://bucket"})
    assert "pip install 'llm-replay[s3]'" in str(refused.value)
    assert "\n" not in str(refused.value)
