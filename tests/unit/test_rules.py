"""The rules file: parsing, validation messages, matching, verdicts, `times`, reloads."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path

import pytest

from replay.errors import ConfigError
from replay.models import Request
from replay.providers.base import Reply, ToolCall
from replay.rules import (
    EMPTY,
    NOTHING,
    Fault,
    HttpError,
    Latency,
    Match,
    Rule,
    RulesError,
    RuleSet,
    RulesFile,
    SyntheticPacing,
    TextMatch,
    Verdict,
    load_rules,
)

CHAT = "/v1/chat/completions"


def req(
    body: object = None,
    *,
    host: str = "api.openai.com",
    path: str = CHAT,
    method: str = "POST",
    port: int = 443,
) -> Request:
    data = b"" if body is None else json.dumps(body).encode()
    return Request(method, "https", host, port, path, (), (), data)


def chat(text: str, model: str = "gpt-4o-mini") -> Request:
    return req({"model": model, "messages": [{"role": "user", "content": text}]})


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rules_of(tmp_path: Path, text: str, name: str = "rules.yaml") -> RuleSet:
    return load_rules(write(tmp_path, text, name))


def error_of(tmp_path: Path, text: str, name: str = "rules.yaml") -> str:
    with pytest.raises(RulesError) as info:
        rules_of(tmp_path, text, name)
    return str(info.value)


# -- parsing --------------------------------------------------------------------------------

EXAMPLE_YAML = """\
settings:
  synthetic: {ttfb_ms: 30, chunk_ms: 5}
rules:
  - name: weather tool by fixture
    match: {path: "*/chat/completions", last_user_message: {contains: weather}}
    reply:
      tool_calls: [{name: get_weather, arguments: {city: Paris}}]
  - match: {model: "claude-*", last_user_message: "ping"}     # a plain string = exact
    reply: {text: "pong"}
  - match: {host: api.openai.com}
    error: {status: 429, retry_after: 0.005, message: "Rate limit reached"}
    times: 2
  - match: {path: "*/messages"}
    latency: {ttfb_ms: 500, chunk_ms: 20}
  - match: {last_user_message: {regex: "(?i)flaky"}}
    fault: {cut_after: 3}
"""

EXAMPLE_JSON = {
    "settings": {"synthetic": {"ttfb": 0.03, "chunk": 0.005}},
    "rules": [
        {
            "name": "weather tool by fixture",
            "match": {"path": "*/chat/completions", "last_user_message": {"contains": "weather"}},
            "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        },
        {"match": {"model": "claude-*", "last_user_message": "ping"}, "reply": {"text": "pong"}},
        {
            "match": {"host": "api.openai.com"},
            "error": {"status": 429, "retry_after_ms": 5, "message": "Rate limit reached"},
            "times": 2,
        },
        {"match": {"path": "*/messages"}, "latency": {"ttfb": 0.5, "chunk": 0.02}},
        {"match": {"last_user_message": {"regex": "(?i)flaky"}}, "fault": {"cut_after": 3}},
    ],
}


def test_yaml_is_parsed_into_rules(tmp_path: Path) -> None:
    rs = rules_of(tmp_path, EXAMPLE_YAML)
    assert rs.settings.synthetic == SyntheticPacing(0.03, 0.005)
    weather, pong, limit, slow, flaky = rs.rules
    assert weather.name == "weather tool by fixture"
    assert weather.match == Match(
        path="*/chat/completions", last_user=TextMatch(contains="weather")
    )
    assert weather.reply == Reply(None, (ToolCall("get_weather", {"city": "Paris"}),))
    assert type(weather.reply.tool_calls[0].arguments) is dict  # plain values, not ruamel's
    assert pong.name == "rule 2" and pong.reply == Reply("pong")
    assert pong.match.last_user == TextMatch(exact="ping")
    assert limit.error == HttpError(429, "Rate limit reached", None, 0.005)
    assert limit.times == 2 and limit.answers and not limit.modifies
    assert slow.latency == Latency(0.5, 0.02) and slow.modifies and not slow.answers
    assert flaky.fault == Fault(cut_after=3)
    assert flaky.match.last_user is not None and flaky.match.last_user.matches("so FLAKY")


def test_json_gives_the_same_rules(tmp_path: Path) -> None:
    from_yaml = rules_of(tmp_path, EXAMPLE_YAML)
    from_json = rules_of(tmp_path, json.dumps(EXAMPLE_JSON), "rules.json")
    assert from_json.rules == from_yaml.rules
    assert from_json.settings == from_yaml.settings


def test_top_level_may_be_a_list(tmp_path: Path) -> None:
    rs = rules_of(tmp_path, "- reply: hi\n- error: 503\n")
    assert rs.rules[0].reply == Reply("hi")  # a plain string reply is its text
    assert rs.rules[1].error == HttpError(503)  # a plain number error is its status
    assert rs.rules[0].match == Match()  # no match: every request


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "rules:\n", "rules: []\nsettings:\n"])
def test_empty_documents_have_no_rules(tmp_path: Path, text: str) -> None:
    rs = rules_of(tmp_path, text)
    assert rs.rules == () and rs.settings == EMPTY.settings


def test_empty_json_file_has_no_rules(tmp_path: Path) -> None:
    assert rules_of(tmp_path, "  \n", "rules.json").rules == ()


def test_settings(tmp_path: Path) -> None:
    rs = rules_of(
        tmp_path,
        r"""
settings:
  synthetic: {chunk: 0.25}
  redact: ['tok_[a-z0-9]+']
  verify_allow: ['sk-test-fixture']
  replay_incomplete: true
  normalize:
    - {pattern: '\d{4}-\d{2}-\d{2}', replace: '<date>'}
    - {pattern: 'req-\w+'}
""",
    )
    s = rs.settings
    assert s.synthetic == SyntheticPacing(ttfb=0.03, chunk=0.25)  # the default ttfb stays
    assert [p.pattern for p in s.redact] == ["tok_[a-z0-9]+"]
    assert s.verify_allow[0].search("key sk-test-fixture here")
    assert s.replay_incomplete is True
    assert s.normalize[0].apply("on 2026-01-02 and 2026-03-04") == "on <date> and <date>"
    assert s.normalize[1].apply("id req-abc!") == "id !"


def test_normalizer_replacement_is_literal(tmp_path: Path) -> None:
    rs = rules_of(tmp_path, "settings:\n  normalize: [{pattern: '(a)', replace: '\\1'}]\n")
    assert rs.settings.normalize[0].apply("cat") == "c\\1t"


def test_yaml_values_become_json_values(tmp_path: Path) -> None:
    rs = rules_of(
        tmp_path,
        "- reply:\n    tool_calls:\n      - name: f\n        id: call_fixed\n"
        "        arguments: {day: 2026-01-02, n: 0x10, x: 1.5, flag: true, none: null,"
        " list: [1, b]}\n",
    )
    call = rs.rules[0].reply.tool_calls[0]  # type: ignore[union-attr]
    assert call.id == "call_fixed"
    assert call.arguments == {
        "day": "2026-01-02",
        "n": 16,
        "x": 1.5,
        "flag": True,
        "none": None,
        "list": [1, "b"],
    }
    assert json.dumps(call.arguments)  # serialisable as is


def test_tool_call_without_arguments_has_them_made_up(tmp_path: Path) -> None:
    rs = rules_of(tmp_path, "- reply: {tool_calls: [{name: f}], text: calling}\n")
    assert rs.rules[0].reply == Reply("calling", (ToolCall("f", None),))


def test_error_fields(tmp_path: Path) -> None:
    rs = rules_of(
        tmp_path,
        "- error: {status: 529, code: overloaded_error, retry_after_ms: 1500,"
        " headers: {x-trace: abc, x-n: 3}}\n- error: {status: 500, code: 42}\n",
    )
    assert rs.rules[0].error == HttpError(
        529, None, "overloaded_error", 1.5, (("x-trace", "abc"), ("x-n", "3"))
    )
    assert rs.rules[1].error is not None and rs.rules[1].error.code == "42"


def test_stall_fault(tmp_path: Path) -> None:
    rs = rules_of(
        tmp_path, "- fault: {stall_after: 2, stall_ms: 1000}\n- fault: {stall_after: 0}\n"
    )
    assert rs.rules[0].fault == Fault(stall_after=2, stall=1.0)
    assert rs.rules[1].fault == Fault(stall_after=0, stall=None)  # held until the client leaves


def test_method_is_upper_cased(tmp_path: Path) -> None:
    assert rules_of(tmp_path, "- {match: {method: post}, reply: x}\n").rules[0].match.method == (
        "POST"
    )


def test_rules_error_is_a_config_error() -> None:
    assert issubclass(RulesError, ConfigError)


# -- validation: every message names the place -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rulez: []\n", ["rules.yaml:1", "unknown key 'rulez'", "did you mean 'rules'"]),
        ("just text\n", ["top level must be a mapping"]),
        ("rules: {a: 1}\n", ["rules.yaml:1", "rules: must be a list"]),
        ("- 42\n", ["rule 1", "must be a mapping"]),
        (
            "- name: x\n  mach: {}\n  reply: hi\n",
            ["rules.yaml:2", 'rule 1 "x"', "unknown key 'mach'", "did you mean 'match'"],
        ),
        (
            "- reply: a\n- match: {last_user_mesage: hi}\n  reply: b\n",
            ["rules.yaml:2", "rule 2", "match.last_user_mesage", "'last_user_message'"],
        ),
        ("- match: {flavour: x}\n  reply: b\n", ["unknown key 'flavour'", "known keys: host"]),
        ("- match: {host: api.openai.com}\n", ["rule 1", "no action"]),
        ("- {reply: a, error: 500}\n", ["rule 1", "reply or an error, not both"]),
        ("- reply: {}\n", ["reply", "give text or tool_calls"]),
        ("- reply: {text: 5}\n", ["reply.text", "must be a string", "quote it"]),
        ("- reply: {txt: a}\n", ["reply", "unknown key 'txt'", "did you mean 'text'"]),
        ("- reply: {tool_calls: [{arguments: {}}]}\n", ["reply.tool_calls[0]", "needs a name"]),
        ("- reply: {tool_calls: {name: f}}\n", ["reply.tool_calls", "must be a list"]),
        (
            "- reply: {tool_calls: [{name: f, arguments: [1]}]}\n",
            ["reply.tool_calls[0].arguments", "must be a mapping"],
        ),
        (
            "- reply:\n    tool_calls:\n      - name: f\n"
            "        arguments: {at: 2026-01-02 10:00:00}\n",
            ["rules.yaml:4", "arguments.at", "YAML timestamp", "quote it"],
        ),
        ("- error: 200\n", ["error.status", "400 to 599", "not 200"]),
        ("- error: 302\n", ["error.status", "not 302"]),
        ("- error: {status: 99}\n", ["error.status", "not 99"]),
        ("- error: {status: 600}\n", ["error.status", "not 600"]),
        ("- error: {status: '429'}\n", ["error.status", "not '429'"]),
        ("- error: {message: x}\n", ["error", "needs a status"]),
        ("- error: {status: 429, retry_after: -1}\n", ["error.retry_after", ">= 0"]),
        (
            "- error: {status: 429, retry_after: 1, retry_after_ms: 5}\n",
            ["error.retry_after_ms", "not both"],
        ),
        ("- error: {status: 500, headers: [a]}\n", ["error.headers", "must be a mapping"]),
        (
            "- error: {status: 500, headers: {content-length: 5}}\n",
            ["error.headers.content-length", "frames the body"],
        ),
        (
            '- error: {status: 500, headers: {x-a: "a\\nb"}}\n',
            ["error.headers.x-a", "line break"],
        ),
        ("- error: {status: 500, headers: {'a b': c}}\n", ["not a header name"]),
        ("- latency: {}\n", ["latency", "give ttfb or chunk"]),
        ("- latency: {ttfb_ms: fast}\n", ["latency.ttfb_ms", "must be a number", "'fast'"]),
        ("- latency: {ttfb: .inf}\n", ["latency.ttfb", "finite"]),
        ("- latency: {ttfb: true}\n", ["latency.ttfb", "must be a number"]),
        ("- latency: {ttfb: 1, ttfb_ms: 1}\n", ["latency.ttfb_ms", "not both"]),
        ("- fault: {}\n", ["fault", "give cut_after or stall_after"]),
        ("- fault: {cut_after: 1, stall_after: 2}\n", ["fault", "not both"]),
        ("- fault: {stall: 1}\n", ["fault"]),
        ("- fault: {cut_after: 1, stall_ms: 5}\n", ["fault", "needs stall_after"]),
        ("- fault: {cut_after: -1}\n", ["fault.cut_after", ">= 0"]),
        ("- fault: {cut_after: 1.5}\n", ["fault.cut_after", "whole number"]),
        ("- {reply: a, times: -2}\n", ["rule 1", "times", ">= 0"]),
        ("- {reply: a, times: yes}\n", ["times", "whole number", "'yes'"]),
        ("- {reply: a, times: true}\n", ["times", "not true"]),
        ("- {reply: a, name: ''}\n", ["name", "must not be empty"]),
        ("- {reply: a, match: {tool_result: yes}}\n", ["match.tool_result", "true or false"]),
        ("- {reply: a, match: {host: ''}}\n", ["match.host", "must not be empty"]),
        ("- {reply: a, match: {method: 'GE T'}}\n", ["match.method", "not an HTTP method"]),
        ("- {reply: a, match: {last_user_message: {}}}\n", ["give at least one of"]),
        ("- {reply: a, match: {last_user_message: [a]}}\n", ["last_user_message", "a list"]),
        (
            "- {reply: a, match: {last_user_message: {regex: '(unclosed'}}}\n",
            ["match.last_user_message.regex", "not a valid regular expression"],
        ),
        (
            "- {reply: a, match: {last_user_message: {contains: ''}}}\n",
            ["last_user_message.contains", "must not be empty"],
        ),
        ("settings: {synth: {}}\n", ["settings", "unknown key 'synth'", "'synthetic'"]),
        ("settings: {synthetic: {ttfb_ms: -5}}\n", ["settings", "synthetic.ttfb_ms", ">= 0"]),
        ("settings: {redact: 'x'}\n", ["settings", "redact", "must be a list"]),
        ("settings: {redact: ['a*']}\n", ["settings", "redact[0]", "matches the empty string"]),
        ("settings: {verify_allow: ['(']}\n", ["verify_allow[0]", "regular expression"]),
        ("settings: {replay_incomplete: 1}\n", ["replay_incomplete", "true or false"]),
        ("settings: {normalize: [{replace: x}]}\n", ["normalize[0]", "needs a pattern"]),
        ("settings: [1]\n", ["settings", "must be a mapping"]),
        ("a: [\n", ["rules.yaml:2:1", "not valid YAML"]),
        ("- reply: a\n  reply: b\n", ["rules.yaml:2", "not valid YAML", "duplicate key"]),
    ],
)
def test_invalid_files_name_the_place(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = error_of(tmp_path, text)
    assert message.startswith(str(tmp_path / "rules.yaml"))
    for part in expected:
        assert part in message, (part, message)


def test_lines_point_into_a_long_file(tmp_path: Path) -> None:
    text = "rules:\n" + "  - reply: ok\n" * 9 + "  - match:\n      path: /x\n      hots: a\n"
    message = error_of(tmp_path, text)
    assert ":13: rule 10: match.hots: unknown key 'hots'; did you mean 'host'?" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"rules": [', ["rules.json:1:12", "not valid JSON"]),
        ('{"rules": [], "rules": []}', ["not valid JSON", "duplicate key 'rules'"]),
        ('{"rules": [{"reply": "a", "times": 1.5}]}', ["rule 1", "times", "whole number"]),
        ("[" * 100_000, ["rules.json", "not valid JSON"]),
    ],
)
def test_invalid_json(tmp_path: Path, text: str, expected: list[str]) -> None:
    message = error_of(tmp_path, text, "rules.json")
    for part in expected:
        assert part in message, (part, message)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"missing\.yaml: cannot read the rules file"):
        load_rules(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"- reply: caf\xe9\n")
    with pytest.raises(RulesError, match=r"latin1\.yaml: not UTF-8"):
        load_rules(bad)


def test_yaml_python_tags_construct_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    message = error_of(tmp_path, f"- reply: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "reply: must be a mapping" in message
    assert not marker.exists()


# -- matching -------------------------------------------------------------------------------


def one(match: Match) -> RuleSet:
    return RuleSet([Rule("r", match, reply=Reply("canned"))])


def hits(match: Match, request: Request, namespace: str = "default") -> bool:
    return one(match).evaluate(request, namespace).answer is not None


def test_no_match_fields_match_everything() -> None:
    assert hits(Match(), req(method="GET", path="/v1/models"))


def test_host_glob_is_case_insensitive_and_may_name_the_port() -> None:
    assert hits(Match(host="API.OpenAI.com"), req(host="api.openai.com"))
    assert hits(Match(host="*.openai.azure.com"), req(host="res.openai.azure.com"))
    assert not hits(Match(host="api.openai.com"), req(host="api.anthropic.com"))
    assert hits(Match(host="localhost"), req(host="localhost", port=11434))
    assert hits(Match(host="localhost:11434"), req(host="localhost", port=11434))
    assert not hits(Match(host="localhost:11434"), req(host="localhost", port=8000))


def test_path_glob() -> None:
    assert hits(Match(path="*/chat/completions"), req(path="/openai/v1/chat/completions"))
    assert hits(Match(path="/v1/*"), req(path="/v1/chat/completions"))  # * crosses /
    assert not hits(Match(path="*/messages"), req(path=CHAT))
    assert not hits(Match(path="/V1/*"), req(path=CHAT))  # case-sensitive


def test_method() -> None:
    assert hits(Match(method="GET"), req(method="get", path="/v1/models"))
    assert not hits(Match(method="GET"), req())


def test_model_from_body_path_and_deployment() -> None:
    assert hits(Match(model="gpt-4o*"), chat("hi", model="gpt-4o-mini"))
    assert hits(Match(model="GPT-4O*"), chat("hi", model="gpt-4o-mini"))
    assert not hits(Match(model="claude-*"), chat("hi"))
    gemini = req(
        {"contents": [{"parts": [{"text": "hi"}]}]},
        host="generativelanguage.googleapis.com",
        path="/v1beta/models/gemini-2.5-flash:generateContent",
    )
    assert hits(Match(model="gemini-*"), gemini)
    azure = req(
        {"messages": []}, host="r.openai.azure.com", path="/openai/deployments/d1/chat/completions"
    )
    assert hits(Match(model="d1"), azure)
    assert not hits(Match(model="*"), req(method="GET", path="/v1/models"))  # no model at all


def test_last_user_message() -> None:
    assert hits(Match(last_user=TextMatch(exact="ping")), chat("ping"))
    assert not hits(Match(last_user=TextMatch(exact="ping")), chat("ping!"))
    assert hits(Match(last_user=TextMatch(contains="weather")), chat("the weather, please"))
    assert not hits(Match(last_user=TextMatch(contains="Weather")), chat("the weather"))
    regex = TextMatch(regex=re.compile(r"(?i)^flaky"))
    assert hits(Match(last_user=regex), chat("Flaky test"))
    assert not hits(Match(last_user=regex), chat("not flaky"))
    assert not hits(Match(last_user=TextMatch(contains="x")), req(method="GET", path="/v1/models"))


def test_text_match_needs_every_part() -> None:
    both = TextMatch(contains="a", exact="abc")
    assert both.matches("abc") and not both.matches("a")
    assert not TextMatch().matches(None) and TextMatch().matches("")


def test_tool_result() -> None:
    question = chat("weather?")
    answered = req(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "w"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "sunny"},
            ],
        }
    )
    assert hits(Match(tool_result=True), answered) and not hits(Match(tool_result=True), question)
    assert hits(Match(tool_result=False), question) and not hits(Match(tool_result=False), answered)


def test_namespace_glob() -> None:
    assert hits(Match(namespace="suite-*"), chat("x"), "suite-a")
    assert not hits(Match(namespace="suite-*"), chat("x"), "default")


def test_non_json_and_hostile_bodies_match_nothing_that_needs_the_body() -> None:
    text_match = Match(last_user=TextMatch(contains="a"))
    for body in (b"not json", b"\xff\xfe", b"[" * 100_000, b"{" + b'"a":' * 10):
        request = Request("POST", "https", "h", 443, CHAT, (), (), body)
        assert not hits(text_match, request)
        assert not hits(Match(model="*"), request)
        assert hits(Match(tool_result=False), request)


# -- verdicts -------------------------------------------------------------------------------

PONG = Rule("pong", Match(last_user=TextMatch(exact="ping")), reply=Reply("pong"))
LIMIT = Rule("limit", Match(host="api.openai.com"), error=HttpError(429))
SLOW = Rule("slow", Match(), latency=Latency(ttfb=0.5, chunk=0.1))
SLOWER_CHUNKS = Rule("slower chunks", Match(path=CHAT), latency=Latency(chunk=0.3))


def test_no_rules_is_nothing() -> None:
    assert EMPTY.evaluate(chat("x"), "default") == NOTHING
    assert Verdict(None, None, None, ()) == NOTHING
    assert RuleSet([PONG]).evaluate(chat("other"), "default") is NOTHING


def test_first_answer_wins_and_later_answers_do_not_apply() -> None:
    verdict = RuleSet([PONG, LIMIT]).evaluate(chat("ping"), "default")
    assert verdict.answer is PONG and verdict.rules == ("pong",)
    verdict = RuleSet([LIMIT, PONG]).evaluate(chat("ping"), "default")
    assert verdict.answer is LIMIT and verdict.rules == ("limit",)


def test_modifiers_combine_field_by_field_later_overrides() -> None:
    verdict = RuleSet([SLOW, PONG, SLOWER_CHUNKS]).evaluate(chat("ping"), "default")
    assert verdict.answer is PONG
    assert verdict.latency == Latency(ttfb=0.5, chunk=0.3)
    assert verdict.rules == ("slow", "pong", "slower chunks")
    verdict = RuleSet([SLOWER_CHUNKS, SLOW]).evaluate(chat("ping"), "default")
    assert verdict.latency == Latency(ttfb=0.5, chunk=0.1) and verdict.answer is None


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ([Fault(cut_after=3), Fault(cut_after=1)], Fault(cut_after=1)),
        ([Fault(stall_after=2, stall=1.0), Fault(cut_after=5)], Fault(stall_after=2, stall=1.0)),
        ([Fault(stall_after=2, stall=1.0), Fault(cut_after=2)], Fault(cut_after=2)),
        ([Fault(stall_after=2), Fault(stall_after=2, stall=0.5)], Fault(stall_after=2, stall=0.5)),
    ],
)
def test_the_fault_that_acts_first_wins(faults: list[Fault], expected: Fault) -> None:
    rules = [Rule(f"f{i}", Match(), fault=f) for i, f in enumerate(faults)]
    assert RuleSet(rules).evaluate(chat("x"), "default").fault == expected


def test_an_answer_rule_with_a_modifier_still_modifies_when_shadowed() -> None:
    loud = Rule("loud", Match(), reply=Reply("x"), latency=Latency(ttfb=2.0))
    verdict = RuleSet([PONG, loud]).evaluate(chat("ping"), "default")
    assert verdict.answer is PONG and verdict.latency == Latency(ttfb=2.0)
    assert verdict.rules == ("pong", "loud")


def test_evaluation_is_deterministic() -> None:
    rs = RuleSet([SLOW, PONG, LIMIT, SLOWER_CHUNKS])
    assert rs.evaluate(chat("ping"), "default") == rs.evaluate(chat("ping"), "default")


# -- times ----------------------------------------------------------------------------------


def test_times_spends_a_rule() -> None:
    limited = Rule("twice", Match(), error=HttpError(429), times=2)
    rs = RuleSet([limited, PONG])
    answers = [rs.evaluate(chat("ping"), "default").answer for _ in range(4)]
    assert answers == [limited, limited, PONG, PONG]


def test_times_zero_never_applies() -> None:
    assert (
        RuleSet([Rule("off", Match(), reply=Reply("x"), times=0)]).evaluate(chat("x"), "default")
        is NOTHING
    )


def test_a_shadowed_answer_rule_is_not_counted() -> None:
    later = Rule("later", Match(), reply=Reply("later"), times=1)
    rs = RuleSet([PONG, later])
    assert rs.evaluate(chat("ping"), "default").answer is PONG
    assert rs.evaluate(chat("other"), "default").answer is later  # not spent while shadowed
    assert rs.evaluate(chat("other"), "default") is NOTHING


def test_times_counts_modifiers_too() -> None:
    rs = RuleSet([Rule("once slow", Match(), latency=Latency(ttfb=1.0), times=1)])
    assert rs.evaluate(chat("x"), "default").latency == Latency(ttfb=1.0)
    assert rs.evaluate(chat("x"), "default") is NOTHING


def test_times_is_exact_under_threads() -> None:
    rs = RuleSet([Rule("ten", Match(), error=HttpError(503), times=10), PONG])
    results: list[str | None] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(50):
            answer = rs.evaluate(chat("ping"), "default").answer
            with lock:
                results.append(answer.name if answer else None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ten") == 10 and results.count("pong") == 390


# -- performance sanity ---------------------------------------------------------------------


def test_no_json_parsing_unless_a_rule_needs_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> object:
        raise AssertionError("the body was parsed")

    big = chat("x" * 1_000_000)
    cheap = RuleSet([Rule("h", Match(host="*.anthropic.com", path="*/messages"), reply=Reply("x"))])
    monkeypatch.setattr(json, "loads", boom)
    assert EMPTY.evaluate(big, "default") is NOTHING
    assert cheap.evaluate(big, "default") is NOTHING
    # a host that does not match stops before the body is needed
    gated = RuleSet([Rule("g", Match(host="x.invalid", model="gpt-*"), reply=Reply("x"))])
    assert gated.evaluate(big, "default") is NOTHING
    # rules on host, path, method and namespace alone never need it
    by_path = RuleSet([Rule("p", Match(path=CHAT, method="POST"), latency=Latency(ttfb=1.0))])
    assert by_path.evaluate(big, "default").rules == ("p",)


def test_the_body_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = json.loads

    def counting(data: str | bytes, **kwargs: object) -> object:
        calls.append(1)
        return real(data)

    rs = RuleSet(
        [
            Rule("a", Match(model="gpt-*"), latency=Latency(ttfb=0.1)),
            Rule("b", Match(last_user=TextMatch(contains="x")), latency=Latency(chunk=0.1)),
            Rule("c", Match(tool_result=False), fault=Fault(cut_after=1)),
        ]
    )
    request = chat("x")
    monkeypatch.setattr(json, "loads", counting)
    assert rs.evaluate(request, "default").rules == ("a", "b", "c")
    assert len(calls) == 1


# -- reloading ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rewrite(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))


def test_reload_on_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "- {name: a, reply: a}\n")
    clock = FakeClock()
    rf = RulesFile(path, clock=clock, interval=0.5)
    first = rf.current()
    assert [r.name for r in first.rules] == ["a"]
    rewrite(path, "- {name: b, reply: b}\n- {name: c, reply: c}\n", 1_000)
    assert rf.current() is first  # not looked at before the interval has passed
    clock.now += 0.5
    with caplog.at_level(logging.INFO, logger="replay"):
        second = rf.current()
    assert [r.name for r in second.rules] == ["b", "c"]
    assert "reloaded" in caplog.text
    clock.now += 1
    assert rf.current() is second  # unchanged file: same rules, same counters


def test_reload_starts_times_afresh(tmp_path: Path) -> None:
    path = write(tmp_path, "- {name: once, reply: a, times: 1}\n")
    clock = FakeClock()
    rf = RulesFile(path, clock=clock)
    assert rf.current().evaluate(chat("x"), "default").answer is not None
    assert rf.current().evaluate(chat("x"), "default") is NOTHING
    rewrite(path, "- {name: once, reply: b, times: 1}\n", 2_000)
    clock.now += 1
    assert rf.current().evaluate(chat("x"), "default").answer is not None


def test_an_invalid_change_keeps_the_previous_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "- {name: good, reply: a}\n")
    clock = FakeClock()
    rf = RulesFile(path, clock=clock)
    good = rf.current()
    rewrite(path, "- {name: bad, reply: a, times: -1}\n", 3_000)
    clock.now += 1
    with caplog.at_level(logging.WARNING, logger="replay"):
        assert rf.current() is good
    assert "previous rules stay" in caplog.text and "times" in caplog.text
    caplog.clear()
    clock.now += 1
    with caplog.at_level(logging.WARNING, logger="replay"):
        assert rf.current() is good
    assert caplog.text == ""  # told once per change
    rewrite(path, "- {name: fixed, reply: a}\n", 3_001)
    clock.now += 1
    assert [r.name for r in rf.current().rules] == ["fixed"]


def test_a_deleted_file_keeps_the_rules_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "- {name: kept, reply: a}\n")
    clock = FakeClock()
    rf = RulesFile(path, clock=clock)
    kept = rf.current()
    path.unlink()
    with caplog.at_level(logging.WARNING, logger="replay"):
        for _ in range(3):
            clock.now += 1
            assert rf.current() is kept
    assert caplog.text.count("is gone") == 1
    rewrite(path, "- {name: back, reply: a}\n", 4_000)
    clock.now += 1
    assert [r.name for r in rf.current().rules] == ["back"]


def test_an_invalid_file_stops_startup(tmp_path: Path) -> None:
    path = write(tmp_path, "- {reply: a, error: 500}\n")
    with pytest.raises(RulesError, match="not both"):
        RulesFile(path)
    with pytest.raises(RulesError, match="cannot read"):
        RulesFile(tmp_path / "absent.yaml")


def test_current_is_safe_under_threads(tmp_path: Path) -> None:
    path = write(tmp_path, "- {name: a, reply: a}\n")
    clock = FakeClock()
    rf = RulesFile(path, clock=clock, interval=0.0)
    rewrite(path, "- {name: b, reply: b}\n", 5_000)
    seen: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            names = [r.name for r in rf.current().rules]
            with lock:
                seen.extend(names)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == {"b"} and len(seen) == 80


def test_unforeseen_yaml_errors_become_rules_errors_and_keep_the_previous_rules(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - match: {path: '/a'}\n    reply: {text: a}\n")
    now = [0.0]
    rf = RulesFile(path, clock=lambda: now[0], interval=0.5)
    path.write_text("rules:\n  - match: {path: 2026-13-45}\n    reply: {text: b}\n")
    with pytest.raises(RulesError, match=r"rules\.yaml"):
        load_rules(path)
    now[0] = 1.0
    assert [r.reply.text for r in rf.current().rules if r.reply] == ["a"]
    deep = "rules:\n  - match: {path: '/a'}\n    reply: {text: a}\n" + "x: " + "[" * 3000
    path.write_text(deep)
    with pytest.raises(RulesError):
        load_rules(path)
