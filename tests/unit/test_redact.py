"""replay.redact: secret lists, key-shaped strings, placeholders, redact(), scan()."""

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
    SecretFinding,
    placeholder,
    redact,
    redact_form,
    redact_headers,
    redact_query,
    redact_request,
    scan,
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
        "openrouter-key",
        "groq-key",
        "xai-key",
        "huggingface-token",
        "github-token",
        "slack-token",
        "google-key",
        "aws-key-id",
        "aws-secret-key",
        "jwt",
        "private-key",
        "bearer",
    }


# -- scrub ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "kind"), KEYS.items())
def test_scrub_replaces_each_kind_with_its_placeholder(key: str, kind: str) -> None:
    data = f"before {key} after".encode()
    assert scrub(data) == f"before <redacted:{kind}> after".encode()
    assert scrub_text(f"x={key}&y=1") == f"x=<redacted:{kind}>&y=1"


def test_anthropic_keys_are_not_classified_as_openai() -> None:
    assert [f.kind for f in scan(ANTHROPIC.encode())] == ["anthropic-key"]
    assert scrub(ANTHROPIC.encode()) == b"<redacted:anthropic-key>"


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
        "ask-ant-ap",
        "sk-ant-a1b2c3d4e5f6g7h8i",  # too short for anthropic, and never an openai key
        "AIzaShort123",
        "AKIAIOSFODNN7EXAMPLEX",  # 21 characters: not an access key id
        "XAKIAIOSFODNN7EXAMPLE",
        "akiaiosfodnn7example",
        "Bearer token",
        "the bearer of bad news",
        "Bearer short-token-123",
        "Bearer: short.token.here",  # not the `Bearer <token>` shape
        "<redacted>",
        "<redacted:openai-key> <redacted:anthropic-key> <redacted:google-key>",
        "Bearer <redacted:bearer>",
    ],
)
def test_scrub_leaves_prose_alone(prose: str) -> None:
    assert scrub(prose.encode()) == prose.encode()
    assert scan(prose.encode()) == []


def test_keys_right_after_json_or_percent_escapes_are_found() -> None:
    document = json.dumps({"text": f"line one\n{OPENAI_PROJ}\t{AWS}\u00a0{GOOGLE}"})
    assert "\\n" + OPENAI_PROJ in document  # the raw JSON text glues the key to `\n`
    assert json.loads(scrub(document.encode())) == {
        "text": "line one\n<redacted:openai-key>\t<redacted:aws-key-id>\u00a0<redacted:google-key>"
    }
    assert scrub(f"auth=Bearer%20{JWT}&k=%3D{ANTHROPIC}".encode()) == (
        b"auth=Bearer%20<redacted:bearer>&k=%3D<redacted:anthropic-key>"
    )


def test_keys_glued_to_a_word_are_not_keys_unless_their_prefix_is_distinctive() -> None:
    """The start rule keeps "task-…" out; "KEYsk-proj-…", "xsk-ant-…" are keys (documented)."""
    assert scan(f"task-{'a1' * 20}".encode()) == []
    assert scan(f"xsk-{'a1' * 20}".encode()) == []
    assert scrub(f"KEY{OPENAI_PROJ}".encode()) == b"KEY<redacted:openai-key>"
    assert scrub(f"ask-ant-api03-{'a1' * 20}".encode()) == b"a<redacted:anthropic-key>"


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
    assert scrub(once) == once
    assert scan(once) == []
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


# -- scan ----------------------------------------------------------------------------------


def test_scan_reports_kind_offset_length_and_a_masked_excerpt() -> None:
    data = f"a {OPENAI_PROJ} b Bearer {JWT} c {AWS}".encode()
    findings = scan(data)
    assert [f.kind for f in findings] == ["openai-key", "bearer", "aws-key-id"]
    for finding, secret in zip(findings, [OPENAI_PROJ, JWT, AWS], strict=True):
        assert finding.offset == data.index(secret.encode())
        assert finding.length == len(secret)
        assert secret not in finding.excerpt
        assert finding.excerpt.startswith(secret[:4])
        assert len(finding.excerpt) < len(secret)


def test_scan_excerpt_never_holds_the_secret_for_any_kind() -> None:
    for key in KEYS:
        (finding,) = scan(key.encode())
        assert isinstance(finding, SecretFinding)
        assert key not in finding.excerpt
        assert key[len(key) // 2 :] not in finding.excerpt


def test_scan_finds_nothing_in_scrubbed_data() -> None:
    data = " ".join([*KEYS, f"Bearer {JWT}"]).encode()
    assert len(scan(data)) == len(KEYS) + 1
    assert scan(scrub(data)) == []


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
    assert scan(redacted.body)  # reported by `replay verify`, never rewritten
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


# -- secrets by field name (issue #8) ------------------------------------------------------

SECRET_NAMES = [
    "api_key",
    "API_KEY",
    "apiKey",
    "api-key",
    "x-api-key",
    "password",
    "Password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "accessToken",
    "refresh_token",
    "id_token",
    "client_secret",
    "clientSecret",
    "authorization",
    "private_key",
    "openai_api_key",
    "OPENAI_API_KEY",
    "db_password",
    "aws_secret_access_key",
    "webhook_secret",
]
ORDINARY_NAMES = [
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "maxOutputTokens",
    "token_count",
    "tokens",
    "input_tokens",
    "next_page_token",
    "pageToken",
    "key",
    "signature",
    "keys",
    "monkey",
    "secretary",
    "password_hint",
    "top_k",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_a_secret_field_of_a_json_body_is_redacted(name: str) -> None:
    body = json.dumps({"model": "m", name: "hunter2-not-key-shaped", "n": 1}).encode()
    scrubbed = scrub_body(body, "application/json")
    assert b"hunter2" not in scrubbed
    assert json.loads(scrubbed) == {"model": "m", name: PLACEHOLDER, "n": 1}
    assert scrub_body(scrubbed, "application/json") == scrubbed  # idempotent


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_ordinary_llm_fields_are_kept(name: str) -> None:
    body = json.dumps({name: "value-kept", "also": 12}).encode()
    assert scrub_body(body, "application/json") == body


def test_secret_fields_nested_numbers_and_json_inside_strings() -> None:
    inner = json.dumps({"api_key": "inner-secret", "n": 1})
    body = json.dumps(
        {
            "config": {"db": {"password": 123456, "host": "h"}},
            "messages": [{"role": "user", "content": f"my config: {inner}"}],
            "token": {"kind": "object", "value": "kept: judged by its own name"},
            "secret": "",
        }
    ).encode()
    scrubbed = json.loads(scrub_body(body, None))
    assert scrubbed["config"]["db"] == {"password": PLACEHOLDER, "host": "h"}
    content = scrubbed["messages"][0]["content"]
    assert "inner-secret" not in content
    assert json.loads(content.removeprefix("my config: ")) == {"api_key": PLACEHOLDER, "n": 1}
    assert scrubbed["token"] == {"kind": "object", "value": "kept: judged by its own name"}
    assert scrubbed["secret"] == ""


def test_a_secret_value_with_escapes_is_redacted_whole() -> None:
    body = b'{"password": "a\\"b\\\\c\\u00e9d", "x": 1}'
    assert scrub_body(body, "application/json") == b'{"password": "<redacted>", "x": 1}'


def test_a_secret_part_of_a_multipart_body_is_redacted() -> None:
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="api_key"\r\n\r\n'
        b"hunter2\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="model"\r\n\r\n'
        b"whisper-1\r\n"
        b"--XyZ\r\n"
        b"Content-Disposition: form-data; name=Password\r\n\r\n"
        b"p4ss\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n"
        b"RIFF\x00\x01token\r\n"
        b"--XyZ--\r\n"
    )
    scrubbed = scrub_body(body, 'multipart/form-data; boundary="XyZ"')
    assert b"hunter2" not in scrubbed and b"p4ss" not in scrubbed
    assert scrubbed == body.replace(b"hunter2", b"<redacted>").replace(b"p4ss", b"<redacted>")
    assert scrub_body(scrubbed, "multipart/form-data; boundary=XyZ") == scrubbed


def test_form_fields_use_the_field_names_too() -> None:
    form = "application/x-www-form-urlencoded"
    assert scrub_body(b"openai_api_key=zzz&max_tokens=5", form) == (
        b"openai_api_key=<redacted>&max_tokens=5"
    )


# -- more key shapes (issue #8) ------------------------------------------------------------

GROQ = "gsk_" + "Wq3Ze8Rt5Yu1Io9Pa7Sd2Fg6Hj4Kl0Zx3Cv8Bn5Mq1We7Rt9Yu2"
HUGGINGFACE = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"
XAI = "xai-" + "Q1w2E3r4T5y6U7i8O9p0AsDfGhJkLzXcVbNmQwErTyUiOpAsDfGhJkLzXcVbNmQwErTyUiOpAsDfGhJk"
OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 4
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_FINE = "github_pat_" + "11AABBCCDD0" + "_" + "a1B2c3D4e5F6g7H8i9J0" * 4
SLACK = "xoxb-" + "1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1y2z3\nAbCd+/==\n"
    "-----END RSA PRIVATE KEY-----"
)
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

MORE_KEYS = {
    GROQ: "groq-key",
    HUGGINGFACE: "huggingface-token",
    XAI: "xai-key",
    OPENROUTER: "openrouter-key",
    GITHUB: "github-token",
    "gho_" + GITHUB[4:]: "github-token",
    "ghs_" + GITHUB[4:]: "github-token",
    GITHUB_FINE: "github-token",
    SLACK: "slack-token",
    "xoxp-" + SLACK[5:]: "slack-token",
    JWT: "jwt",
    PEM: "private-key",
    "sk-" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGhIjKlMnOpQrStUv": "openai-key",  # no digit
    "sk-proj-" + "AbCdEfGhIjKlMnOpQrStUvWxYz_-AbCdEfGh": "openai-key",  # no digit
}


@pytest.mark.parametrize(("key", "kind"), MORE_KEYS.items())
def test_more_vendors_keys_are_scrubbed_and_scanned(key: str, kind: str) -> None:
    data = f"before {key} after".encode()
    assert scrub(data) == f"before <redacted:{kind}> after".encode()
    assert [f.kind for f in scan(data)] == [kind]
    assert scan(scrub(data)) == []
    in_json = json.dumps({"text": f"x\n{key}"}).encode()  # a PEM's newlines become \n
    assert key.encode() not in scrub(in_json) and scan(scrub(in_json)) == []


@pytest.mark.parametrize(
    "context",
    [
        "aws_secret_access_key = {}",
        "AWS_SECRET_ACCESS_KEY={}",
        '"SecretAccessKey": "{}"',
        "aws_secret: '{}'",
        '{{\\"secret_access_key\\": \\"{}\\"}}',
    ],
)
def test_an_aws_secret_key_is_found_near_an_aws_context(context: str) -> None:
    data = context.format(AWS_SECRET).encode()
    assert scrub(data) == context.format("<redacted:aws-secret-key>").encode()
    assert [f.kind for f in scan(data)] == ["aws-secret-key"]


def test_forty_random_characters_without_an_aws_context_are_kept() -> None:
    data = f"sha: {AWS_SECRET} and base64 {AWS_SECRET}".encode()
    assert scrub(data) == data


@pytest.mark.parametrize(
    "prose",
    [
        "gsk_short",
        "hf_short123",
        "the xai-grok model",
        "ghp_short",
        "xoxb-123",
        "eyJhbGci.eyJzdWIi.abc",  # too short for a JWT
        "-----BEGIN PUBLIC KEY-----",
        "the secret access key is stored in the vault",
        "sk-learn-compatible-estimator-wrapper-for-pipelines",
    ],
)
def test_near_misses_of_the_new_shapes_are_prose(prose: str) -> None:
    assert scrub(prose.encode()) == prose.encode()


def test_keys_glued_to_a_preceding_letter_are_found() -> None:
    for glued in (f"KEY{OPENAI_PROJ}", f"x{ANTHROPIC}", f"token{GROQ}", f"abc{GITHUB}"):
        assert scan(glued.encode()), glued
        assert not scan(scrub(glued.encode()))


def test_a_json_escaped_key_is_found_and_the_body_keeps_its_value() -> None:
    escaped = OPENAI_PROJ.replace("-", "\\u002d").replace("_", "\\u005F")
    body = ('{"k": "' + escaped + '", "lit": "\\\\u002d", "q": "\\u0022\\/"}').encode()
    scrubbed = scrub_body(body, "application/json")
    assert json.loads(scrubbed) == {
        "k": "<redacted:openai-key>",
        "lit": "\\u002d",  # an escaped backslash, then text: not an escape
        "q": '"/',
    }
    assert [(f.kind, f.where) for f in scan(body)] == [("openai-key", "unescaped")]


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
def test_scan_finds_keys_in_content_encoded_bodies(coding: str) -> None:
    import zlib

    import brotli
    import zstandard

    encode = {
        "gzip": gzip.compress,
        "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "deflate": zlib.compress,
    }[coding]
    body = json.dumps({"echo": f"your key is {OPENAI_PROJ}", "other": GROQ}).encode()
    findings = scan(encode(body), coding)
    assert OPENAI_PROJ not in repr(findings)
    if coding == "zstd":  # zstd keeps some literals as they are: parts are also found raw
        assert {(f.kind, f.length) for f in findings if f.where == "decoded"} >= {
            ("openai-key", len(OPENAI_PROJ))
        }
        return
    assert [(f.kind, f.where) for f in findings] == [
        ("openai-key", "decoded"),
        ("groq-key", "decoded"),
    ]
    assert findings[0].offset == body.index(OPENAI_PROJ.encode())
    assert scan(encode(body)) == (findings if coding == "gzip" else [])  # sniffed: gzip only
    assert OPENAI_PROJ not in repr(findings)


def test_scan_sniffs_gzip_and_zstd_and_keeps_its_old_call() -> None:
    body = f"k={OPENAI_PROJ}".encode()
    assert [f.where for f in scan(gzip.compress(body))] == ["decoded"]
    assert [f.where for f in scan(body)] == ["raw"]
    assert scan(b"\x1f\x8b not really gzip") == []
    assert len({f.secret_hash for f in scan(f"{GROQ} {GROQ} {XAI}".encode())}) == 2


def test_the_fields_and_shapes_lists_are_documented() -> None:
    from replay.redact import SECRET_FIELD_SUFFIXES, SECRET_FIELDS

    docs = (Path(__file__).parents[2] / "docs" / "matching.md").read_text("utf-8")
    for name in sorted(SECRET_FIELDS | set(SECRET_FIELD_SUFFIXES)):
        assert f"`{name}`" in docs, name
