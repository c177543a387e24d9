"""The canonical form of request bodies: content decoding, JSON, numbers, multipart.

Owns: undoing `content-encoding` (whole bodies, and piece by piece for replayed streams),
deciding whether bytes are JSON, the canonical JSON text
(sorted keys, no whitespace, numbers by value), removing ignore paths, splitting multipart
bodies into their parts, and the tagged "body material" (empty / json / multipart / text /
sha256) that the fingerprint hashes. The grammar is written down in docs/matching.md.

Does not own: secrets (redact.py scrubs before anything here sees a body), the fingerprint's
layout or hashing (fingerprint.py), or anything about the store. Pure functions only.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from email.message import Message
from email.utils import collapse_rfc2231_value
from itertools import accumulate, repeat
from typing import TYPE_CHECKING, Protocol

from replay.errors import BodyTooLarge, JsonTooDeep
from replay.models import Request, without_headers

if TYPE_CHECKING:
    from zstandard import ZstdCompressionDict

MAX_JSON_DEPTH = 256
"""JSON nested deeper than this is not treated as JSON (it is keyed as text)."""
MAX_JSON_ITEMS = 2_000_000
"""JSON with more `[`, `{` and `,` (outside strings) than this is not treated as JSON (it is
keyed as text): each can cost a Python object (a Decimal is ~100 bytes), so a few MB of
`[[],[],…]` would otherwise parse into GBs. Real request bodies stay far below it."""

_JSON_WS = " \t\r\n"
_SURROGATE = re.compile("[\ud800-\udfff]")
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length"})


# -- content decoding ----------------------------------------------------------------------


DEFAULT_MAX_BODY = 64 * 2**20
"""The default cap on decoded content (`replay_max_body`): 64 MiB, far above real requests."""

_PIECE = 64 * 1024
"""Output produced per step of a capped decoder."""
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_RATIO = 32768
"""zstd's worst expansion: a 4-byte RLE block that stands for 128 KiB."""


def decode_content(
    body: bytes, content_encoding: str | None, limit: int = DEFAULT_MAX_BODY
) -> bytes:
    """Undo `content-encoding` (a comma list, applied in order, so undone in reverse).

    Knows gzip/x-gzip, deflate (zlib-wrapped or raw), br, zstd and identity. An empty body
    stays empty. Raises ValueError naming the coding on undecodable data or an unknown coding,
    and BodyTooLarge as soon as any stage's output passes `limit` bytes: decoding is
    streamed and stops there, so a bomb never costs much more than `limit` bytes (see `unzstd`
    for zstd's bound). The input itself is not measured against `limit`.
    """
    if not content_encoding or not body:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        body = _decode_one(body, coding, limit)
    return body


def _decode_one(body: bytes, coding: str, limit: int) -> bytes:
    decoder = _DECODERS.get(coding)
    if decoder is None:
        raise ValueError(f"unknown content-encoding {coding!r}")
    try:
        return decoder(body, limit)
    except BodyTooLarge:
        raise
    except Exception as e:  # each codec has its own error type (OSError, zlib.error, ...)
        raise ValueError(f"cannot decode {coding!r} content: {e}") from e


def _identity(body: bytes, limit: int) -> bytes:
    if len(body) > limit:
        raise BodyTooLarge(limit)
    return body


class _Output:
    """Decoded pieces and their total, refused past `limit`. A list, not a bytearray: a
    growing bytearray's reallocations would copy the whole output, doubling the peak."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._pieces: list[bytes] = []

    @property
    def room(self) -> int:
        """Bytes that may still come (at least 1, so that one more proves the cap passed)."""
        return self.limit + 1 - self.size

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise BodyTooLarge(self.limit)
        if piece:
            self._pieces.append(piece)

    def value(self) -> bytes:
        return self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)


def _zlib_capped(body: bytes, limit: int, wbits: int, members: bool) -> bytes:
    """Inflate with zlib's own output cap (`max_length`): never more than `limit` + 1 bytes.
    `members`: gzip may hold several members back to back (as `gzip.decompress` reads)."""
    out = _Output(limit)
    rest = body
    while rest:
        d = zlib.decompressobj(wbits)
        data = rest
        while not d.eof:
            piece = d.decompress(data, min(_PIECE, out.room))
            out.add(piece)
            data = d.unconsumed_tail
            if not data and not piece:  # input used up, nothing pending, no end seen
                raise ValueError("truncated stream")
        rest = d.unused_data if members else b""
        if members and not rest.strip(b"\0"):
            break  # trailing zero padding, as gzip.decompress allows
    return out.value()


def _gunzip(body: bytes, limit: int) -> bytes:
    return _zlib_capped(body, limit, 31, members=True)


def _inflate(body: bytes, limit: int) -> bytes:
    try:
        return _zlib_capped(body, limit, zlib.MAX_WBITS, members=False)
    except zlib.error:
        # Some clients send raw deflate (RFC 1951) without the zlib wrapper.
        return _zlib_capped(body, limit, -zlib.MAX_WBITS, members=False)


def unzstd(body: bytes, limit: int, dictionary: ZstdCompressionDict | None = None) -> bytes:
    """Every zstd frame of `body` (back to back, each may lack a content size), capped;
    frames that name a dictionary need it as `dictionary` (`replay compact`).

    Raises BodyTooLarge once the output passes `limit` bytes, ValueError on a truncated or
    bad frame. The input is fed in slices small enough that one step cannot produce more
    than an eighth of what is left of `limit` (zstd's worst ratio is 32768:1), so the output
    never grows past 1.125 times `limit` (plus 2 MiB) before the check stops it. A file
    within the cap costs twice its size for a moment (the final copy).
    """
    import zstandard

    out = _Output(limit)
    rest = body
    try:
        while rest:  # one decompressobj per frame
            if rest[:4] != _ZSTD_MAGIC:
                raise ValueError(f"not a zstd frame at byte {len(body) - len(rest)}")
            d = zstandard.ZstdDecompressor(dict_data=dictionary).decompressobj()
            pos = 0
            while not d.eof:
                if pos >= len(rest):
                    raise ValueError("truncated frame")
                # one step can add at most an eighth of what is left (plus 2 MiB at the end)
                step = min(128 * 1024, max(64, out.room // (8 * _ZSTD_RATIO)))
                out.add(d.decompress(rest[pos : pos + step]))
                pos += step
            rest = bytes(d.unused_data) + rest[pos:]
    except zstandard.ZstdError as e:
        raise ValueError(str(e)) from None
    return out.value()


def _unbrotli(body: bytes, limit: int) -> bytes:
    import brotli  # lazily: only brotli-encoded requests pay for the import

    d = brotli.Decompressor()
    out = _Output(limit)
    out.add(d.process(body, output_buffer_limit=_PIECE))
    while not d.is_finished():
        if d.can_accept_more_data():
            raise ValueError("truncated stream")
        out.add(d.process(b"", output_buffer_limit=_PIECE))
    return out.value()


_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "identity": _identity,
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
    "zstd": unzstd,
}


def incremental_decoder(coding: str) -> Callable[[bytes], bytes] | None:
    """A decoder for one content-coding that takes a body piece by piece (a recorded
    stream, chunk by chunk), or None for a coding it does not know."""
    coding = coding.strip().lower()
    if coding in ("gzip", "x-gzip"):
        gunzip = zlib.decompressobj(wbits=31)
        return lambda data: gunzip.decompress(data)
    if coding == "deflate":
        return _IncrementalInflate()
    if coding == "br":
        import brotli  # lazily, as in _unbrotli

        return brotli.Decompressor().process  # type: ignore[no-any-return]
    if coding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress
    return None


class _IncrementalInflate:
    """`deflate` pieces: zlib-wrapped by the standard, raw in practice (as in `_inflate`)."""

    def __init__(self) -> None:
        self._obj: zlib._Decompress | None = None

    def __call__(self, data: bytes) -> bytes:
        if self._obj is None:
            raw = bool(data) and (data[0] & 0x0F) != 8
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        return self._obj.decompress(data)


def decoded_request(request: Request, limit: int = DEFAULT_MAX_BODY) -> Request:
    """`request` with its body content-decoded and the framing headers dropped.

    When the body has no `content-encoding`, or cannot be decoded, the request is returned
    unchanged (an undecodable body is kept, and keyed, as the bytes that were sent).
    Raises BodyTooLarge when the body decodes to more than `limit` bytes (a body sent
    without a content-encoding is not measured here: the edge checks its size).
    """
    encoding = header_values(request, "content-encoding")
    if encoding is None:
        return request
    try:
        body = decode_content(request.body, encoding, limit)
    except ValueError:
        return request
    return replace(request, body=body, headers=without_headers(request.headers, _FRAMING_HEADERS))


def header_values(request: Request, name: str) -> str | None:
    """Every value of header `name` joined with ", " (HTTP's list rule), or None."""
    lname = name.lower()
    values = [v for k, v in request.headers if k.lower() == lname]
    return ", ".join(values) if values else None


# -- JSON ----------------------------------------------------------------------------------


def parse_json(data: bytes) -> object | None:
    """The parsed value if `data` is UTF-8 JSON whose top level is an object or array.

    Numbers become `decimal.Decimal` (so 1, 1.0 and 1e0 are equal). Duplicate keys: the
    last one wins. None for anything else: invalid UTF-8, a leading byte-order mark, other
    top-level values, NaN/Infinity, exponents beyond Decimal's range, nesting deeper than
    MAX_JSON_DEPTH, more items than MAX_JSON_ITEMS.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.lstrip(_JSON_WS)[:1] not in ("{", "["):
        return None
    if json_items(data, MAX_JSON_ITEMS) > MAX_JSON_ITEMS:
        return None  # would parse into far more memory than its size
    if json_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None  # never handed to the (recursive) parser
    try:
        value: object = json.loads(
            text, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant
        )
    except (ValueError, ArithmeticError, RecursionError):
        return None
    return value


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?')
"""A JSON string, escapes included (an unterminated one runs to the end)."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def _structure(data: bytes) -> bytes:
    """`data` without its JSON strings: what is left is structure (C-speed passes only)."""
    return _JSON_STRING.sub(b"", data) if b'"' in data else data


def json_depth(data: bytes, stop_at: int | None = None) -> int:
    """How deep the arrays and objects of JSON text `data` nest (0 for a scalar), without
    parsing it and without recursion; brackets inside strings do not count.

    With `stop_at`, text with no more brackets than `stop_at` is not scanned at all (cheap
    for ordinary bodies): the result is then only a bound, itself at most `stop_at`, so
    `json_depth(d, n) > n` exactly when `d` nests deeper than `n`."""
    if stop_at is not None:
        brackets = data.count(b"[") + data.count(b"{")
        if brackets <= stop_at:
            return brackets
    steps = _structure(data).translate(_STEPS, _NOT_BRACKETS)  # opener 2, closer 0
    return max(accumulate(map(operator.sub, steps, repeat(1))), default=0)


def json_items(data: bytes, stop_at: int | None = None) -> int:
    """How many `[`, `{` and `,` JSON text `data` holds outside strings: a bound on the
    objects a parser makes of it (each value but the first needs one). Cheap for ordinary
    bodies: text with no more of these bytes than `stop_at` in all is not scanned."""
    if stop_at is not None:
        upper = data.count(b"[") + data.count(b"{") + data.count(b",")
        if upper <= stop_at:
            return upper
    rest = _structure(data)
    return rest.count(b"[") + rest.count(b"{") + rest.count(b",")


def check_json_depth(data: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise JsonTooDeep if JSON text `data` nests deeper than `limit`; see `json_depth`.

    For the edge that accepts request bodies: a parser (the standard library's included)
    recurses once per level, so a body nested 200,000 deep is refused here, before anything
    parses it. Bytes that are not JSON pass if their brackets do not nest too deep."""
    if json_depth(data, limit) > limit:
        raise JsonTooDeep(limit)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def canonical_json(value: object) -> str:
    """The canonical JSON text of `value` (docs/matching.md, "Canonical JSON").

    Objects with keys sorted by code point, no whitespace, strings as UTF-8 escaping only
    what JSON requires, numbers by value (`canonical_number`). Accepts dict (str keys),
    list, tuple, str, bool, None, Decimal, int and finite float; TypeError otherwise.
    """
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def canonical_digest(value: object) -> str:
    """The SHA-256 hex digest of `canonical_json(value)` encoded as UTF-8, computed piece by
    piece: a request of tens of MB is never held as one more string and one more bytes."""
    digest = _Digest()
    _encode(value, digest)
    return digest.hash.hexdigest()


class _Digest:
    """A sink for `_encode` that hashes each piece as it comes instead of keeping it."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def append(self, piece: str) -> None:
        self.hash.update(piece.encode("utf-8"))


_SLICE = 2**20
"""Strings longer than this are escaped in slices: JSON escapes code point by code point,
so the escaped slices joined are the escaped string."""


class _Sink(Protocol):
    def append(self, piece: str, /) -> None: ...


def _encode(value: object, out: _Sink) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        if len(value) > _SLICE:  # a long prompt: escaped a slice at a time
            out.append('"')
            for start in range(0, len(value), _SLICE):
                out.append(_string(value[start : start + _SLICE])[1:-1])
            out.append('"')
        else:
            out.append(_string(value))
    elif isinstance(value, Decimal | int | float):
        out.append(canonical_number(value))
    elif isinstance(value, dict):
        _encode_object(value, out)
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"canonical_json cannot encode {type(value).__name__}")


def _encode_object(value: dict[object, object], out: _Sink) -> None:
    keys = [k for k in value if isinstance(k, str)]
    if len(keys) != len(value):
        raise TypeError("canonical_json: object keys must be strings")
    out.append("{")
    for i, key in enumerate(sorted(keys)):  # str order is code point order
        if i:
            out.append(",")
        out.append(_string(key))
        out.append(":")
        _encode(value[key], out)
    out.append("}")


def _string(text: str) -> str:
    dumped = json.dumps(text, ensure_ascii=False)
    if _SURROGATE.search(dumped):  # lone surrogates (from "\ud800" escapes) can't be UTF-8
        dumped = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)
    return dumped


def canonical_number(number: Decimal | int | float) -> str:
    """A number by value: `0`, or `-?` mantissa digits without trailing zeros, then `e<exp>`
    when the exponent is not zero. 1.5 -> 15e-1, 100 -> 1e2, 1 -> 1, -0.25 -> -25e-2.

    Exact at any size and precision (no Decimal context is involved).
    """
    if isinstance(number, float):
        number = Decimal(repr(number))  # the shortest repr round-trips the float
    elif isinstance(number, int):
        number = Decimal(number)
    if not number.is_finite():
        raise ValueError(f"canonical_json: {number} is not a JSON number")
    sign, digit_tuple, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    mantissa = ("-" if sign else "") + stripped
    return f"{mantissa}e{exponent}" if exponent else mantissa


# -- ignore paths --------------------------------------------------------------------------


def remove_paths(value: object, paths: tuple[str, ...]) -> object:
    """`value` without the parts named by `paths` (dotted; see docs/matching.md).

    A segment is an object key, a decimal index on an array (a key on an object), or `*`
    (every key or element). All paths are matched against the original value, so their
    order never matters. A path that names nothing is a no-op. `value` is not modified;
    untouched subtrees are shared with the result.
    """
    if not paths:
        return value
    return _without(value, [tuple(p.split(".")) for p in paths])


def _without(value: object, paths: list[tuple[str, ...]]) -> object:
    if isinstance(value, dict):
        kept_items: dict[object, object] = {}
        for key, item in value.items():
            sub = _subpaths(paths, str(key))
            if sub is None:
                continue
            kept_items[key] = _without(item, sub) if sub else item
        return kept_items
    if isinstance(value, list):
        kept: list[object] = []
        for index, item in enumerate(value):
            sub = _subpaths(paths, str(index))
            if sub is not None:
                kept.append(_without(item, sub) if sub else item)
        return kept
    return value


def _subpaths(paths: list[tuple[str, ...]], segment: str) -> list[tuple[str, ...]] | None:
    """The rests of the paths that enter `segment`; None when one of them ends there."""
    rests: list[tuple[str, ...]] = []
    for head, *rest in paths:
        if head in ("*", segment):
            if not rest:
                return None
            rests.append(tuple(rest))
    return rests


# -- body material -------------------------------------------------------------------------


def body_material(
    data: bytes, content_type: str | None = None, ignore: tuple[str, ...] = ()
) -> dict[str, object]:
    """The tagged canonical form of a (decoded, scrubbed) body, first rule that applies:

    `{"empty": true}`; `{"json": value}` with `ignore` paths removed; `{"multipart": parts}`
    when `content_type` is multipart/* and the body parses; `{"text": str}` for UTF-8;
    else `{"sha256": hex}`.
    """
    if not data:
        return {"empty": True}
    value = parse_json(data)
    if value is not None:
        return {"json": remove_paths(value, ignore)}
    if content_type is not None:
        parts = multipart_parts(data, content_type)
        if parts is not None:
            return {"multipart": parts}
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"sha256": hashlib.sha256(data).hexdigest()}


# -- multipart -----------------------------------------------------------------------------


def multipart_parts(body: bytes, content_type: str) -> list[dict[str, object]] | None:
    """The parts of a multipart/* body, in order, without the boundary.

    Each part is {"name", "filename", "content_type", "body"}: the first two from its
    Content-Disposition (None when absent), the third its Content-Type value (None when
    absent), "body" its `body_material` (never multipart again, never with ignore paths).
    None when `content_type` is not multipart with a boundary or the body does not parse.
    """
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_boundary()
    if header.get_content_maintype() != "multipart" or not boundary:
        return None
    raw_parts = _split_parts(body, boundary.encode("utf-8", "replace"))
    if raw_parts is None:
        return None
    parts: list[dict[str, object]] = []
    for raw in raw_parts:
        part = _parse_part(raw)
        if part is None:
            return None
        parts.append(part)
    return parts


def _split_parts(body: bytes, boundary: bytes) -> list[bytes] | None:
    """The raw parts between `--boundary` lines; None unless the close delimiter is found."""
    delimiter = b"\r\n--" + boundary  # every delimiter but a leading first one has the CRLF
    if body.startswith(delimiter[2:]):
        pos = len(delimiter) - 2
    else:
        first = body.find(delimiter)  # whatever precedes it is the preamble
        if first < 0:
            return None
        pos = first + len(delimiter)
    parts: list[bytes] = []
    while body[pos : pos + 2] != b"--":  # "--" right after a delimiter closes the body
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            return None
        end = body.find(delimiter, line_end + 2)
        if end < 0:
            return None
        parts.append(body[line_end + 2 : end])
        pos = end + len(delimiter)
    return parts


def _parse_part(raw: bytes) -> dict[str, object] | None:
    if raw.startswith(b"\r\n"):
        head, data = b"", raw[2:]
    else:
        head, sep, data = raw.partition(b"\r\n\r\n")
        if not sep:
            return None
    headers = Message()
    for header, value in _header_lines(head.decode("utf-8", "replace")):
        headers[header] = value
    name = headers.get_param("name", header="content-disposition")
    filename = headers.get_filename()
    content_type = headers.get("content-type")
    return {
        "name": collapse_rfc2231_value(name) if name is not None else None,
        "filename": filename,
        "content_type": str(content_type).strip() if content_type is not None else None,
        "body": body_material(data),
    }


def _header_lines(head: str) -> Iterator[tuple[str, str]]:
    """(name, value) pairs of a part's header block, folded lines unfolded."""
    lines: list[str] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        elif line:
            lines.append(line)
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            yield name.strip(), value.strip()
