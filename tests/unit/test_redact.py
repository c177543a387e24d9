"""replay.redact: secret lists, key-shaped strings, placeholders, redact()."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from replay.models import (
    Chunk,
    Interaction,
    Key,
    Provenance,
    RedactedInteraction,
    Request,
    ResponseHead,
)
from replay.redact import (
    KEY_PATTERNS,
    PLACEHOLDER,
    SECRET_HEADERS,
    SECRET_PARAMS,
    placeholder,
    redact,
    redact_form,
    redact_headers,
    redact_query,
    redact_request,
    scrub,
    scrub_body,
    scrub_text,
)

# Fake keys of realistic shape (not real credentials).
OPENAI_LEGACY = "sk-" + "Ab3dEf6hIj9kLm2nOp5q" + "T3BlbkFJ" + "Rs8tUv1wXy4zAb7cDe0f"
OPENAI_PROJ = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0_-kLmNoPqRsTuVwXyZ" * 4
OPENAI_SVCACCT = "sk-svcacct-" + "Q9w8E7r6T5y4U3i2O1p0AsDfGhJkLzXcVbNm" * 3
OPENAI_ADMIN = "sk-admin-" + "Zx9Cv8Bn7Mm6Ll5Kk4Jj3Hh2Gg1Ff0" * 2
ANTHROPIC = "sk-ant-api03-" + "aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV_wX-yZ" * 2 + "AA"
ANTHROPIC_ADMIN = "sk-ant-admin01-" + "Kq7Wm2Xr9Tz4Lp8Vn3Bc6Hd1Jf5Gs0" * 2
GOOGLE = "AIza" + "SyD-9tSrke72PouQMnMX7aq1zxYr5Kt2b8_"
AWS = "AKIAIOSFODNN7EXAMPLE"
AWS_SESSION = "ASIAY34FZKBOKMUTVV7A"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

KEYS = {
    OPENAI_LEGACY: "openai-key",
    OPENAI_PROJ: "openai-key",
    OPENAI_SVCACCT: "openai-key",
    OPENAI_ADMIN: "openai-key",
    ANTHROPIC: "anthropic-key",
    ANTHROPIC_ADMIN: "anthropic-key",
    GOOGLE: "google-key",
    AWS: "aws-key-id",
    AWS_SESSION: "aws-key-id",
}


def test_google_fixture_has_the_real_length() -> None:
    assert len(GOOGLE) == 39


# -- the lists -----------------------------------------------------------------------------


def test_secret_headers_hold_the_documented_names() -> None:
    required = {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
    }
    assert required <= SECRET_HEADERS
    assert all(name == name.lower() for name in SECRET_HEADERS)
    assert "x-goog-user-project" not in SECRET_HEADERS
    assert "anthropic-version" not in SECRET_HEADERS


def test_secret_params_hold_the_documented_names() -> None:
    required = {
        "key",
        "api_key",
        "api-key",
        "apikey",
        "access_token",
        "token",
        "client_secret",
        "password",
        "sig",
        "signature",
        "x-goog-api-key",
    }
    assert required <= SECRET_PARAMS
    assert all(name == name.lower() for name in SECRET_PARAMS)
    assert "api-version" not in SECRET_PARAMS
    assert "alt" not in SECRET_PARAMS


def test_docs_list_every_secret_header_param_and_kind() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "matching.md").read_text("utf-8")
    for name in sorted(SECRET_HEADERS | SECRET_PARAMS | set(KEY_PATTERNS)):
        assert f"`{name}`" in docs, name


def test_key_pattern_kinds() -> None:
    assert set(KEY_PATTERNS) == {
        "openai-key",
        "anthropic-key",
        "google-key",
        "aws-key-id",
        "bearer",
    }


# -- scrub ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "kind"), KEYS.items())
def test_scrub_replaces_each_kind_with_its_placeholder(key: str, kind: str) -> None:
    data = f"before {key} after".encode()
    assert scrub(data) == f"before <redacted:{kind}> after".encode()
    assert scrub_text(f"x={key}&y=1") == f"x=<redacted:{kind}>&y=1"


def test_anthropic_keys_are_not_classified_as_openai() -> None:
    assert scrub(ANTHROPIC.encode()) == b"<redacted:anthropic-key>"
    assert scrub(ANTHROPIC_ADMIN.encode()) == b"<redacted:anthropic-key>"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_scrub_bearer_tokens_keeps_the_scheme(scheme: str) -> None:
    data = f'{{"h": "Authorization: {scheme} {JWT}"}}'.encode()
    assert scrub(data) == f'{{"h": "Authorization: {scheme} <redacted:bearer>"}}'.encode()


def test_scrub_bearer_tokens_in_form_encoding() -> None:
    assert scrub(f"h=Bearer+{JWT}&x=1".encode()) == b"h=Bearer+<redacted:bearer>&x=1"


def test_a_bearer_token_that_is_a_known_key_gets_that_kind() -> None:
    assert scrub(f"Bearer {OPENAI_PROJ}".encode()) == b"Bearer <redacted:openai-key>"
    assert scrub(f"bearer\t{ANTHROPIC}".encode()) == b"bearer\t<redacted:anthropic-key>"


@pytest.mark.parametrize(
    "prose",
    [
        "sk-",
        "the sk- prefix",
        "task-list",
        "a task-list-with-many-hyphenated-words-12345",
        "sk-abc123",  # too short
        "sk-learn-compatible-estimator-wrapper",  # no digit: prose, not a key
        "risk-assessment-for-2024-and-later-years",
        "ask-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "sk-ant-a1b2c3d4e5f6g7h8i",  # too short for anthropic, and never an openai key
        "AIzaShort123",
        "AKIAIOSFODNN7EXAMPLEX",  # 21 characters: not an access key id
        "XAKIAIOSFODNN7EXAMPLE",
        "akiaiosfodnn7example",
        "Bearer token",
        "the bearer of bad news",
        "Bearer short-token-123",
        "Bearer: " + JWT,  # not the `Bearer <token>` shape
        "<redacted>",
        "<redacted:openai-key> <redacted:anthropic-key> <redacted:google-key>",
        "Bearer <redacted:bearer>",
    ],
)
def test_scrub_leaves_prose_alone(prose: str) -> None:
    assert scrub(prose.encode()) == prose.encode()
    assert scrub_text(prose) == prose


def test_keys_right_after_json_or_percent_escapes_are_found() -> None:
    document = json.dumps({"text": f"line one\n{OPENAI_PROJ}\t{AWS}\u00a0{GOOGLE}"})
    assert "\\n" + OPENAI_PROJ in document  # the raw JSON text glues the key to `\n`
    assert json.loads(scrub(document.encode())) == {
        "text": "line one\n<redacted:openai-key>\t<redacted:aws-key-id>\u00a0<redacted:google-key>"
    }
    assert scrub(f"auth=Bearer%20{JWT}&k=%3D{ANTHROPIC}".encode()) == (
        b"auth=Bearer%20<redacted:bearer>&k=%3D<redacted:anthropic-key>"
    )


def test_keys_glued_to_a_word_are_not_keys() -> None:
    """The start rule that keeps "task-…" out also keeps "xsk-…" out (documented)."""
    for glued in (f"x{OPENAI_PROJ}", f"ask-ant-api03-{'a1' * 20}"):
        assert scrub(glued.encode()) == glued.encode()


IDEMPOTENCE_CORPUS = [
    f"{OPENAI_PROJ}{GOOGLE}",
    f"{GOOGLE}{OPENAI_PROJ}",
    f"{GOOGLE}-{AWS}",
    f"{AWS}_{OPENAI_LEGACY}",
    f"sk-aaaaaaaaaaaaaaaaaaaaaaaaa-{GOOGLE}",
    "sk-aaaaaaaaaaaaaaaaaaaaaaaaa-AIza" + "B" * 35,
    f"Bearer {JWT}{ANTHROPIC}",
    f"Bearer Bearer {JWT}",
    f"{ANTHROPIC}.{OPENAI_ADMIN}.{AWS_SESSION}.Bearer {JWT}",
    f'{{"a":"{OPENAI_LEGACY}","b":["{GOOGLE}","Bearer {OPENAI_SVCACCT}"]}}',
    f"key={GOOGLE}&other={AWS}x",
    f"AIzax-{AWS}",
    f"\\n{OPENAI_LEGACY}\\u00e9{AWS}%20{GOOGLE}",
    f"\\u00e9{OPENAI_LEGACY}{AWS}%2{GOOGLE}",
]


@pytest.mark.parametrize("text", IDEMPOTENCE_CORPUS)
def test_scrub_is_idempotent_and_leaves_nothing_to_find(text: str) -> None:
    once = scrub(text.encode())
    assert scrub(once) == once  # nothing key-shaped is left to replace
    assert scrub_text(text).encode() == once


def test_fast_scan_finds_exactly_what_the_full_pattern_finds() -> None:
    from replay import redact as module

    for text in [*IDEMPOTENCE_CORPUS, " ".join(KEYS), "bEaReR " + JWT, "sk-sk-sk-" + "1" * 30]:
        data = text.encode()
        slow = [m.span() for m in module._KEYS_BYTES.finditer(data)]
        assert [m.span() for m in module._matches(data)] == slow
        assert slow


def test_placeholders_are_json_safe() -> None:
    document = json.dumps({"k": OPENAI_PROJ, "nested": [f"Bearer {JWT}", GOOGLE]})
    scrubbed = scrub(document.encode())
    assert json.loads(scrubbed) == {
        "k": "<redacted:openai-key>",
        "nested": ["Bearer <redacted:bearer>", "<redacted:google-key>"],
    }
    for kind in KEY_PATTERNS:
        assert not set(placeholder(kind)) & set('"\\\n\r\t&=%+ ')
    assert not set(PLACEHOLDER) & set('"\\\n\r\t&=%+ ')


def test_scrub_works_on_binary_and_non_utf8_bytes() -> None:
    data = b"\xff\xfe\x00" + AWS.encode() + b"\x00\x80"
    assert scrub(data) == b"\xff\xfe\x00<redacted:aws-key-id>\x00\x80"


# -- headers, query, forms -----------------------------------------------------------------


def test_redact_headers_replaces_values_and_keeps_names_order_and_case() -> None:
    headers = (
        ("Authorization", f"Bearer {OPENAI_PROJ}"),
        ("Content-Type", "application/json"),
        ("X-Api-Key", ANTHROPIC),
        ("anthropic-version", "2023-06-01"),
        ("Cookie", "session=abc"),
        ("X-Custom-Thing", f"uses {GOOGLE}"),
        ("x-goog-user-project", "my-project"),
    )
    assert redact_headers(headers) == (
        ("Authorization", "<redacted>"),
        ("Content-Type", "application/json"),
        ("X-Api-Key", "<redacted>"),
        ("anthropic-version", "2023-06-01"),
        ("Cookie", "<redacted>"),
        ("X-Custom-Thing", "uses <redacted:google-key>"),
        ("x-goog-user-project", "my-project"),
    )


def test_redact_query_keeps_the_parameter_and_api_version() -> None:
    query = (
        ("api-version", "2024-06-01"),
        ("KEY", "abc"),
        ("alt", "sse"),
        ("Api_Key", "x"),
        ("q", f"with {AWS}"),
    )
    assert redact_query(query) == (
        ("api-version", "2024-06-01"),
        ("KEY", "<redacted>"),
        ("alt", "sse"),
        ("Api_Key", "<redacted>"),
        ("q", "with <redacted:aws-key-id>"),
    )


def test_redact_form_rewrites_secret_fields_only() -> None:
    body = b"grant_type=refresh_token&client_secret=s3cr3t&refresh_token=1%2F%2Fabc&scope=a+b&x"
    assert redact_form(body) == (
        b"grant_type=refresh_token&client_secret=<redacted>&refresh_token=<redacted>&scope=a+b&x"
    )
    assert redact_form(b"Client%5FSecret=zzz") == b"Client%5FSecret=<redacted>"


def test_scrub_body_redacts_form_fields_only_in_form_bodies() -> None:
    form = b"password=hunter2&user=me"
    assert scrub_body(form, "application/x-www-form-urlencoded; charset=utf-8") == (
        b"password=<redacted>&user=me"
    )
    assert scrub_body(form, "text/plain") == form
    assert scrub_body(form, None) == form
    once = scrub_body(form + f"&k={AWS}".encode(), "application/x-www-form-urlencoded")
    assert once == b"password=<redacted>&user=me&k=<redacted:aws-key-id>"
    assert scrub_body(once, "application/x-www-form-urlencoded") == once


# -- redact(interaction) -------------------------------------------------------------------


def make_interaction(request: Request, chunks: tuple[Chunk, ...] = ()) -> Interaction:
    return Interaction(
        key=Key("default", "f" * 64, 0),
        fingerprint_version=1,
        ignore=("user",),
        request=request,
        response=ResponseHead(
            200,
            "OK",
            "HTTP/1.1",
            (
                ("Set-Cookie", "__cf_bm=abc; path=/"),
                ("openai-organization", "org-123"),
                ("Content-Type", "application/json"),
                ("x-request-id", "req_1"),
            ),
        ),
        ttfb=0.25,
        chunks=chunks or (Chunk(0.0, b'{"ok": true}'),),
        complete=True,
        provenance=Provenance(
            "2026-01-01T00:00:00Z", "openai", "gpt-4o", f"my-app/1.0 {OPENAI_LEGACY}", 200, "0.1.0"
        ),
    )


def openai_request(body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> Request:
    return Request(
        "POST",
        "https",
        "api.openai.com",
        443,
        "/v1/chat/completions",
        (("api-version", "2024-06-01"), ("api_key", "plain-secret")),
        (
            ("Authorization", f"Bearer {OPENAI_PROJ}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *extra,
        ),
        body,
    )


def test_redact_cleans_request_and_response_headers() -> None:
    body = json.dumps({"model": "gpt-4o", "note": f"my key is {OPENAI_PROJ}"}).encode()
    original = make_interaction(openai_request(body))
    redacted = redact(original)
    assert isinstance(redacted, RedactedInteraction)
    request = redacted.interaction.request
    assert request.header("authorization") == "<redacted>"
    assert request.query == (("api-version", "2024-06-01"), ("api_key", "<redacted>"))
    assert json.loads(request.body) == {
        "model": "gpt-4o",
        "note": "my key is <redacted:openai-key>",
    }
    assert request.header("content-length") == str(len(request.body))
    response = redacted.interaction.response
    assert response.header("set-cookie") == "<redacted>"
    assert response.header("openai-organization") == "<redacted>"
    assert response.header("x-request-id") == "req_1"
    assert redacted.interaction.provenance.user_agent == "my-app/1.0 <redacted:openai-key>"


def test_redact_keeps_response_chunks_byte_exact_and_other_fields() -> None:
    chunks = (Chunk(0.0, b'data: {"k": "' + OPENAI_PROJ.encode()), Chunk(0.5, b'"}\n\n'))
    original = make_interaction(openai_request(b"{}"), chunks)
    redacted = redact(original).interaction
    assert redacted.chunks == chunks
    assert OPENAI_PROJ.encode() in redacted.body  # never rewritten
    for field in ("key", "fingerprint_version", "ignore", "ttfb", "complete"):
        assert getattr(redacted, field) == getattr(original, field)
    assert redacted.response.status == 200


def test_redact_decodes_a_content_encoded_body_before_scrubbing() -> None:
    plain = json.dumps({"k": GOOGLE}).encode()
    encoded = gzip.compress(plain)
    request = openai_request(encoded, (("Content-Encoding", "gzip"),))
    stored = redact_request(request)
    assert stored.body == b'{"k": "<redacted:google-key>"}'
    assert stored.header("content-encoding") is None
    assert stored.header("content-length") is None


def test_redact_scrubs_the_path() -> None:
    request = Request("GET", "https", "h", 443, f"/v1/keys/{OPENAI_PROJ}", (), (), b"")
    assert redact_request(request).path == "/v1/keys/<redacted:openai-key>"


def test_redact_is_idempotent() -> None:
    body = json.dumps({"a": ANTHROPIC}).encode()
    once = redact(make_interaction(openai_request(body))).interaction
    twice = redact(once).interaction
    assert twice == once


def test_redact_leaves_clean_interactions_unchanged() -> None:
    request = Request(
        "GET",
        "https",
        "api.openai.com",
        443,
        "/v1/models",
        (("limit", "5"),),
        (("Accept", "application/json"),),
        b"",
    )
    interaction = make_interaction(request)
    assert redact(interaction).interaction.request == request


def test_redacted_url_scrubs_path_and_secret_params() -> None:
    from replay.redact import redacted_url

    key = "sk-proj-Abc0123456789abcdefghijklmnop"
    req = Request(
        "GET", "https", "h", 443, f"/v1/keys/{key}", (("key", "AIzaX"), ("a", "b")), (), b""
    )
    url = redacted_url(req)
    assert key not in url and "AIzaX" not in url and "a=b" in url


def test_an_encoded_body_that_cannot_be_decoded_is_not_stored() -> None:
    import gzip as gz

    from replay.redact import UNDECODABLE_BODY, redact_request

    secret = b'{"k": "sk-ant-api03-Secret0123456789abcdefghij"}'
    broken = gz.compress(secret)[:-6]  # truncated: cannot be decoded
    req = Request(
        "POST",
        "https",
        "h",
        443,
        "/v1/x",
        (),
        (("content-encoding", "gzip"), ("content-type", "application/json")),
        broken,
    )
    assert redact_request(req).body == UNDECODABLE_BODY


def test_user_patterns_redact_the_stored_request_and_response_headers() -> None:
    import re

    from replay.redact import USER_PLACEHOLDER, redact

    patterns = (re.compile(r"cust-\d+"), re.compile(r"[\w.]+@example\.com"))
    body = json.dumps({"messages": [{"role": "user", "content": "cust-42 is a@example.com"}]})
    request = Request(
        "POST",
        "https",
        "api.openai.com",
        443,
        "/v1/users/cust-7/chat",
        (("who", "cust-9"),),
        (("x-customer", "cust-1"), ("content-type", "application/json")),
        body.encode(),
    )
    interaction = Interaction(
        key=Key("default", "f" * 64, 0),
        fingerprint_version=1,
        ignore=(),
        request=request,
        response=ResponseHead(200, "OK", "HTTP/1.1", (("x-echo", "cust-5"),)),
        ttfb=0.0,
        chunks=(Chunk(0.0, b'{"echo": "cust-42"}'),),
        complete=True,
        provenance=Provenance("t", "openai", None, None, 200, "0"),
    )
    stored = redact(interaction, patterns).interaction
    text = repr(stored.request) + repr(stored.response)
    assert "cust-" not in text and "example.com" not in text
    assert stored.request.path == f"/v1/users/{USER_PLACEHOLDER}/chat"
    assert json.loads(stored.request.body)["messages"][0]["content"] == (
        f"{USER_PLACEHOLDER} is {USER_PLACEHOLDER}"
    )
    assert stored.chunks == interaction.chunks  # response bodies stay byte-exact
    assert redact(interaction).interaction.request.path == "/v1/users/cust-7/chat"
