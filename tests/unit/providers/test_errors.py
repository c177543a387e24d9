"""replay.providers.errors: error bodies per provider and status, retry and request-id
headers, the miss message (key, nearest recording, record command), and that the real SDKs
raise the right exception with the right fields for them."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import httpx2
import ollama
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from replay.models import Key, Request
from replay.providers.base import Answer
from replay.providers.errors import (
    MISS_CODE,
    NearMiss,
    bad_request_answer,
    error_answer,
    miss_answer,
    record_command,
    retry_headers,
)
from replay.providers.router import resolve

FP = "3f2a9c1b0d4e" + "7" * 52
KEY = Key("default", FP, 2)


def miss(
    req: Request,
    key: Key,
    mode: str,
    near: NearMiss | None = None,
    provider: str | None = None,
    *,
    unknown_endpoint: bool = False,
) -> Answer:
    """A miss in the shape `router.resolve` gives the request (or `provider`)."""
    shape = provider or resolve(req).provider
    return miss_answer(key, mode, near, shape, unknown_endpoint=unknown_endpoint)


def body(answer: Answer) -> Any:
    return json.loads(answer.body)


def header(answer: Answer, name: str) -> str | None:
    values = [v for k, v in answer.headers if k.lower() == name]
    assert len(values) <= 1, (name, answer.headers)
    return values[0] if values else None


def request(
    host: str = "api.openai.com",
    path: str = "/v1/chat/completions",
    port: int = 443,
    scheme: str = "https",
) -> Request:
    return Request("POST", scheme, host, port, path, (), (), b"{}")


# --- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, "invalid_request_error", None),
        (401, "invalid_request_error", "invalid_api_key"),
        (403, "invalid_request_error", None),
        (404, "invalid_request_error", "not_found"),
        (409, "invalid_request_error", "conflict"),
        (422, "invalid_request_error", None),
        (429, "requests", "rate_limit_exceeded"),
        (418, "invalid_request_error", None),
        (500, "server_error", None),
        (503, "server_error", None),
        (529, "server_error", None),
    ],
)
def test_openai_shape_per_status(status: int, kind: str, code: str | None) -> None:
    answer = error_answer("openai", status, "boom")
    assert answer.status == status and not answer.stream
    assert header(answer, "content-type") == "application/json"
    assert body(answer) == {"error": {"message": "boom", "type": kind, "param": None, "code": code}}
    request_id = header(answer, "x-request-id")
    assert request_id is not None and request_id.startswith("req_") and len(request_id) == 36


def test_openai_code_is_overridable_and_quota_has_its_own_type() -> None:
    assert body(error_answer("openai", 404, "m", code="model_not_found"))["error"]["code"] == (
        "model_not_found"
    )
    quota = body(error_answer("openai", 429, "m", code="insufficient_quota"))["error"]
    assert quota["type"] == "insufficient_quota" and quota["code"] == "insufficient_quota"


@pytest.mark.parametrize("provider", ["openai-compatible", "api.example.com", "openai"])
def test_unknown_and_compatible_providers_take_the_openai_shape(provider: str) -> None:
    assert set(body(error_answer(provider, 400, "m"))["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }


@pytest.mark.parametrize("status", [400, 404, 429, 500])
def test_azure_code_is_the_status_as_a_string(status: int) -> None:
    error = body(error_answer("azure", status, "slow down"))["error"]
    assert error == {"code": str(status), "message": "slow down", "type": None, "param": None}
    assert body(error_answer("azure", 404, "m", code="DeploymentNotFound"))["error"]["code"] == (
        "DeploymentNotFound"
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
@pytest.mark.parametrize("provider", ["anthropic", "anthropic-compatible"])
def test_anthropic_shape_per_status(provider: str, status: int, kind: str) -> None:
    answer = error_answer(provider, status, "nope")
    data = body(answer)
    assert data["type"] == "error"
    assert data["error"] == {"type": kind, "message": "nope"}
    assert data["request_id"].startswith("req_011C") and len(data["request_id"]) == 28
    assert header(answer, "request-id") == data["request_id"]
    assert header(answer, "x-request-id") is None


def test_anthropic_code_goes_to_details() -> None:
    data = body(error_answer("anthropic", 429, "cap", code="enforced_spend_limit_reached"))
    assert data["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (412, "FAILED_PRECONDITION"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (502, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
def test_gemini_shape_per_status(status: int, name: str) -> None:
    answer = error_answer("gemini", status, "quota")
    assert header(answer, "content-type") == "application/json; charset=UTF-8"
    assert body(answer) == {"error": {"code": status, "message": "quota", "status": name}}


def test_gemini_retry_info_and_error_info_details() -> None:
    answer = error_answer("gemini", 429, "quota", code="API_KEY_INVALID", retry_after=7)
    details = body(answer)["error"]["details"]
    assert details == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
    ]
    fractional = body(error_answer("gemini", 503, "m", retry_after=0.005))["error"]["details"]
    assert fractional[0]["retryDelay"] == "0.005s"
    assert header(answer, "retry-after") == "7"


def test_ollama_shape_is_a_bare_message() -> None:
    answer = error_answer("ollama", 404, 'model "llama3" not found', code="ignored")
    assert body(answer) == {"error": 'model "llama3" not found'}


def test_extra_headers_and_explicit_request_id() -> None:
    answer = error_answer("openai", 500, "m", headers=(("x-should-retry", "false"),))
    assert header(answer, "x-should-retry") == "false"
    mine = error_answer("anthropic", 500, "m", request_id="req_011Cmine")
    assert header(mine, "request-id") == "req_011Cmine" and body(mine)["request_id"] == (
        "req_011Cmine"
    )


@pytest.mark.parametrize("status", [200, 302, 399, 600])
def test_only_error_statuses(status: int) -> None:
    with pytest.raises(ValueError, match="status"):
        error_answer("openai", status, "m")


def test_same_input_same_bytes_and_different_messages_different_ids() -> None:
    for provider in ("openai", "azure", "anthropic", "gemini", "ollama"):
        a = error_answer(provider, 429, "m", retry_after=1.5)
        assert a == error_answer(provider, 429, "m", retry_after=1.5)
    first = header(error_answer("openai", 500, "one"), "x-request-id")
    assert first != header(error_answer("openai", 500, "two"), "x-request-id")


# --- retry headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "after", "after_ms"),
    [
        (0.005, "1", "5"),
        (0.0015, "1", "1.5"),
        (1, "1", "1000"),
        (2.5, "3", "2500"),
        (0, "0", "1"),
        (1e-9, "1", "1"),
        (120, "120", "120000"),
    ],
)
def test_retry_headers(seconds: float, after: str, after_ms: str) -> None:
    assert retry_headers(seconds) == (("retry-after", after), ("retry-after-ms", after_ms))
    answer = error_answer("anthropic", 529, "busy", retry_after=seconds)
    assert header(answer, "retry-after") == after and header(answer, "retry-after-ms") == after_ms


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf")])
def test_retry_after_must_be_a_finite_non_negative_delay(seconds: float) -> None:
    with pytest.raises(ValueError, match="retry_after"):
        retry_headers(seconds)


def test_no_retry_headers_unless_asked() -> None:
    assert header(error_answer("openai", 429, "m"), "retry-after") is None
    assert header(error_answer("openai", 429, "m"), "retry-after-ms") is None


# --- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("openai", ("error", "type")),
        ("anthropic", ("error", "type")),
        ("gemini", ("error", "status")),
    ],
)
def test_bad_request_answer_is_a_400_in_shape(provider: str, path: tuple[str, str]) -> None:
    answer = bad_request_answer(provider, "the request body must be a JSON object")
    data = body(answer)
    assert answer.status == 400
    assert data[path[0]][path[1]] in ("invalid_request_error", "INVALID_ARGUMENT")
    assert "the request body must be a JSON object" in json.dumps(data)
    assert body(bad_request_answer("ollama", "bad"))["error"].endswith("bad")


# --- misses -------------------------------------------------------------------------------

NEAR = NearMiss(
    fingerprint="9" * 64,
    occurrence=0,
    method="POST",
    url="https://api.openai.com/v1/chat/completions",
    field="body.json.messages.0.content",
)


def test_miss_names_the_key_and_the_record_command() -> None:
    answer = miss(request(), KEY, "replay")
    error = body(answer)["error"]
    assert answer.status == 404 and error["code"] == MISS_CODE
    message = error["message"]
    assert "no cassette matched" in message
    assert FP in message and "'default'" in message and "occurrence 2" in message
    assert "mode replay" in message
    assert "mitmdump --listen-host 127.0.0.1 -s addons/replay.py --set replay_mode=auto" in message
    assert "replay_cassette" not in message and "Nearest" not in message


def test_miss_in_a_named_namespace_records_into_it() -> None:
    message = body(miss(request(), Key("suite one", FP, 0), "replay"))["error"]["message"]
    assert "'suite one'" in message
    assert "--set replay_cassette='suite one'" in message
    assert record_command("default") == record_command("")
    assert record_command("ci").endswith("--set replay_cassette=ci")


def test_miss_names_the_nearest_recording_and_its_first_difference() -> None:
    message = body(miss(request(), KEY, "replay", NEAR))["error"]["message"]
    assert "999999999999 occurrence 0" in message and "9" * 13 not in message
    assert "POST https://api.openai.com/v1/chat/completions" in message
    assert "first difference: body.json.messages.0.content" in message
    assert "--set replay_ignore=messages.0.content" in message


def test_a_nearest_outside_the_json_body_gets_no_ignore_hint() -> None:
    near = NearMiss("8" * 64, 1, "GET", "https://api.openai.com/v1/models", "path")
    message = body(miss(request(), KEY, "replay", near))["error"]["message"]
    assert "first difference: path." in message and "replay_ignore" not in message


def test_a_nearest_that_differs_in_nothing_says_why() -> None:
    near = NearMiss(FP, 0, "POST", "https://api.openai.com/v1/chat/completions", None)
    message = body(miss(request(), KEY, "replay", near))["error"]["message"]
    assert "differs in nothing" in message and "incomplete" in message


def test_unknown_endpoint_wording() -> None:
    answer = miss(request(path="/v1/fine_tuning/jobs"), KEY, "replay", unknown_endpoint=True)
    message = body(answer)["error"]["message"]
    assert "no cassette matched this request and no synthetic responder knows this endpoint" in (
        message
    )
    assert answer.status == 404 and FP in message


@pytest.mark.parametrize(
    ("req", "shape"),
    [
        (request(), "openai"),
        (request(host="api.anthropic.com", path="/v1/messages"), "anthropic"),
        (
            request(
                host="generativelanguage.googleapis.com",
                path="/v1beta/models/gemini-2.5-flash:generateContent",
            ),
            "gemini",
        ),
        (
            request(
                host="generativelanguage.googleapis.com", path="/v1beta/openai/chat/completions"
            ),
            "openai",
        ),
        (
            request(host="x.openai.azure.com", path="/openai/deployments/d/chat/completions"),
            "azure",
        ),
        (request(host="localhost", port=11434, scheme="http", path="/api/chat"), "ollama"),
        (
            request(host="localhost", port=11434, scheme="http", path="/v1/chat/completions"),
            "openai",
        ),
        (request(host="localhost", port=11434, scheme="http", path="/v1/messages"), "anthropic"),
        (request(host="llm.internal", path="/v1/messages"), "anthropic"),
    ],
)
def test_miss_takes_the_requests_shape(req: Request, shape: str) -> None:
    data = body(miss(req, KEY, "replay"))
    if shape == "openai":
        assert data["error"]["type"] == "invalid_request_error"
        assert data["error"]["code"] == MISS_CODE
    elif shape == "azure":
        assert data["error"]["code"] == MISS_CODE and data["error"]["type"] is None
    elif shape == "anthropic":
        assert data["type"] == "error" and data["error"]["type"] == "not_found_error"
    elif shape == "gemini":
        assert data["error"]["status"] == "NOT_FOUND" and data["error"]["code"] == 404
    else:
        assert isinstance(data["error"], str) and FP in data["error"]


def test_the_provider_is_resolved_once_from_the_route() -> None:
    ollama_v1 = request(host="localhost", port=11434, scheme="http", path="/v1/chat/completions")
    assert resolve(ollama_v1).provider == "openai"
    assert resolve(request(host="localhost", port=11434, path="/api/tags")).provider == "ollama"
    assert resolve(request()).provider == "openai"
    gemini_on_gateway = request(host="gw.example", path="/v1beta/models/g:generateContent")
    assert resolve(gemini_on_gateway).provider == "gemini"
    assert resolve(request(path="/v1/messages")).provider == "anthropic"
    azure = request(host="r.openai.azure.com", path="/openai/deployments/d/chat/completions")
    assert resolve(azure).provider == "azure"
    assert resolve(request(host="api.anthropic.com", path="/v1/unknown")).provider == "anthropic"


def test_miss_provider_overrides_the_request() -> None:
    data = body(miss(request(), KEY, "replay", provider="anthropic"))
    assert data["type"] == "error"


def test_miss_is_deterministic_and_its_request_id_follows_the_key() -> None:
    for req in (request(), request(host="api.anthropic.com", path="/v1/messages")):
        assert miss(req, KEY, "replay", NEAR) == miss(req, KEY, "replay", NEAR)
    one = miss(request(), KEY, "replay")
    other = miss(request(), KEY._replace(occurrence=3), "replay")
    assert header(one, "x-request-id") != header(other, "x-request-id")
    # the nearest recording changes the message, not the id
    assert header(one, "x-request-id") == header(
        miss(request(), KEY, "replay", NEAR), "x-request-id"
    )


def serve2(answers: list[Answer]) -> tuple[httpx2.Client, list[int]]:
    """An httpx2 client whose every request gets the next answer (the last repeats)."""
    calls: list[int] = []

    def handler(_: httpx2.Request) -> httpx2.Response:
        answer = answers[min(len(calls), len(answers) - 1)]
        calls.append(1)
        return httpx2.Response(answer.status, headers=list(answer.headers), content=answer.body)

    return httpx2.Client(transport=httpx2.MockTransport(handler)), calls


def serve(answer: Answer) -> httpx.MockTransport:
    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(answer.status, headers=list(answer.headers), content=answer.body)

    return httpx.MockTransport(handler)


def test_openai_sdk_retries_fast_on_retry_after_ms() -> None:
    answer = error_answer("openai", 429, "slow down", retry_after=0.001)
    http, calls = serve2([answer])
    client = openai.OpenAI(api_key="k", http_client=http, max_retries=2)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert len(calls) == 3
    assert time.monotonic() - started < 1.0  # the SDK's own backoff would take over 1.1 s
    assert info.value.code == "rate_limit_exceeded" and info.value.type == "requests"
    assert info.value.request_id == header(answer, "x-request-id")


def test_openai_sdk_reads_a_miss_as_not_found() -> None:
    answer = miss(request(), KEY, "replay", NEAR)
    http, _ = serve2([answer])
    client = openai.OpenAI(api_key="k", http_client=http, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.models.list()
    assert info.value.code == MISS_CODE and FP in info.value.message


def test_azure_sdk_keeps_the_string_code() -> None:
    http, _ = serve2([error_answer("azure", 429, "retry later")])
    client = openai.AzureOpenAI(
        api_key="k",
        api_version="2024-10-21",
        azure_endpoint="https://x.openai.azure.com",
        http_client=http,
        max_retries=0,
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="d", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "429"


def test_anthropic_sdk_maps_529_and_reads_the_request_id() -> None:
    answer = error_answer("anthropic", 529, "Overloaded", retry_after=0.001)
    http, calls = serve2([answer])
    client = anthropic.Anthropic(api_key="k", http_client=http, max_retries=1)
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert len(calls) == 2
    assert info.value.request_id == header(answer, "request-id")


def test_anthropic_sdk_reads_a_miss_as_not_found() -> None:
    req = request(host="api.anthropic.com", path="/v1/messages")
    http, _ = serve2([miss(req, KEY, "replay")])
    client = anthropic.Anthropic(api_key="k", http_client=http, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert FP in str(info.value)


def test_gemini_sdk_reads_the_error() -> None:
    answer = error_answer("gemini", 429, "quota", retry_after=2)
    options = types.HttpOptions(client_args={"transport": serve(answer)})
    client = genai.Client(api_key="k", http_options=options)
    with pytest.raises(genai_errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert info.value.message == "quota"


def test_ollama_sdk_reads_the_miss() -> None:
    req = request(host="localhost", port=11434, scheme="http", path="/api/chat")
    client = ollama.Client(host="http://localhost:11434", transport=serve(miss(req, KEY, "r")))
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="llama3", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 404 and FP in info.value.error
