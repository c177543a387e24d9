"""Engine: the mode table, occurrences, commit through redaction, record clean-up."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from replay.config import MissPolicy, Mode, Settings
from replay.engine import Engine
from replay.errors import BadNamespace
from replay.fingerprint import fingerprint
from replay.models import Chunk, Key, Outcome, Request, ResponseHead
from replay.plan import Action, Forward, Made, Make, Plan, Serve, decide_action
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


def decide(eng: Engine, request: Request, namespace: str = "default") -> Plan:
    """What the addon does with a request: prepare it, then plan."""
    return eng.plan(*eng.prepare(request, namespace))


def action(plan: Plan) -> Action:
    if isinstance(plan, Serve):
        return S
    if isinstance(plan, Forward):
        return F
    assert isinstance(plan, Make)
    return plan.action


def make(eng: Engine, plan: Plan) -> Made:
    assert isinstance(plan, Make)
    return eng.make(plan)


def stores(eng: Engine, plan: Plan, status: int) -> bool:
    assert isinstance(plan, Forward)
    return eng.tap(plan, replace(HEAD, status=status)).recording is not None


def record(eng: Engine, request: Request, namespace: str = "default") -> Key:
    plan = decide(eng, request, namespace)
    assert isinstance(plan, Forward) and plan.record
    recording = eng.tap(plan, HEAD).recording
    assert recording is not None
    for chunk in (*CHUNKS, Chunk(0, b"")):
        recording.tap(chunk.data)
    eng.commit(plan, recording, 0.3)
    return plan.key


# -- the whole mode table, through the engine and a real store ---------------------------------

R, A, P, PT = Mode.REPLAY, Mode.AUTO, Mode.RECORD, Mode.PASSTHROUGH
SYN, ERR, FWD = MissPolicy.SYNTHETIC, MissPolicy.ERROR, MissPolicy.FORWARD
HIT = ("serve",)
MADE_UP = ("make", Y, Outcome.SYNTHETIC, 200)
MISS_404 = ("make", X, Outcome.MISS, 404)
FORWARD = ("forward", False)
RECORD = ("forward", True)
MODE_TABLE = {
    # (mode, stored, miss policy): what the engine plans (and, for Make, what it makes)
    (R, True, SYN): HIT,
    (R, True, ERR): HIT,
    (R, True, FWD): HIT,
    (R, False, SYN): MADE_UP,
    (R, False, ERR): MISS_404,
    (R, False, FWD): FORWARD,
    (A, True, SYN): HIT,
    (A, True, ERR): HIT,
    (A, True, FWD): HIT,
    (A, False, SYN): RECORD,
    (A, False, ERR): RECORD,
    (A, False, FWD): RECORD,
    (P, True, SYN): RECORD,
    (P, True, ERR): RECORD,
    (P, True, FWD): RECORD,
    (P, False, SYN): RECORD,
    (P, False, ERR): RECORD,
    (P, False, FWD): RECORD,
    (PT, True, SYN): FORWARD,
    (PT, True, ERR): FORWARD,
    (PT, True, FWD): FORWARD,
    (PT, False, SYN): FORWARD,
    (PT, False, ERR): FORWARD,
    (PT, False, FWD): FORWARD,
}


def outcome_of(eng: Engine, plan: Plan) -> tuple[object, ...]:
    """What the engine does with `plan`, in MODE_TABLE's terms, checking each plan's parts."""
    if isinstance(plan, Serve):
        assert plan.playback.body == b"".join(c.data for c in CHUNKS)  # the stored answer
        assert plan.playback.status == HEAD.status
        return HIT
    if isinstance(plan, Make):
        made = eng.make(plan)
        assert made.nearest is None  # nothing is recorded
        assert made.playback.body.startswith(b"{")  # an OpenAI-shaped JSON answer or error
        return ("make", plan.action, made.outcome, made.playback.status)
    assert isinstance(plan, Forward)
    # The recording is kept exactly when the plan says so (a 200: auto keeps it too).
    assert stores(eng, plan, 200) is plan.record
    return ("forward", plan.record)


@pytest.mark.parametrize(("mode", "stored", "miss"), list(MODE_TABLE))
def test_the_mode_table_through_the_engine(
    tmp_path: Path, mode: Mode, stored: bool, miss: MissPolicy
) -> None:
    if stored:
        rec = engine(tmp_path, Mode.RECORD)
        record(rec, chat("hi"))
        rec.close()
    eng = engine(tmp_path, mode, replay_miss=miss.value)
    plan = decide(eng, chat("hi"))
    assert plan.key.occurrence == 0
    # A miss (logged, and in the run's summary) is a request the store should have answered.
    assert plan.miss is (not stored and mode in (Mode.REPLAY, Mode.AUTO))
    assert outcome_of(eng, plan) == MODE_TABLE[mode, stored, miss]
    eng.close()


def test_the_mode_table_covers_every_combination() -> None:
    assert set(MODE_TABLE) == {(m, s, p) for m in Mode for s in (True, False) for p in MissPolicy}
    for (mode, stored, miss), expected in MODE_TABLE.items():  # the pure table agrees
        action, record_it = decide_action(mode, miss, stored)
        match expected:
            case ("serve",):
                assert (action, record_it) == (S, False)
            case ("make", made, *_):
                assert (action, record_it) == (made, False)
            case ("forward", kept):
                assert (action, record_it) == (F, kept)
            case _:
                raise AssertionError(expected)


def record_incomplete(tmp_path: Path) -> Key:
    """Record chat("hi") whose answer broke before its end (no `[DONE]`)."""
    rec = engine(tmp_path, Mode.RECORD)
    plan = decide(rec, chat("hi"))
    assert isinstance(plan, Forward)
    recording = rec.tap(plan, HEAD).recording
    assert recording is not None
    recording.tap(CHUNKS[0].data)
    recording.abort("upstream reset")
    assert not recording.complete
    rec.commit(plan, recording, 0.1)
    rec.close()
    stored = Store(tmp_path).get(plan.key)
    assert stored is not None and not stored.complete
    return plan.key


@pytest.mark.parametrize(
    ("miss", "expected"),
    [(SYN, MADE_UP[1:]), (ERR, MISS_404[1:]), (FWD, None)],
)
def test_an_incomplete_recording_is_a_miss(
    tmp_path: Path, miss: MissPolicy, expected: tuple[object, ...] | None
) -> None:
    key = record_incomplete(tmp_path)
    play = engine(tmp_path, Mode.REPLAY, replay_miss=miss.value)
    plan = decide(play, chat("hi"))
    assert plan.key == key and plan.miss
    if expected is None:
        assert isinstance(plan, Forward) and not plan.record
    else:
        assert isinstance(plan, Make)
        made = play.make(plan)
        assert (plan.action, made.outcome, made.playback.status) == expected
        # The nearest recording is the incomplete one itself; no field differs.
        assert made.nearest is not None and made.nearest.fingerprint == key.fingerprint
        assert made.nearest.field is None
    play.close()
    auto = engine(tmp_path, Mode.AUTO)  # auto records it again
    again = decide(auto, chat("hi"))
    assert isinstance(again, Forward) and again.record and again.key == key
    auto.close()


@pytest.mark.parametrize("mode", [Mode.REPLAY, Mode.AUTO])
def test_an_incomplete_recording_replays_as_it_happened_when_asked(
    tmp_path: Path, mode: Mode
) -> None:
    key = record_incomplete(tmp_path)
    rules = rules_file(tmp_path, "settings:\n  replay_incomplete: true\n")
    eng = engine(tmp_path, mode, replay_miss="error", replay_rules=rules)
    plan = decide(eng, chat("hi"))
    assert isinstance(plan, Serve) and plan.key == key and not plan.miss
    assert plan.playback.body == CHUNKS[0].data
    # It ends as it did: the connection drops after the chunks that were recorded.
    assert plan.playback.interruption is not None
    assert plan.playback.interruption.after == 1
    eng.close()


def test_record_then_replay_repeats_in_order_and_the_last_repeats(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    keys = [record(rec, chat("hi")) for _ in range(2)]
    assert [k.occurrence for k in keys] == [0, 1] and keys[0].fingerprint == keys[1].fingerprint
    rec.close()
    play = engine(tmp_path, Mode.REPLAY, replay_miss="error")
    served = [decide(play, chat("hi")) for _ in range(3)]
    assert [action(d) for d in served] == [S, S, S]
    assert [d.key.occurrence for d in served] == [0, 1, 2]
    bodies = [d.playback.body for d in served if isinstance(d, Serve)]
    assert bodies[1] == bodies[2]  # past the last, the last repeats
    assert action(decide(play, chat("other"))) is X
    play.close()


def test_fingerprint_does_not_depend_on_the_api_key(tmp_path: Path) -> None:
    rec = engine(tmp_path, Mode.RECORD)
    record(rec, chat("hi", key="sk-proj-" + "a" * 40))
    rec.close()
    play = engine(tmp_path, Mode.REPLAY)
    assert action(decide(play, chat("hi", key="sk-proj-" + "b" * 40), "default")) is S
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
    first, second = decide(auto, chat("hi")), decide(auto, chat("hi"))
    assert isinstance(first, Serve)
    assert isinstance(second, Forward) and second.record and second.key.occurrence == 1
    auto.close()


def test_auto_stores_errors_only_when_asked(tmp_path: Path) -> None:
    auto = engine(tmp_path, Mode.AUTO)
    assert stores(auto, decide(auto, chat("x")), 200)
    assert not stores(auto, decide(auto, chat("x")), 429)
    auto.close()  # one writer of a namespace at a time
    errors = engine(tmp_path, Mode.AUTO, replay_record_errors=True)
    assert stores(errors, decide(errors, chat("x")), 500)
    errors.close()
    rec = engine(tmp_path, Mode.RECORD)
    assert stores(rec, decide(rec, chat("x")), 500)
    rec.close()
    passthrough = engine(tmp_path, Mode.PASSTHROUGH)
    assert not stores(passthrough, decide(passthrough, chat("x")), 200)
    passthrough.close()


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
    assert action(decide(play, chat("hi"), "suite-a")) is S
    assert action(decide(play, chat("hi"), "default")) is Y
    assert play.namespace(None) == "default"
    assert engine(tmp_path, Mode.REPLAY, replay_cassette="ci").namespace(None) == "ci"
    assert play.namespace("suite-b") == "suite-b"
    with pytest.raises(BadNamespace):
        play.namespace("../escape")


# -- synthetic answers and rules -------------------------------------------------------------


def rules_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


def test_a_miss_is_made_up_by_the_endpoints_responder(tmp_path: Path) -> None:
    eng = engine(tmp_path, Mode.REPLAY)
    d = decide(eng, chat("hi"))
    assert action(d) is Y
    made = make(eng, d)
    assert made.outcome is Outcome.SYNTHETIC and made.playback.status == 200
    assert json.loads(made.playback.body)["object"] == "chat.completion"
    # Deterministic: a fresh engine makes up the same bytes for the same request.
    again = engine(tmp_path, Mode.REPLAY)
    assert make(again, decide(again, chat("hi"))).playback == made.playback
    # The next occurrence gets its own answer.
    second = make(eng, decide(eng, chat("hi")))
    assert second.playback.body != made.playback.body
    eng.close()
    again.close()


def test_unknown_endpoints_and_bad_requests(tmp_path: Path) -> None:
    eng = engine(tmp_path, Mode.REPLAY)
    moderation = replace(chat("hi"), path="/v1/moderations")
    made = make(eng, decide(eng, moderation))
    assert made.outcome is Outcome.MISS and made.playback.status == 404
    assert "no synthetic responder" in json.loads(made.playback.body)["error"]["message"]
    broken = replace(chat("hi"), body=b'{"model": "gpt-4o-mini"}')  # no messages
    made = make(eng, decide(eng, broken))
    assert made.outcome is Outcome.SYNTHETIC and made.playback.status == 400
    assert json.loads(made.playback.body)["error"]["type"] == "invalid_request_error"
    eng.close()


def test_an_answer_rule_answers_in_every_mode_instead_of_store_or_upstream(
    tmp_path: Path,
) -> None:
    rules = rules_file(
        tmp_path,
        "rules:\n"
        "  - match: {last_user_message: hi}\n"
        "    reply: {text: canned}\n"
        "  - match: {last_user_message: limit}\n"
        "    error: {status: 429, retry_after: 0.5}\n"
        "    times: 1\n",
    )
    rec = engine(tmp_path, Mode.RECORD)
    record(rec, chat("limit"))
    rec.close()
    for mode in Mode:
        eng = engine(tmp_path, mode, replay_rules=rules)
        d = decide(eng, chat("hi"))
        assert action(d) is Y, mode
        made = make(eng, d)
        body = json.loads(made.playback.body)
        assert made.outcome is Outcome.SYNTHETIC
        assert body["choices"][0]["message"]["content"] == "canned"
        eng.close()
    play = engine(tmp_path, Mode.REPLAY, replay_rules=rules)
    limited = make(play, decide(play, chat("limit"))).playback
    assert limited.status == 429 and dict(limited.headers)["retry-after-ms"] == "500"
    assert json.loads(limited.body)["error"]["code"] == "rate_limit_exceeded"
    assert action(decide(play, chat("limit"), "default")) is S  # times: 1 is spent
    play.close()


def test_rules_settings_normalise_keys_and_redact_recordings(tmp_path: Path) -> None:
    rules = rules_file(
        tmp_path,
        "settings:\n"
        "  normalize: [{pattern: '\\d{4}-\\d\\d-\\d\\d', replace: DATE}]\n"
        "  redact: ['cust-\\d+']\n",
    )
    rec = engine(tmp_path, Mode.RECORD, replay_rules=rules)
    record(rec, chat("cust-42 asks on 2026-11-23"))
    rec.close()
    [(path, _)] = list(Store(tmp_path).entries("default"))
    stored = Store(tmp_path).get(Key("default", path.name.split(".")[0], 0))
    assert stored is not None and b"cust-42" not in stored.request.body
    play = engine(tmp_path, Mode.REPLAY, replay_rules=rules)
    # The stored request keys like the live one (docs/matching.md): what the user redacts
    # is left out of the key, as another date is.
    assert fingerprint(stored.request, play.policy).hex == stored.key.fingerprint
    assert action(decide(play, chat("cust-42 asks on 2026-12-01"), "default")) is S
    assert action(decide(play, chat("cust-43 asks on 2026-11-23"), "default")) is S
    assert action(decide(play, chat("cust-43 asks on 2026-11-23 again"), "default")) is Y
    play.close()


def test_pacing_comes_from_the_rules_settings(tmp_path: Path) -> None:
    eng = engine(tmp_path, Mode.REPLAY)
    assert (eng.pacing.ttfb, eng.pacing.chunk) == (0.03, 0.005)
    eng.close()
    rules = rules_file(tmp_path, "settings:\n  synthetic: {ttfb_ms: 200, chunk_ms: 20}\n")
    eng = engine(tmp_path, Mode.REPLAY, replay_rules=rules)
    assert (eng.pacing.ttfb, eng.pacing.chunk) == (0.2, 0.02)
    eng.close()


def test_head_gets_the_get_answer_without_a_body(tmp_path: Path) -> None:
    eng = engine(tmp_path, Mode.REPLAY)
    head = Request("HEAD", "http", "localhost", 11434, "/", (), (), b"")
    made = make(eng, decide(eng, head))
    assert made.outcome is Outcome.SYNTHETIC and made.playback.status == 200
    assert made.playback.body == b""
    get = replace(head, method="GET")
    assert make(eng, decide(eng, get)).playback.body == b"Ollama is running"
    eng.close()


def test_requests_a_rule_answers_do_not_shift_the_recorded_occurrences(tmp_path: Path) -> None:
    rules = rules_file(
        tmp_path,
        "rules:\n  - match: {last_user_message: hi}\n    error: {status: 429}\n    times: 2\n",
    )
    rec = engine(tmp_path, Mode.RECORD, replay_rules=rules)
    answered = [decide(rec, chat("hi")) for _ in range(2)]
    assert [action(d) for d in answered] == [Y, Y]
    assert [d.key.occurrence for d in answered] == [0, 1]  # ids still differ per answer
    assert record(rec, chat("hi")).occurrence == 0  # the retry that reached upstream
    rec.close()
    play = engine(tmp_path, Mode.REPLAY)  # replayed without the rules: a hit
    assert action(decide(play, chat("hi"), "default")) is S
    play.close()


def test_a_rule_answer_and_a_later_made_up_one_never_share_ids(tmp_path: Path) -> None:
    rules = rules_file(
        tmp_path,
        "rules:\n  - match: {last_user_message: hi}\n    reply: {text: canned}\n    times: 1\n",
    )
    eng = engine(tmp_path, Mode.REPLAY, replay_rules=rules)
    first = make(eng, decide(eng, chat("hi"))).playback
    second = make(eng, decide(eng, chat("hi"))).playback
    a, b = json.loads(first.body), json.loads(second.body)
    assert a["choices"][0]["message"]["content"] == "canned"
    assert b["choices"][0]["message"]["content"] != "canned"
    assert a["id"] != b["id"]
    eng.close()
