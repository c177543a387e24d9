"""The on-disk format of one interaction: versioned JSON in a zstd frame.

Owns the document shape (`to_document` / `from_document`), its versioning and its
compression (`encode` / `decode`), and the rounding of times to the microsecond. Does not
know where files live (that is `store.py`), how fingerprints are computed, or what a secret
is: `encode` only accepts a `RedactedInteraction`, which `redact.py` alone builds.

The format is described field by field in docs/format.md. A file reads by hand with
`zstd -dc FILE | jq .`: the JSON keeps text as text (request bodies and response chunks
that are valid UTF-8) and falls back to base64 only for bytes that are not.

Dictionaries (`replay compact`): a frame that names a zstd dictionary is read with the file
`<id>.dict` found in the file's directory or the nearest one above it (the store root);
`encode` compresses with a dictionary when given one (`newest_dictionary(root)`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import zstandard

from replay.canonical import DEFAULT_MAX_BODY, MAX_JSON_ITEMS, json_items, unzstd
from replay.errors import BodyTooLarge, CorruptEntry, FormatVersionError
from replay.models import (
    Chunk,
    Interaction,
    Key,
    Provenance,
    RedactedInteraction,
    Request,
    ResponseHead,
)

FORMAT_NAME = "llm-replay"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

COMPRESSION_LEVEL = 9
"""zstd level for new files; chosen by measurement, see docs/format.md ("Compression")."""

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Document = dict[str, Any]
"""A decoded JSON document (the top-level object of a file)."""


# --- Interaction -> document -------------------------------------------------------------


def to_ms(seconds: float) -> float:
    """Seconds as milliseconds rounded to the microsecond (3 decimals), as files store them."""
    return round(seconds * 1000.0, 3)


def from_ms(ms: float) -> float:
    """Milliseconds from a file back to seconds; `to_ms(from_ms(x)) == x` for stored values."""
    return ms / 1000.0


def normalize(interaction: Interaction) -> Interaction:
    """The interaction exactly as it reads back from a file: times rounded to the microsecond.

    `decode(encode(ri)) == normalize(ri.interaction)`, and `normalize` is idempotent.
    """
    chunks = tuple(Chunk(from_ms(to_ms(c.offset)), c.data) for c in interaction.chunks)
    return replace(interaction, ttfb=from_ms(to_ms(interaction.ttfb)), chunks=chunks)


def _body(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _pairs(pairs: tuple[tuple[str, str], ...]) -> list[list[str]]:
    return [[k, v] for k, v in pairs]


def _chunk(chunk: Chunk) -> dict[str, Any]:
    return {"offset_ms": to_ms(chunk.offset), **_body(chunk.data)}


def to_document(interaction: Interaction) -> Document:
    """The JSON-ready document of an interaction (the content of a file, uncompressed)."""
    i = interaction
    req, resp, prov = i.request, i.response, i.provenance
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "key": {
            "namespace": i.key.namespace,
            "fingerprint": i.key.fingerprint,
            "occurrence": i.key.occurrence,
        },
        "fingerprint": {"version": i.fingerprint_version, "ignore": list(i.ignore)},
        "provenance": {
            "recorded_at": prov.recorded_at,
            "provider": prov.provider,
            "model": prov.model,
            "user_agent": prov.user_agent,
            "upstream_status": prov.upstream_status,
            "tool_version": prov.tool_version,
        },
        "request": {
            "method": req.method,
            "url": req.url,
            "scheme": req.scheme,
            "host": req.host,
            "port": req.port,
            "path": req.path,
            "query": _pairs(req.query),
            "headers": _pairs(req.headers),
            "body": _body(req.body),
        },
        "response": {
            "status": resp.status,
            "reason": resp.reason,
            "http_version": resp.http_version,
            "headers": _pairs(resp.headers),
            "ttfb_ms": to_ms(i.ttfb),
            "complete": i.complete,
            "chunks": [_chunk(c) for c in i.chunks],
        },
    }


def dumps(document: Document) -> bytes:
    """A document as compact UTF-8 JSON (non-ASCII kept readable when it can be)."""
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a header decoded with surrogateescape, say) has no UTF-8 form;
        # \u escapes keep the file valid UTF-8 JSON and round-trip to the same string.
        text = json.dumps(document, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        return text.encode("ascii")


def encode(
    ri: RedactedInteraction,
    level: int = COMPRESSION_LEVEL,
    dictionary: zstandard.ZstdCompressionDict | None = None,
    limit: int | None = None,
) -> bytes:
    """The bytes of a file holding `ri`: one zstd frame (with checksum) of UTF-8 JSON,
    compressed with `dictionary` if given (its id is then in the frame header).

    Raises ValueError for values JSON cannot hold (a NaN time, say), and for a document
    larger than `limit` bytes (a file `decode` would refuse with that limit).
    """
    if not isinstance(ri, RedactedInteraction):
        raise TypeError(f"encode() takes a RedactedInteraction, not {type(ri).__name__}")
    document = dumps(to_document(ri.interaction))
    if limit is not None and len(document) > limit:
        raise ValueError(
            f"its document is {len(document)} bytes, more than replay_max_body ({limit})"
        )
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, dict_data=dictionary)
    return compressor.compress(document)


# --- dictionaries (`replay compact`) ------------------------------------------------------

DICTIONARY_SUFFIX = ".dict"
_DICTIONARY_LEVELS = 16
"""How many directories above a file are searched for its dictionary."""


def dictionary_name(dict_id: int) -> str:
    return f"{dict_id}{DICTIONARY_SUFFIX}"


@lru_cache(maxsize=8)
def _load_dictionary(path: str, signature: tuple[int, int]) -> zstandard.ZstdCompressionDict:
    with open(path, "rb") as f:
        return zstandard.ZstdCompressionDict(f.read())


def load_dictionary(path: str | Path) -> zstandard.ZstdCompressionDict:
    """The dictionary in file `path` (cached while the file is unchanged); OSError."""
    st = os.stat(path)
    return _load_dictionary(str(path), (st.st_mtime_ns, st.st_size))


def find_dictionary(dict_id: int, path: str) -> zstandard.ZstdCompressionDict | None:
    """Dictionary `dict_id` for the file at `path`: `<id>.dict` in its directory or the
    nearest directory above that has one; None if there is none."""
    directory = os.path.dirname(os.path.abspath(path))
    for _ in range(_DICTIONARY_LEVELS):
        candidate = os.path.join(directory, dictionary_name(dict_id))
        try:
            found = load_dictionary(candidate)
        except OSError:
            found = None
        if found is not None and found.dict_id() == dict_id:
            return found
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return None


def newest_dictionary(root: str | Path) -> zstandard.ZstdCompressionDict | None:
    """The most recently written `*.dict` at the store root (what new files use), or None."""
    try:
        names = [n for n in os.listdir(root) if n.endswith(DICTIONARY_SUFFIX)]
    except OSError:
        return None
    stamped = []
    for name in names:
        try:
            stamped.append((os.stat(os.path.join(root, name)).st_mtime_ns, name))
        except OSError:
            continue
    for _, name in sorted(stamped, reverse=True):
        try:
            return load_dictionary(os.path.join(root, name))
        except (OSError, zstandard.ZstdError):
            continue
    return None


# --- bytes -> document -> Interaction ----------------------------------------------------


class _Invalid(Exception):
    """A document field is missing or has the wrong type; the message names the field."""


def decompress(data: bytes, path: str = "<bytes>", limit: int = DEFAULT_MAX_BODY) -> bytes:
    """The content of a zstd file (one frame or several back to back), or CorruptEntry.

    Decompression is streamed and stops once the content passes `limit` bytes (a "bomb":
    reported as a CorruptEntry like any bad file); see `canonical.unzstd` for the bound.
    """
    if data[:4] != _ZSTD_MAGIC:
        raise CorruptEntry(path, "not a zstd frame")
    try:
        dict_id = zstandard.get_frame_parameters(data).dict_id
    except zstandard.ZstdError as exc:
        raise CorruptEntry(path, f"bad zstd frame header: {exc}") from None
    dictionary = None
    if dict_id:
        dictionary = find_dictionary(dict_id, path)
        if dictionary is None:
            reason = f"compressed with zstd dictionary {dict_id}: no {dictionary_name(dict_id)}"
            raise CorruptEntry(path, reason + " in its directory or above")
    try:
        return unzstd(data, limit, dictionary)
    except BodyTooLarge:
        raise CorruptEntry(
            path, f"decompresses to more than {limit} bytes (replay_max_body)"
        ) from None
    except ValueError as exc:
        raise CorruptEntry(path, f"zstd: {exc}") from None


def decode(data: bytes, path: str = "<bytes>", limit: int = DEFAULT_MAX_BODY) -> Interaction:
    """The interaction in a file's bytes.

    Raises CorruptEntry(path, reason) when the bytes are not zstd, decompress to more than
    `limit` bytes, are not UTF-8 JSON, hold more than MAX_JSON_ITEMS items (a document
    made to parse into GBs: a real one has a few per chunk), or are not a valid document,
    and FormatVersionError for an llm-replay document of an unknown version.
    """
    raw = decompress(data, path, limit)
    if json_items(raw, MAX_JSON_ITEMS) > MAX_JSON_ITEMS:
        raise CorruptEntry(path, f"not a cassette: more than {MAX_JSON_ITEMS} JSON items")
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise CorruptEntry(path, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        raise CorruptEntry(path, f"not JSON: {exc}") from None
    return from_document(document, path)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def from_document(document: object, path: str = "<document>") -> Interaction:
    """The interaction a decoded document describes; CorruptEntry / FormatVersionError."""
    try:
        doc = _obj(document, "document")
        if doc.get("format") != FORMAT_NAME:
            raise _Invalid(f'"format" is {doc.get("format")!r}, not {FORMAT_NAME!r}')
        version = _int(doc, "version", "")
        if version not in SUPPORTED_VERSIONS:
            raise FormatVersionError(
                path,
                f"format version {version} is not supported by this release "
                f"(it reads {', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})",
            )
        return _interaction_v1(doc)
    except _Invalid as exc:
        raise CorruptEntry(path, str(exc)) from None


def _interaction_v1(doc: dict[str, Any]) -> Interaction:
    key = _obj(_get(doc, "key", ""), "key")
    fp = _obj(_get(doc, "fingerprint", ""), "fingerprint")
    prov = _obj(_get(doc, "provenance", ""), "provenance")
    req = _obj(_get(doc, "request", ""), "request")
    resp = _obj(_get(doc, "response", ""), "response")
    ignore = _list(_get(fp, "ignore", "fingerprint."), "fingerprint.ignore")
    return Interaction(
        key=Key(
            namespace=_str(key, "namespace", "key."),
            fingerprint=_str(key, "fingerprint", "key."),
            occurrence=_int(key, "occurrence", "key."),
        ),
        fingerprint_version=_int(fp, "version", "fingerprint."),
        ignore=tuple(_as_str(v, f"fingerprint.ignore[{n}]") for n, v in enumerate(ignore)),
        request=Request(
            method=_str(req, "method", "request."),
            scheme=_str(req, "scheme", "request."),
            host=_str(req, "host", "request."),
            port=_int(req, "port", "request."),
            path=_str(req, "path", "request."),
            query=_pairs_of(req, "query", "request."),
            headers=_pairs_of(req, "headers", "request."),
            body=_bytes(_get(req, "body", "request."), "request.body"),
        ),
        response=ResponseHead(
            status=_int(resp, "status", "response."),
            reason=_str(resp, "reason", "response."),
            http_version=_str(resp, "http_version", "response."),
            headers=_pairs_of(resp, "headers", "response."),
        ),
        ttfb=from_ms(_num(resp, "ttfb_ms", "response.")),
        chunks=_chunks(_list(_get(resp, "chunks", "response."), "response.chunks")),
        complete=_bool(resp, "complete", "response."),
        provenance=Provenance(
            recorded_at=_str(prov, "recorded_at", "provenance."),
            provider=_str(prov, "provider", "provenance."),
            model=_opt_str(prov, "model", "provenance."),
            user_agent=_opt_str(prov, "user_agent", "provenance."),
            upstream_status=_int(prov, "upstream_status", "provenance."),
            tool_version=_str(prov, "tool_version", "provenance."),
        ),
    )


def _chunks(items: list[Any]) -> tuple[Chunk, ...]:
    chunks = []
    for n, item in enumerate(items):
        where = f"response.chunks[{n}]"
        obj = _obj(item, where)
        chunks.append(Chunk(from_ms(_num(obj, "offset_ms", where + ".")), _bytes(obj, where)))
    return tuple(chunks)


# --- field readers: each names the field it rejects ---------------------------------------


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{where}: expected an object, got {_type_name(value)}")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"{where}: expected a list, got {_type_name(value)}")
    return value


def _get(obj: dict[str, Any], name: str, prefix: str) -> Any:
    if name not in obj:
        raise _Invalid(f"{prefix}{name}: missing")
    return obj[name]


def _as_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{where}: expected a string, got {_type_name(value)}")
    return value


def _str(obj: dict[str, Any], name: str, prefix: str) -> str:
    return _as_str(_get(obj, name, prefix), prefix + name)


def _opt_str(obj: dict[str, Any], name: str, prefix: str) -> str | None:
    value = _get(obj, name, prefix)
    return None if value is None else _as_str(value, prefix + name)


def _int(obj: dict[str, Any], name: str, prefix: str) -> int:
    value = _get(obj, name, prefix)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{prefix}{name}: expected an integer, got {_type_name(value)}")
    return value


def _bool(obj: dict[str, Any], name: str, prefix: str) -> bool:
    value = _get(obj, name, prefix)
    if not isinstance(value, bool):
        raise _Invalid(f"{prefix}{name}: expected true or false, got {_type_name(value)}")
    return value


def _num(obj: dict[str, Any], name: str, prefix: str) -> float:
    value = _get(obj, name, prefix)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{prefix}{name}: expected a number, got {_type_name(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise _Invalid(f"{prefix}{name}: expected a finite number >= 0, got {value!r}")
    return number


def _pairs_of(obj: dict[str, Any], name: str, prefix: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for n, item in enumerate(_list(_get(obj, name, prefix), prefix + name)):
        where = f"{prefix}{name}[{n}]"
        pair = _list(item, where)
        if len(pair) != 2:
            raise _Invalid(f"{where}: expected a [name, value] pair, got {len(pair)} items")
        pairs.append((_as_str(pair[0], where + "[0]"), _as_str(pair[1], where + "[1]")))
    return tuple(pairs)


def _bytes(value: object, where: str) -> bytes:
    """Bytes from an object holding exactly one of "text" (UTF-8) or "base64"."""
    obj = _obj(value, where)
    has_text, has_b64 = "text" in obj, "base64" in obj
    if has_text == has_b64:
        raise _Invalid(f'{where}: expected exactly one of "text" or "base64"')
    if has_text:
        try:
            return _as_str(obj["text"], where + ".text").encode("utf-8")
        except UnicodeEncodeError:
            raise _Invalid(f"{where}.text: a lone surrogate has no UTF-8 form") from None
    try:
        return base64.b64decode(_as_str(obj["base64"], where + ".base64"), validate=True)
    except binascii.Error as exc:
        raise _Invalid(f"{where}.base64: {exc}") from None
