"""Engine: the mode table, occurrences, commit through redaction, record clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay.config import MissPolicy, Mode, Settings
from replay.engine import Action, Engine, decide_action
from replay.errors import BadNamespace
from replay.models import Chunk, Key, Request, ResponseHead
from replay.store import Store

S, F, X, Y = Action.SERVE, Action.FORWARD, Action.FAIL, Action.SYNTHESIZE


@pytest.mark.parametrize(
    ("mode", "miss", "stored", "expected"),
    [
        (Mode.REPLAY, MissPolicy.ERROR, True, (S, False)),
        (Mode.REPLAY, MissPolicy.ERROR, False, (X, False)),
        (Mode.REPLAY, MissPolicy.SYNTHETIC, False, (Y, False)),
        (Mode.REPLAY, MissPolicy.SYNTHETIC, True, (S, False)),
        (Mode.REPLAY, MissPolicy.FORWARD, False, (F, False)),
        (Mode.REPLAY, MissPolicy.FORWARD, True, (S, False)),
        (Mode.RECORD, MissPolicy.ERROR, True, (F, True)),
        (Mode.RECORD, MissPolicy.ERROR, False, (F, True)),
        (Mode.AUTO, MissPolicy.ERROR, True, (S, False)),
        (Mode.AUTO, MissPolicy.ERROR, False, (F, True)),
        (Mode.PASSTHROUGH, MissPolicy.ERROR, True, (F, False)),
        (Mode.PASSTHROUGH, MissPolicy.FORWARD, False, (F, False)),
    ],
)
def test_mode_table(
    mode: Mode, miss: MissPolicy, stored: bool, expected: tuple[Action, bool]
) -> None:
    assert decide_action(mode, miss, stored) == expected


def chat(content: str, key: str = "sk-proj-abcdefghijklmnopqrstuvwxyz012345") -> Request:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
    return Request(
        "POST",
        "https",
        "api.openai.com",
        443,
        "/v1/chat/completions",
        (),
        (("Authorization", f"Bearer {key}"), ("content-type", "application/json")),
        body.encode(),
    )


HEAD = ResponseHead(
    200,
    "OK",
    "HTTP/1.1",
    (
        ("content-type", "text/event-stream"),
        ("set-cookie", "__cf_bm=secret"),
        ("transfer-encoding", "chunked"),
    ),
)
CHUNKS = (Chunk(0.0, b"data: a\n\n"), Chunk(0.05, b"data: [DONE]\n\n"))


def engine(tmp_path: Path, mode: Mode, **kw: object) -> Engine:
    settings = Settings.from_options({"replay_mode": mode.value, "replay_dir": str(tmp_path), **kw})
    return Engine(settings)


def record(eng: Engine, request: Request, namespace: str = "default") -> Key:
    d = eng.decide(request, namespace)
    assert d.action is Action.FORWARD and d.record
    eng.commit(d, request, HEAD, 0.3, CHUNKS)
    return d.key


def test_record_then_replay_repeats_in_order_and_the_last_repeats(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    keys = [record(rec, chat("hi")) for _ in range(2)]
    assert [k.occurrence for k in keys] == [0, 1] and keys[0].fingerprint == keys[1].fingerprint
    rec.close()
    play = engine(tmp_path, Mode.REPLAY, replay_miss="error")
    served = [play.decide(chat("hi"), "default") for _ in range(3)]
    assert [d.action for d in served] == [S, S, S]
    assert [d.interaction.key.occurrence for d in served if d.interaction] == [0, 1, 1]
    assert play.decide(chat("other"), "default").action is X
    play.close()


def test_fingerprint_does_not_depend_on_the_api_key(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    record(rec, chat("hi", key="sk-proj-" + "a" * 40))
    rec.close()
    play = engine(tmp_path, Mode.REPLAY)
    assert play.decide(chat("hi", key="sk-proj-" + "b" * 40), "default").action is S
    play.close()


def test_commit_redacts_before_the_store_sees_it(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    key = record(rec, chat("my key is sk-proj-" + "z9" * 20))
    rec.close()
    stored = Store(tmp_path).get(key)
    assert stored is not None
    raw = repr(stored)
    assert "z9" * 20 not in raw and "abcdefghijklmnopqrstuvwxyz012345" not in raw
    assert "__cf_bm=secret" not in raw
    assert stored.body == b"".join(c.data for c in CHUNKS)  # response bytes untouched
    assert stored.provenance.model == "gpt-4o-mini" and stored.provenance.provider == "openai"
    assert stored.ttfb == pytest.approx(0.3)


def test_auto_hits_stored_occurrences_and_records_the_rest(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    record(rec, chat("hi"))
    rec.close()
    auto = engine(tmp_path, Mode.AUTO)
    first, second = auto.decide(chat("hi"), "default"), auto.decide(chat("hi"), "default")
    assert first.action is S
    assert second.action is F and second.record and second.key.occurrence == 1
    auto.close()


def test_auto_stores_errors_only_when_asked(tmp_path: Path) -> None:
    auto = engine(tmp_path, Mode.AUTO)
    d = auto.decide(chat("x"), "default")
    assert auto.should_store(d, 200) and not auto.should_store(d, 429)
    assert engine(tmp_path, Mode.AUTO, replay_record_errors=True).should_store(d, 500)
    assert engine(tmp_path, Mode.RECORD).should_store(d, 500)
    passthrough = engine(tmp_path, Mode.PASSTHROUGH)
    assert not passthrough.should_store(passthrough.decide(chat("x"), "default"), 200)


def test_record_clean_stop_removes_stale_occurrences(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    for _ in range(3):
        record(rec, chat("hi"))
    rec.close()
    rec2 = engine(tmp_path, Mode.RECORD)
    key = record(rec2, chat("hi"))
    rec2.close()
    store = Store(tmp_path)
    assert store.get(key) is not None
    assert store.get(key._replace(occurrence=1)) is None
    assert store.get(key._replace(occurrence=2)) is None


def test_namespaces_never_fall_back(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    record(rec, chat("hi"), namespace="suite-a")
    rec.close()
    play = engine(tmp_path, Mode.REPLAY)
    assert play.decide(chat("hi"), "suite-a").action is S
    assert play.decide(chat("hi"), "default").action is Y
    assert play.namespace(None) == "default"
    assert engine(tmp_path, Mode.REPLAY, replay_cassette="ci").namespace(None) == "ci"
    assert play.namespace("suite-b") == "suite-b"
    with pytest.raises(BadNamespace):
        play.namespace("../escape")
