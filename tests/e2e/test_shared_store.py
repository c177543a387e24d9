"""A store shared on S3 (moto's real S3 API server on 127.0.0.1) by real mitmdump proxies:
several record into one bucket at once, another replays all of it with an empty cache, and
once its cache is warm, replays with the server stopped."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import pytest
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy, ProxyFactory
from support.rawclient import ConnectionCounter, RawResponse
from support.s3server import MotoServer, Relay, s3_env
from test_record_replay import chat_body, post, replay_proxy

pytestmark = pytest.mark.e2e

RECORDERS = 3
EACH = 4


def s3_proxy(
    factory: ProxyFactory, mode: str, url: str, endpoint: str, cache: Path, upstream: int
) -> Proxy:
    """A proxy on the store `url` at `endpoint`, its read-through cache under `cache` (the
    proxy inherits the environment as it is when it starts)."""
    os.environ.update({**s3_env(endpoint), "XDG_CACHE_HOME": str(cache)})
    extra = ("--set", "replay_speed=0", "--set", "replay_miss=error")
    return replay_proxy(factory, mode, url, upstream, *extra)  # type: ignore[arg-type]


def test_proxies_record_into_one_bucket_and_others_replay_it_even_offline(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    with MotoServer() as moto:
        url = f"s3://{moto.bucket('shared-' + secrets.token_hex(4))}/ci"
        upstream = fake_upstream.port
        recorders = [
            s3_proxy(proxy_factory, "auto", url, moto.endpoint, tmp_path / f"r{n}", upstream)
            for n in range(RECORDERS)
        ]
        bodies = {
            n: [chat_body(f"runner {n} question {i}") for i in range(EACH)]
            for n in range(RECORDERS)
        }
        recorded: dict[bytes, RawResponse] = {}
        lock = threading.Lock()

        def run(n: int) -> None:
            for body in bodies[n]:
                answer = post(recorders[n], bundle, body)
                with lock:
                    recorded[body] = answer

        threads = [threading.Thread(target=run, args=(n,)) for n in range(RECORDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(recorded) == RECORDERS * EACH
        assert {r.header("x-replay") for r in recorded.values()} == {"recorded"}
        for proxy in recorders:
            assert proxy.stop() == 0  # a clean stop drains the writer
        fake_upstream.stop()
        objects = moto.client().list_objects_v2(Bucket=url[5:].split("/")[0])["Contents"]
        fingerprints = {r.header("x-replay-fingerprint") for r in recorded.values()}
        assert len(objects) == len(fingerprints) == RECORDERS * EACH  # none lost

        with ConnectionCounter(fake_upstream.port) as counter:
            cache = tmp_path / "replayer"
            replayer = s3_proxy(proxy_factory, "replay", url, moto.endpoint, cache, counter.port)
            for body, rec in recorded.items():
                answer = post(replayer, bundle, body)
                assert answer.header("x-replay") == "hit", replayer.output()
                assert answer.body == rec.body
            assert replayer.stop() == 0
            moto.stop()  # the object store is gone: the warm cache answers
            offline = s3_proxy(proxy_factory, "replay", url, moto.endpoint, cache, counter.port)
            for body, rec in recorded.items():
                answer = post(offline, bundle, body)
                assert answer.header("x-replay") == "hit", offline.output()
                assert answer.body == rec.body
            # Not cached and the store unreachable: an error naming the store.
            missing = post(offline, bundle, chat_body("never recorded"))
            assert missing.header("x-replay") == "error"
            assert url in missing.body.decode()
            assert counter.count() == 0


def test_identical_recordings_race_for_one_name_and_the_losers_keep_the_winners(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    with MotoServer() as moto:
        url = f"s3://{moto.bucket('race-' + secrets.token_hex(4))}/ci"
        reports = [tmp_path / f"report{n}.jsonl" for n in range(RECORDERS)]
        recorders = []
        for n in range(RECORDERS):
            os.environ.update({**s3_env(moto.endpoint), "XDG_CACHE_HOME": str(tmp_path / f"c{n}")})
            recorders.append(
                replay_proxy(
                    proxy_factory,
                    "auto",
                    url,  # type: ignore[arg-type]
                    fake_upstream.port,
                    "--set",
                    f"replay_report={reports[n]}",
                )
            )
        same = chat_body("everyone asks this")
        answers: list[RawResponse] = []
        lock = threading.Lock()

        def ask(n: int) -> None:
            answer = post(recorders[n], bundle, same)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(RECORDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        outcomes = [a.header("x-replay") for a in answers]
        # A proxy that looks after another's claim landed has a hit; the others raced.
        assert set(outcomes) <= {"recorded", "hit"} and "recorded" in outcomes
        for proxy in recorders:
            assert proxy.stop() == 0
        objects = moto.client().list_objects_v2(Bucket=url[5:].split("/")[0])["Contents"]
        assert len(objects) == 1  # one name, claimed once, never overwritten
        lost = sum(text.count("claim lost") for text in (r.read_text() for r in reports))
        assert lost == outcomes.count("recorded") - 1  # every loser's report says so


def test_a_store_that_ignores_conditional_writes_is_refused_for_auto(
    proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    with MotoServer() as moto, Relay(moto.port) as relay:
        relay.drop_if_none_match = True
        url = f"s3://{moto.bucket('lax-' + secrets.token_hex(4))}/ci"
        os.environ.update({**s3_env(relay.endpoint), "XDG_CACHE_HOME": str(tmp_path / "c")})
        refused = replay_proxy(proxy_factory, "auto", url, None)  # type: ignore[arg-type]
        assert refused.stop() == 1  # mitmdump exits after an error at startup
        assert "replay_dir: the store" in refused.output()
        assert "ignores conditional writes" in refused.output()
        replayer = replay_proxy(proxy_factory, "replay", url, None)  # type: ignore[arg-type]
        assert replayer.stop() == 0  # replay needs no claims
