"""replay.canonical: content decoding, JSON detection, canonical JSON, ignore paths, multipart."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import zlib
from decimal import Decimal

import brotli
import pytest
import zstandard

from replay.canonical import (
    MAX_JSON_DEPTH,
    body_material,
    canonical_json,
    canonical_number,
    decode_content,
    decoded_request,
    header_values,
    multipart_parts,
    parse_json,
    remove_paths,
)
from replay.models import Request

PLAIN = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}' * 20


def make_request(body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> Request:
    return Request("POST", "https", "api.openai.com", 443, "/v1/x", (), headers, body)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def zstd_without_size(data: bytes) -> bytes:
    compressor = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    return compressor.compress(data) + compressor.flush()


# -- decode_content ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("x-gzip", gzip.compress(PLAIN)),
        ("GZip", gzip.compress(PLAIN)),
        ("deflate", zlib.compress(PLAIN)),
        ("deflate", raw_deflate(PLAIN)),
        ("br", brotli.compress(PLAIN)),
        ("zstd", zstandard.ZstdCompressor().compress(PLAIN)),
        ("zstd", zstd_without_size(PLAIN)),
        ("identity", PLAIN),
        (" gzip ", gzip.compress(PLAIN)),
    ],
)
def test_decode_content_undoes_each_coding(coding: str, encoded: bytes) -> None:
    assert encoded != PLAIN or coding == "identity"
    assert decode_content(encoded, coding) == PLAIN


def test_decode_content_multi_frame_zstd() -> None:
    compressor = zstandard.ZstdCompressor()
    encoded = compressor.compress(b"first ") + zstd_without_size(b"second")
    assert decode_content(encoded, "zstd") == b"first second"


def test_decode_content_undoes_a_list_in_reverse_order() -> None:
    encoded = brotli.compress(gzip.compress(PLAIN))  # gzip applied first, then br
    assert decode_content(encoded, "gzip, br") == PLAIN
    with pytest.raises(ValueError):
        decode_content(encoded, "br, gzip")


@pytest.mark.parametrize("encoding", [None, ""])
def test_decode_content_without_encoding_is_identity(encoding: str | None) -> None:
    assert decode_content(b"abc", encoding) == b"abc"


def test_decode_content_of_empty_body_is_empty() -> None:
    assert decode_content(b"", "gzip") == b""


def test_decode_content_unknown_coding() -> None:
    with pytest.raises(ValueError, match="unknown content-encoding 'compress'"):
        decode_content(b"abc", "compress")


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(PLAIN)[:-10]),
        ("deflate", b"not deflate \xff\xfe"),
        ("br", b"not brotli!!"),
        ("zstd", b"not zstd"),
        ("zstd", zstd_without_size(PLAIN)[:-4]),
        ("zstd", zstandard.ZstdCompressor().compress(PLAIN)[:10]),
    ],
)
def test_decode_content_rejects_undecodable_data(coding: str, data: bytes) -> None:
    with pytest.raises(ValueError, match=f"cannot decode '{coding}' content"):
        decode_content(data, coding)


def test_decoded_request_decodes_and_drops_framing_headers() -> None:
    encoded = gzip.compress(PLAIN)
    request = make_request(
        encoded,
        (
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(encoded))),
        ),
    )
    decoded = decoded_request(request)
    assert decoded.body == PLAIN
    assert decoded.headers == (("Content-Type", "application/json"),)


def test_decoded_request_keeps_undecodable_or_plain_requests() -> None:
    broken = make_request(b"garbage", (("content-encoding", "gzip"),))
    plain = make_request(PLAIN, (("content-length", str(len(PLAIN))),))
    assert decoded_request(broken) == broken
    assert decoded_request(plain) is plain


def test_header_values_joins_repeated_headers() -> None:
    request = make_request(b"", (("A", "1"), ("b", "x"), ("a", "2")))
    assert header_values(request, "a") == "1, 2"
    assert header_values(request, "missing") is None


# -- parse_json ----------------------------------------------------------------------------


def test_parse_json_numbers_are_decimals_equal_by_value() -> None:
    values = [parse_json(f'{{"n": {n}}}'.encode()) for n in ("1", "1.0", "1e0", "10E-1")]
    assert all(isinstance(v, dict) and isinstance(v["n"], Decimal) for v in values)
    assert len({canonical_json(v) for v in values}) == 1


@pytest.mark.parametrize("text", [b"[]", b"{}", b' \n\t\r {"a": [1, 2]} ', b"[null, true]"])
def test_parse_json_accepts_objects_and_arrays(text: bytes) -> None:
    assert parse_json(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"   ",
        b'"a string"',
        b"42",
        b"null",
        b"true",
        b"{not json}",
        b'{"a": 1} trailing',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"[-Infinity]",
        b'{"a": "\xff"}',
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte-order mark
        b"[1e-99999999999999999999]",  # beyond Decimal's exponent range
        b"a=1&b=2",
    ],
)
def test_parse_json_rejects_everything_else(text: bytes) -> None:
    assert parse_json(text) is None


def test_parse_json_duplicate_keys_last_wins() -> None:
    assert parse_json(b'{"a": 1, "a": 2}') == {"a": Decimal(2)}


def test_parse_json_depth_limit() -> None:
    ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    too_deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert parse_json(ok) is not None
    assert parse_json(too_deep) is None
    assert parse_json(b"[" * 100_000 + b"]" * 100_000) is None  # no RecursionError escapes


# -- canonical_json ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (Decimal("1.5"), "15e-1"),
        (Decimal("100"), "1e2"),
        (Decimal("1"), "1"),
        (Decimal("-0.25"), "-25e-2"),
        (Decimal("0"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("0.000"), "0"),
        (Decimal("0e10"), "0"),
        (Decimal("1E+2"), "1e2"),
        (Decimal("1.0"), "1"),
        (Decimal("10E-1"), "1"),
        (Decimal("1.50e3"), "15e2"),
        (Decimal("123"), "123"),
        (Decimal("-120"), "-12e1"),
        (Decimal("0.001"), "1e-3"),
        (
            Decimal("12345678901234567890123456789012345678901234567890.5"),
            "123456789012345678901234567890123456789012345678905e-1",
        ),
        (Decimal("1e999999999"), "1e999999999"),
        (7, "7"),
        (-3000, "-3e3"),
        (0.1, "1e-1"),
        (2.5e-8, "25e-9"),
        (1e16, "1e16"),
    ],
)
def test_canonical_number(number: Decimal | int | float, expected: str) -> None:
    assert canonical_number(number) == expected
    assert canonical_json([number]) == f"[{expected}]"


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), float("inf"), float("nan")])
def test_canonical_number_rejects_non_finite(bad: Decimal | float) -> None:
    with pytest.raises(ValueError):
        canonical_json([bad])


def test_canonical_json_sorts_keys_by_code_point_and_drops_whitespace() -> None:
    value = {"b": 1, "a": {"z": [], "y": {}}, "B": None, "é": True, "😀": False, "｡": "x"}
    # "｡" (U+FF61) sorts before "😀" (U+1F600) by code point, though not by UTF-16 units.
    expected = '{"B":null,"a":{"y":{},"z":[]},"b":1,"é":true,"｡":"x","😀":false}'
    assert canonical_json(value) == expected


def test_canonical_json_strings_escape_only_what_json_requires() -> None:
    text = 'é😀\u2028\x7f"\\/\n\r\t\b\f\x00\x1f'
    expected = '"é😀\u2028\x7f\\"\\\\/\\n\\r\\t\\b\\f\\u0000\\u001f"'
    assert canonical_json(text) == expected
    assert json.loads(canonical_json(text)) == text


def test_canonical_json_escapes_lone_surrogates_so_it_stays_utf8() -> None:
    value = parse_json(b'["\\ud800x"]')
    text = canonical_json(value)
    assert text == '["\\ud800x"]'
    text.encode("utf-8")  # must not raise


def test_canonical_json_booleans_are_not_numbers() -> None:
    assert canonical_json([True, False, None, 1, 0]) == "[true,false,null,1,0]"


def test_canonical_json_tuples_are_arrays() -> None:
    assert canonical_json({"q": (("a", "1"),)}) == '{"q":[["a","1"]]}'


@pytest.mark.parametrize("bad", [{1: "x"}, {"a": {1, 2}}, b"bytes", object()])
def test_canonical_json_rejects_non_json_values(bad: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(bad)


def test_canonical_json_is_a_fixed_point_through_parse_json() -> None:
    raw = b'{"z": [1.0, 2.50, -0, 1e3, "\\u00e9"], "a": {"n": 0.1, "t": true}}'
    once = canonical_json(parse_json(raw))
    assert once == '{"a":{"n":1e-1,"t":true},"z":[1,25e-1,0,1e3,"é"]}'
    assert canonical_json(parse_json(once.encode())) == once


# -- remove_paths --------------------------------------------------------------------------

DOC = {
    "model": "m",
    "user": "u1",
    "metadata": {"trace_id": "t", "keep": 1},
    "messages": [
        {"role": "system", "content": "s", "name": "n0"},
        {"role": "user", "content": "c", "name": "n1"},
        {"role": "user", "content": "d"},
    ],
    "0": "object key zero",
}


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (("user",), {k: v for k, v in DOC.items() if k != "user"}),
        (("metadata.trace_id",), {**DOC, "metadata": {"keep": 1}}),
        (
            ("messages.*.name",),
            {
                **DOC,
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "c"},
                    {"role": "user", "content": "d"},
                ],
            },
        ),
        (("messages.0",), {**DOC, "messages": DOC["messages"][1:]}),  # type: ignore[index]
        (("messages.0", "messages.1"), {**DOC, "messages": DOC["messages"][2:]}),  # type: ignore[index]
        (("messages.*",), {**DOC, "messages": []}),
        (("0",), {k: v for k, v in DOC.items() if k != "0"}),
        (("*",), {}),
        (("metadata.*",), {**DOC, "metadata": {}}),
    ],
)
def test_remove_paths(paths: tuple[str, ...], expected: object) -> None:
    assert remove_paths(DOC, paths) == expected


@pytest.mark.parametrize(
    "paths",
    [
        ("nope",),
        ("metadata.nope",),
        ("model.deeper",),
        ("messages.7",),
        ("messages.x",),
        ("messages.00",),
        ("messages.-1",),
        ("user.*",),
    ],
)
def test_remove_paths_that_name_nothing_are_no_ops(paths: tuple[str, ...]) -> None:
    assert remove_paths(DOC, paths) == DOC


def test_remove_paths_order_does_not_matter() -> None:
    forward = remove_paths(DOC, ("messages.0", "messages.1", "messages.*.name"))
    backward = remove_paths(DOC, ("messages.*.name", "messages.1", "messages.0"))
    assert forward == backward == {**DOC, "messages": [{"role": "user", "content": "d"}]}


def test_remove_paths_does_not_modify_its_input() -> None:
    before = copy.deepcopy(DOC)
    remove_paths(DOC, ("messages.*.name", "metadata.trace_id", "user"))
    assert before == DOC


def test_remove_paths_without_paths_returns_value() -> None:
    assert remove_paths(DOC, ()) is DOC
    assert remove_paths("scalar", ("a",)) == "scalar"


# -- multipart -----------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"


def multipart(boundary: str, parts: list[tuple[str, bytes]], preamble: bytes = b"") -> bytes:
    out = preamble
    for headers, data in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


PARTS = [
    ('Content-Disposition: form-data; name="purpose"', b"fine-tune"),
    (
        'Content-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png',
        PNG,
    ),
    (
        'Content-Disposition: form-data; name="meta"\r\nContent-Type: application/json',
        b'{"b": 1.0, "a": 2}',
    ),
    ('Content-Disposition: form-data; name="empty"', b""),
]


def test_multipart_parts_in_order_with_canonical_bodies() -> None:
    body = multipart("XyZ123", PARTS)
    parts = multipart_parts(body, "multipart/form-data; boundary=XyZ123")
    assert parts == [
        {"name": "purpose", "filename": None, "content_type": None, "body": {"text": "fine-tune"}},
        {
            "name": "file",
            "filename": "a.png",
            "content_type": "image/png",
            "body": {"sha256": hashlib.sha256(PNG).hexdigest()},
        },
        {
            "name": "meta",
            "filename": None,
            "content_type": "application/json",
            "body": {"json": {"a": Decimal(2), "b": Decimal(1)}},
        },
        {"name": "empty", "filename": None, "content_type": None, "body": {"empty": True}},
    ]


def test_multipart_parts_do_not_depend_on_boundary_preamble_or_quoting() -> None:
    a = multipart_parts(multipart("aaa", PARTS), "multipart/form-data; boundary=aaa")
    b = multipart_parts(
        multipart("----WebKitFormBoundary7MA4YWxkTrZu0gW", PARTS, preamble=b"ignored\r\n"),
        'Multipart/Form-Data; boundary="----WebKitFormBoundary7MA4YWxkTrZu0gW"',
    )
    assert a is not None
    assert a == b


def test_multipart_parts_filename_star_and_folded_headers() -> None:
    body = multipart(
        "b",
        [
            (
                'Content-Disposition: form-data; name="f";\r\n'
                " filename*=UTF-8''%C3%A9t%C3%A9.txt",
                b"x",
            ),
            ("X-Other: 1", b"no disposition"),
        ],
    )
    parts = multipart_parts(body, "multipart/related; boundary=b")
    assert parts is not None
    assert (parts[0]["name"], parts[0]["filename"]) == ("f", "été.txt")
    assert (parts[1]["name"], parts[1]["filename"]) == (None, None)


def test_multipart_part_without_headers() -> None:
    body = b"--b\r\n\r\nbare\r\n--b--"
    assert multipart_parts(body, "multipart/form-data; boundary=b") == [
        {"name": None, "filename": None, "content_type": None, "body": {"text": "bare"}}
    ]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (multipart("b", PARTS), "application/json"),
        (multipart("b", PARTS), "multipart/form-data"),  # no boundary
        (multipart("b", PARTS), "multipart/form-data; boundary=other"),
        (multipart("b", PARTS)[:-8], "multipart/form-data; boundary=b"),  # no close delimiter
        (b"--b\r\nno blank line ends these headers\r\n--b--", "multipart/form-data; boundary=b"),
        (b"--bjunk\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b"),
        (b"", "multipart/form-data; boundary=b"),
    ],
)
def test_multipart_parts_none_when_not_multipart(body: bytes, content_type: str) -> None:
    assert multipart_parts(body, content_type) is None


def test_multipart_with_no_parts() -> None:
    assert multipart_parts(b"--b--\r\n", "multipart/form-data; boundary=b") == []


# -- body_material -------------------------------------------------------------------------


def test_body_material_kinds() -> None:
    form = "multipart/form-data; boundary=b"
    assert body_material(b"") == {"empty": True}
    assert body_material(b'{"a": 1, "user": "x"}', None, ("user",)) == {"json": {"a": Decimal(1)}}
    assert body_material(b"a=1&b=2", "application/x-www-form-urlencoded") == {"text": "a=1&b=2"}
    assert body_material(PNG) == {"sha256": hashlib.sha256(PNG).hexdigest()}
    assert body_material(multipart("b", PARTS), form) == {
        "multipart": multipart_parts(multipart("b", PARTS), form)
    }
    # Without a multipart content-type the same bytes are just bytes (PNG is not UTF-8).
    assert body_material(multipart("b", PARTS)).keys() == {"sha256"}


def test_body_material_json_wins_over_content_type() -> None:
    assert body_material(b"[1]", "text/plain") == {"json": [Decimal(1)]}


def test_long_strings_are_escaped_in_slices_to_the_same_text_and_digest() -> None:
    import hashlib

    from replay.canonical import _SLICE, _string, canonical_digest

    # Escapes, a lone surrogate and a line separator right at the slice boundary.
    text = "a" * (_SLICE - 1) + '"\ud800\u2028\\\n' + "é" * _SLICE
    value = {"messages": [{"content": text}], "n": 1}
    whole = '{"messages":[{"content":' + _string(text) + '}],"n":1}'
    assert canonical_json(value) == whole
    assert canonical_digest(value) == hashlib.sha256(whole.encode("utf-8")).hexdigest()
