"""replay.fingerprint: the material, its hash, the invariants, first_difference."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import brotli
import pytest
import zstandard

from replay.canonical import canonical_json, parse_json
from replay.fingerprint import (
    FINGERPRINT_VERSION,
    HEADER_ALLOWLIST,
    Fingerprint,
    FingerprintPolicy,
    Normalizer,
    decoded_request,
    fingerprint,
    first_difference,
)
from replay.models import Chunk, Interaction, Key, Provenance, Request, ResponseHead
from replay.redact import redact, redact_request

NO_POLICY = FingerprintPolicy()
OPENAI_KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0_-kLmNoPqRsTuVwXyZ" * 3
OTHER_OPENAI_KEY = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0_-PoNmLkJiHgFeDcBa" * 3
MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o", "temperature": 1.5, "messages": MESSAGES}


def make_request(
    body: bytes = b"",
    *,
    method: str = "POST",
    scheme: str = "https",
    host: str = "api.openai.com",
    port: int = 443,
    path: str = "/v1/chat/completions",
    query: tuple[tuple[str, str], ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> Request:
    return Request(method, scheme, host, port, path, query, headers, body)


def chat(body: object = CHAT, **kwargs: object) -> Request:
    return make_request(json.dumps(body).encode(), **kwargs)  # type: ignore[arg-type]


def fp(request: Request, policy: FingerprintPolicy = NO_POLICY) -> str:
    return fingerprint(request, policy).hex


# -- the shape and a pinned vector ---------------------------------------------------------


def test_fingerprint_is_64_hex_with_version_and_material() -> None:
    result = fingerprint(chat(), NO_POLICY)
    assert isinstance(result, Fingerprint)
    assert re.fullmatch(r"[0-9a-f]{64}", result.hex)
    assert result.version == FINGERPRINT_VERSION == 1
    assert list(result.material) == [
        "v",
        "method",
        "scheme",
        "authority",
        "path",
        "query",
        "headers",
        "body",
    ]
    assert result.hex == hashlib.sha256(canonical_json(result.material).encode()).hexdigest()


PINNED_CANONICAL = (
    '{"authority":"api.openai.com",'
    '"body":{"json":{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o",'
    '"temperature":15e-1}},'
    '"headers":{"anthropic-version":"2023-06-01"},'
    '"method":"POST","path":"/v1/chat/completions","query":[["a","1"]],'
    '"scheme":"https","v":1}'
)
PINNED_HEX = "b497dc5e9c597d577cc74b7159a30938e56bb7b42a0075ba81596f8ae0ad1c4f"


def test_pinned_vector() -> None:
    """Written by hand from docs/matching.md: a change here is a FINGERPRINT_VERSION bump."""
    request = make_request(
        b'{ "temperature" : 1.50, "model":"gpt-4o",\n "messages":[{"role":"user","content":"hi"}]}',
        method="post",
        host="API.OpenAI.com",
        query=(("key", "secret"), ("a", "1")),
        headers=(
            ("Authorization", f"Bearer {OPENAI_KEY}"),
            ("User-Agent", "x"),
            ("Anthropic-Version", "2023-06-01"),
            ("Content-Type", "application/json"),
        ),
    )
    result = fingerprint(request, NO_POLICY)
    assert canonical_json(result.material) == PINNED_CANONICAL
    assert hashlib.sha256(PINNED_CANONICAL.encode("utf-8")).hexdigest() == PINNED_HEX
    assert result.hex == PINNED_HEX


def test_docs_pin_the_same_vector_and_allow_list() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "matching.md").read_text("utf-8")
    assert PINNED_HEX in docs
    assert f"FINGERPRINT_VERSION = {FINGERPRINT_VERSION}" in docs
    for name in HEADER_ALLOWLIST:
        assert f"| `{name}` |" in docs, name


def test_material_holds_parsed_values() -> None:
    material = fingerprint(chat(query=(("b", "2"), ("a", "1"))), NO_POLICY).material
    body = material["body"]
    assert isinstance(body, dict)
    assert body["json"]["temperature"] == Decimal("1.5")
    assert material["query"] == [["a", "1"], ["b", "2"]]
    assert material["headers"] == {}


# -- invariants: secrets never matter ------------------------------------------------------


def test_secret_headers_do_not_matter() -> None:
    a = chat(headers=(("Authorization", f"Bearer {OPENAI_KEY}"), ("OpenAI-Organization", "o1")))
    b = chat(
        headers=(
            ("authorization", f"Bearer {OTHER_OPENAI_KEY}"),
            ("x-api-key", "k"),
            ("Cookie", "c=1"),
        )
    )
    assert fp(a) == fp(b) == fp(chat())


def test_secret_query_params_do_not_matter_but_others_do() -> None:
    base = chat(query=(("api-version", "2024-06-01"),))
    assert fp(base) == fp(chat(query=(("api-version", "2024-06-01"), ("KEY", "s1"))))
    assert fp(base) == fp(chat(query=(("Api_Key", "s2"), ("api-version", "2024-06-01"))))
    assert fp(base) != fp(chat(query=(("api-version", "2024-10-21"),)))


def test_key_shaped_strings_in_the_body_do_not_matter() -> None:
    a = chat({**CHAT, "note": f"key {OPENAI_KEY}"})
    b = chat({**CHAT, "note": f"key {OTHER_OPENAI_KEY}"})
    assert fp(a) == fp(b)
    assert fp(a) != fp(chat({**CHAT, "note": "key none"}))


def test_key_shaped_strings_in_path_and_query_values_do_not_matter() -> None:
    a = make_request(path=f"/v1/x/{OPENAI_KEY}", query=(("q", OPENAI_KEY),), method="GET")
    b = make_request(
        path=f"/v1/x/{OTHER_OPENAI_KEY}", query=(("q", OTHER_OPENAI_KEY),), method="GET"
    )
    assert fp(a) == fp(b)


def test_form_body_secrets_do_not_matter() -> None:
    form = (("Content-Type", "application/x-www-form-urlencoded"),)
    a = make_request(b"grant_type=refresh_token&refresh_token=aaa&client_secret=b", headers=form)
    b = make_request(b"grant_type=refresh_token&refresh_token=ccc&client_secret=d", headers=form)
    assert fp(a) == fp(b)
    c = make_request(b"grant_type=other&refresh_token=ccc&client_secret=d", headers=form)
    assert fp(a) != fp(c)


SECRET_PLACES: dict[str, Callable[[str], object]] = {
    # issue #8: each place a secret could still reach the key; `s` is "one" or "two"
    "json api_key": lambda s: {**CHAT, "api_key": f"hunter2-{s}"},
    "json password": lambda s: {**CHAT, "password": f"pw-{s}"},
    "json secret": lambda s: {**CHAT, "secret": f"s-{s}"},
    "json token": lambda s: {**CHAT, "token": f"t-{s}"},
    "json access_token": lambda s: {**CHAT, "access_token": f"a-{s}"},
    "json client_secret": lambda s: {**CHAT, "client_secret": f"c-{s}"},
    "json nested camelCase": lambda s: {**CHAT, "cfg": {"openaiApiKey": f"k-{s}"}},
    "json number": lambda s: {**CHAT, "pin_password": 1 if s == "one" else 2},
    "json in a string": lambda s: {**CHAT, "note": json.dumps({"api_key": f"in-{s}"})},
    "groq": lambda s: {**CHAT, "note": "gsk_" + s * 10},
    "huggingface": lambda s: {**CHAT, "note": "hf_" + s * 12},
    "xai": lambda s: {**CHAT, "note": "xai-" + s * 10},
    "openrouter": lambda s: {**CHAT, "note": "sk-or-v1-" + s * 10},
    "aws secret": lambda s: {**CHAT, "note": f"aws_secret_access_key={(s * 14)[:40]}"},
    "github": lambda s: {**CHAT, "note": "ghp_" + s * 12},
    "github fine-grained": lambda s: {**CHAT, "note": "github_pat_" + s * 10},
    "slack": lambda s: {**CHAT, "note": "xoxb-" + s * 5},
    "pem": lambda s: {
        **CHAT,
        "note": f"-----BEGIN PRIVATE KEY-----\n{s * 8}\n-----END PRIVATE KEY-----",
    },
    "jwt": lambda s: {**CHAT, "note": f"eyJ{s * 4}.eyJ{s * 4}.{s * 4}"},
    "glued": lambda s: {**CHAT, "note": f"KEY{OPENAI_KEY if s == 'one' else OTHER_OPENAI_KEY}"},
    "no digits": lambda s: {**CHAT, "note": "sk-" + ("Abc" if s == "one" else "Xyz") * 12},
}


@pytest.mark.parametrize("place", list(SECRET_PLACES))
def test_a_secret_in_each_new_place_does_not_matter(place: str) -> None:
    one, two = (SECRET_PLACES[place](s) for s in ("one", "two"))
    assert one != two
    assert fp(chat(one)) == fp(chat(two)), place
    assert fp(chat(one)) != fp(chat(CHAT))  # the field is there, only its value is gone


def test_a_json_escaped_key_does_not_matter() -> None:
    def body(key: str) -> bytes:
        escaped = key.replace("-", "\\u002d")
        return ('{"model": "gpt-4o", "note": "' + escaped + '"}').encode()

    assert fp(make_request(body(OPENAI_KEY))) == fp(make_request(body(OTHER_OPENAI_KEY)))


def test_a_secret_multipart_field_does_not_matter() -> None:
    def body(secret: str) -> bytes:
        return (
            b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            b'--b\r\nContent-Disposition: form-data; name="api_key"\r\n\r\n'
            + secret.encode()
            + b"\r\n--b--\r\n"
        )

    headers = (("Content-Type", "multipart/form-data; boundary=b"),)
    assert fp(make_request(body("one"), headers=headers)) == fp(
        make_request(body("two"), headers=headers)
    )


def test_ordinary_fields_named_like_secrets_still_matter() -> None:
    for name in ("max_tokens", "token_count", "next_page_token", "key", "signature"):
        assert fp(chat({**CHAT, name: "a"})) != fp(chat({**CHAT, name: "b"})), name


def make_interaction(request: Request) -> Interaction:
    return Interaction(
        Key("default", "0" * 64, 0),
        1,
        (),
        request,
        ResponseHead(200, "OK", "HTTP/1.1", ()),
        0.1,
        (Chunk(0.0, b"{}"),),
        True,
        Provenance("2026-01-01T00:00:00Z", "openai", None, None, 200, "0.1.0"),
    )


@pytest.mark.parametrize("policy", [NO_POLICY, FingerprintPolicy(ignore=("note",))])
def test_fingerprint_of_the_redacted_request_is_the_original(policy: FingerprintPolicy) -> None:
    body = json.dumps({**CHAT, "note": f"Bearer {OPENAI_KEY}"}).encode()
    request = make_request(
        gzip.compress(body),
        path=f"/v1/{OPENAI_KEY}",
        query=(("key", "s"), ("token", "t"), ("q", f"a {OPENAI_KEY}"), ("api-version", "1")),
        headers=(
            ("Authorization", "Bearer abc"),
            ("Content-Encoding", "gzip"),
            ("anthropic-beta", f"tools {OPENAI_KEY}"),
            ("Content-Type", "application/json"),
        ),
    )
    stored = redact(make_interaction(request)).interaction.request
    assert OPENAI_KEY not in repr(stored)
    assert fp(stored, policy) == fp(request, policy) == fp(redact_request(request), policy)


# -- invariants: spelling never matters, content does --------------------------------------


def test_key_order_whitespace_and_number_spelling_do_not_matter() -> None:
    a = make_request(b'{"a": 1, "b": [1.0, 2e0, -0.5], "c": {"y": true, "x": null}}')
    b = make_request(b'{"c":{"x":null,"y":true},"b":[1,20E-1,-5e-1],\n\t"a":1.000}')
    assert fp(a) == fp(b)


@pytest.mark.parametrize(
    "other",
    [
        {**CHAT, "temperature": 1.0},
        {**CHAT, "model": "gpt-4o-mini"},
        {**CHAT, "messages": [{"role": "user", "content": "hi!"}]},
        {**CHAT, "stream": True},
        {k: v for k, v in CHAT.items() if k != "temperature"},
        [CHAT],
    ],
)
def test_different_bodies_give_different_fingerprints(other: object) -> None:
    assert fp(chat()) != fp(chat(other))


def test_strings_are_not_numbers_and_booleans_are_not_numbers() -> None:
    assert fp(make_request(b'{"n": 1}')) != fp(make_request(b'{"n": "1"}'))
    assert fp(make_request(b'{"n": 1}')) != fp(make_request(b'{"n": true}'))


def test_ignore_paths() -> None:
    a = chat({**CHAT, "user": "u1", "metadata": {"trace_id": "t1", "app": "x"}})
    b = chat({**CHAT, "user": "u2", "metadata": {"trace_id": "t2", "app": "x"}})
    c = chat({**CHAT, "user": "u2", "metadata": {"trace_id": "t2", "app": "y"}})
    policy = FingerprintPolicy(ignore=("user", "metadata.trace_id"))
    assert fp(a) != fp(b)
    assert fp(a, policy) == fp(b, policy)
    assert fp(a, policy) != fp(c, policy)
    assert fp(chat(), policy) == fp(chat(), NO_POLICY)  # nothing to ignore


def test_ignore_wildcard_over_messages() -> None:
    a = chat({"messages": [{"role": "user", "content": "x", "name": "alice"}]})
    b = chat({"messages": [{"role": "user", "content": "x", "name": "bob"}]})
    assert fp(a, FingerprintPolicy(ignore=("messages.*.name",))) == fp(
        b, FingerprintPolicy(ignore=("messages.*.name",))
    )


MULTIPART_PARTS = [
    ('form-data; name="purpose"', None, b"fine-tune"),
    ('form-data; name="file"; filename="train.jsonl"', "application/jsonl", b'{"a": 1}\n'),
]


def multipart_request(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> Request:
    body = b""
    for disposition, content_type, data in parts:
        head = f"Content-Disposition: {disposition}"
        if content_type:
            head += f"\r\nContent-Type: {content_type}"
        body += f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return make_request(
        body,
        path="/v1/files",
        headers=(("Content-Type", f"multipart/form-data; boundary={boundary}"),),
    )


def test_multipart_boundary_does_not_matter_but_parts_do() -> None:
    a = multipart_request("----a1b2c3", MULTIPART_PARTS)
    b = multipart_request("xyz-987654321", MULTIPART_PARTS)
    assert fp(a) == fp(b)
    assert fp(a) != fp(multipart_request("b", list(reversed(MULTIPART_PARTS))))
    changed = [MULTIPART_PARTS[0], (MULTIPART_PARTS[1][0], "application/jsonl", b'{"a": 2}\n')]
    assert fp(a) != fp(multipart_request("b", changed))
    renamed = [
        MULTIPART_PARTS[0],
        (MULTIPART_PARTS[1][0].replace("train", "test"), "application/jsonl", b'{"a": 1}\n'),
    ]
    assert fp(a) != fp(multipart_request("b", renamed))
    body = fingerprint(a, NO_POLICY).material["body"]
    assert isinstance(body, dict) and "multipart" in body


def zstd_stream(data: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("br", brotli.compress),
        ("zstd", zstandard.ZstdCompressor().compress),
        ("zstd", zstd_stream),
        ("deflate", zlib.compress),
    ],
)
def test_content_encoded_body_equals_plain(coding: str, encode: object) -> None:
    plain = json.dumps(CHAT).encode()
    encoded = encode(plain)  # type: ignore[operator]
    request = make_request(
        encoded, headers=(("Content-Encoding", coding), ("Content-Length", str(len(encoded))))
    )
    assert fp(request) == fp(make_request(plain))


def test_undecodable_body_is_keyed_by_its_bytes() -> None:
    broken = make_request(b"\x1f\x8bnot really gzip", headers=(("Content-Encoding", "gzip"),))
    material = fingerprint(broken, NO_POLICY).material
    assert material["body"] == {"sha256": hashlib.sha256(b"\x1f\x8bnot really gzip").hexdigest()}
    assert fp(broken) != fp(make_request(b"\x1f\x8bother bytes", headers=broken.headers))


def test_body_kinds() -> None:
    def body_of(request: Request) -> object:
        return fingerprint(request, NO_POLICY).material["body"]

    assert body_of(make_request(b"", method="GET")) == {"empty": True}
    assert body_of(make_request(b"plain text \xc3\xa9")) == {"text": "plain text é"}
    assert body_of(make_request(b'"a json string"')) == {"text": '"a json string"'}
    assert body_of(make_request(b"\xff\x00")) == {"sha256": hashlib.sha256(b"\xff\x00").hexdigest()}


# -- invariants: the URL -------------------------------------------------------------------


def test_default_port_dropped_other_ports_kept() -> None:
    assert fp(chat(port=443)) == fp(chat(port=443, host="API.OPENAI.COM"))
    assert fp(chat(port=443)) != fp(chat(port=8443))
    assert fingerprint(chat(port=8443), NO_POLICY).material["authority"] == "api.openai.com:8443"
    http = chat(scheme="http", port=80, host="localhost")
    assert fingerprint(http, NO_POLICY).material["authority"] == "localhost"
    ollama = chat(scheme="http", port=11434, host="LocalHost")
    assert fingerprint(ollama, NO_POLICY).material["authority"] == "localhost:11434"
    assert fp(chat(scheme="http", port=443)) != fp(chat(scheme="https", port=443))


def test_ipv6_authority_is_bracketed() -> None:
    request = chat(scheme="http", host="::1", port=8080)
    assert fingerprint(request, NO_POLICY).material["authority"] == "[::1]:8080"


def test_query_order_does_not_matter_but_values_and_repeats_do() -> None:
    assert fp(chat(query=(("a", "1"), ("b", "2")))) == fp(chat(query=(("b", "2"), ("a", "1"))))
    assert fp(chat(query=(("a", "1"),))) != fp(chat(query=(("a", "2"),)))
    assert fp(chat(query=(("a", "1"),))) != fp(chat(query=(("a", "1"), ("a", "1"))))
    assert fp(chat(query=(("alt", "sse"),))) != fp(chat())


@pytest.mark.parametrize(
    ("method", "path", "host"),
    [
        ("GET", "/v1/chat/completions", "api.openai.com"),
        ("POST", "/v1/completions", "api.openai.com"),
        ("POST", "/v1/chat/completions", "api.anthropic.com"),
    ],
)
def test_method_path_and_host_matter(method: str, path: str, host: str) -> None:
    assert fp(chat()) != fp(chat(method=method, path=path, host=host))


def test_method_case_does_not_matter() -> None:
    assert fp(chat(method="post")) == fp(chat(method="POST"))


# -- invariants: headers -------------------------------------------------------------------


def test_header_allowlist() -> None:
    assert frozenset({"anthropic-version", "anthropic-beta", "openai-beta"}) <= HEADER_ALLOWLIST
    assert all(name == name.lower() for name in HEADER_ALLOWLIST)


def test_non_allowlisted_headers_do_not_matter() -> None:
    noisy = chat(
        headers=(
            ("User-Agent", "OpenAI/Python 1.2"),
            ("X-Stainless-Retry-Count", "1"),
            ("x-stainless-os", "Linux"),
            ("Accept-Encoding", "gzip"),
            ("Content-Length", "999"),
            ("x-request-id", "r1"),
        )
    )
    assert fp(noisy) == fp(chat())


def test_allowlisted_headers_matter_by_value_not_name_case() -> None:
    a = chat(headers=(("anthropic-version", "2023-06-01"),))
    assert fp(a) != fp(chat())
    assert fp(a) == fp(chat(headers=(("Anthropic-Version", "2023-06-01"),)))
    assert fp(a) != fp(chat(headers=(("anthropic-version", "2024-01-01"),)))
    assert fp(chat(headers=(("OpenAI-Beta", "assistants=v2"),))) != fp(chat())


def test_repeated_allowlisted_header_values_are_joined_in_order() -> None:
    repeated = chat(headers=(("anthropic-beta", "a"), ("x", "y"), ("Anthropic-Beta", "b")))
    assert fingerprint(repeated, NO_POLICY).material["headers"] == {"anthropic-beta": "a, b"}
    assert fp(repeated) == fp(chat(headers=(("anthropic-beta", "a, b"),)))
    assert fp(repeated) != fp(chat(headers=(("anthropic-beta", "b, a"),)))


# -- decoded_request -----------------------------------------------------------------------


def test_decoded_request_keeps_the_fingerprint() -> None:
    plain = json.dumps(CHAT).encode()
    encoded = brotli.compress(plain)
    request = chat(
        headers=(
            ("Content-Encoding", "br"),
            ("Content-Length", str(len(encoded))),
            ("Content-Type", "application/json"),
        )
    )
    request = replace(request, body=encoded)
    decoded = decoded_request(request)
    assert decoded.body == plain
    assert decoded.headers == (("Content-Type", "application/json"),)
    assert fp(decoded) == fp(request)


# -- first_difference ----------------------------------------------------------------------


def material(request: Request, policy: FingerprintPolicy = NO_POLICY) -> dict[str, object]:
    return fingerprint(request, policy).material


def test_first_difference_none_when_equal() -> None:
    assert first_difference(material(chat()), material(chat())) is None


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (chat({**CHAT, "model": "gpt-4o-mini"}), "body.json.model"),
        (
            chat({**CHAT, "messages": [{"role": "user", "content": "yo"}]}),
            "body.json.messages.0.content",
        ),
        (chat({**CHAT, "messages": [*MESSAGES, {"role": "user"}]}), "body.json.messages.1"),
        (chat({**CHAT, "stream": True}), "body.json.stream"),
        (chat(method="PUT", path="/other"), "method"),
        (chat(path="/v1/embeddings", port=8443), "authority"),
        (chat(path="/v1/embeddings"), "path"),
        (chat(query=(("a", "1"),)), "query.0"),
        (chat(headers=(("openai-beta", "x"),)), "headers.openai-beta"),
        (make_request(b"text"), "body.json"),
    ],
)
def test_first_difference_names_the_first_field(other: Request, expected: str) -> None:
    assert first_difference(material(chat()), material(other)) == expected
    assert first_difference(material(other), material(chat())) == expected


def test_first_difference_compares_leaves_by_canonical_value() -> None:
    assert first_difference({"body": {"n": Decimal("1.0")}}, {"body": {"n": 1}}) is None
    assert first_difference({"body": {"n": True}}, {"body": {"n": 1}}) == "body.n"
    assert first_difference({"body": [1, 2]}, {"body": (1, 2)}) is None
    assert first_difference({"v": 1, "extra": "a"}, {"v": 1, "extra": "b"}) == "extra"
    # Values canonical_json cannot encode (not from a material) still compare, by ==.
    assert first_difference({"body": b"x"}, {"body": b"x"}) is None
    assert first_difference({"body": b"x"}, {"body": b"y"}) == "body"


def test_stored_material_round_trips() -> None:
    """The store keeps canonical_json(material); reading it back must compare equal."""
    original = fingerprint(multipart_request("b", MULTIPART_PARTS), NO_POLICY)
    text = canonical_json(original.material)
    reloaded = parse_json(text.encode())
    assert isinstance(reloaded, dict)
    assert first_difference(original.material, reloaded) is None
    assert hashlib.sha256(canonical_json(reloaded).encode()).hexdigest() == original.hex


def test_normalisers_rewrite_body_strings_before_hashing() -> None:
    stamp = re.compile(r"\d{4}-\d\d-\d\d")
    policy = FingerprintPolicy(normalize=(Normalizer(stamp, "<date>"),))
    monday = chat({"model": "m", "messages": [{"role": "user", "content": "today is 2026-11-23"}]})
    tuesday = chat({"model": "m", "messages": [{"role": "user", "content": "today is 2026-11-24"}]})
    assert fp(monday) != fp(tuesday)
    assert fp(monday, policy) == fp(tuesday, policy)
    material = fingerprint(monday, policy).material
    assert material["body"] == {
        "json": {"model": "m", "messages": [{"role": "user", "content": "today is <date>"}]}
    }
    # The replacement is literal text, and keys are left alone.
    odd = FingerprintPolicy(normalize=(Normalizer(re.compile("today"), r"\1\g<0>"),))
    body = fingerprint(monday, odd).material["body"]
    assert body["json"]["messages"][0]["content"] == r"\1\g<0> is 2026-11-23"  # type: ignore[index]
    plain = make_request(b"id=2026-11-23", headers=(("content-type", "text/plain"),))
    assert fingerprint(plain, policy).material["body"] == {"text": "id=<date>"}


def test_normalisers_leave_digests_of_binary_bodies_alone() -> None:
    digits = FingerprintPolicy(normalize=(Normalizer(re.compile(r"\d"), "#"),))
    binary = make_request(b"\xff\xfe\x00\x01", headers=(("content-type", "image/png"),))
    plain = fingerprint(binary, NO_POLICY).material["body"]
    assert fingerprint(binary, digits).material["body"] == plain
