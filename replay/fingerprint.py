"""The request key: the canonical material of a request and its SHA-256.

Owns FINGERPRINT_VERSION, the header allow-list, the layout of the material (method,
scheme, authority, path, query, headers, body), its hash, `decoded_request` (the form the
store keeps) and `first_difference` (which field two materials first differ in). The exact
grammar is docs/matching.md; a change to anything here that changes a hash is a new
FINGERPRINT_VERSION.

Does not own: body canonicalisation (canonical.py), what a secret is (redact.py: every
string is scrubbed before it enters the material, so a fingerprint never depends on a
secret), the near-miss search (it comes with #3), or where the request came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from replay import canonical
from replay.models import DEFAULT_PORTS, Request
from replay.redact import SECRET_PARAMS, redact_user, scrub_body, scrub_text

FINGERPRINT_VERSION = 1

HEADER_ALLOWLIST = frozenset({"anthropic-version", "anthropic-beta", "openai-beta"})
"""Request headers (lower-case) that change the answer and so are part of the key."""

MATERIAL_ORDER = ("v", "method", "scheme", "authority", "path", "query", "headers", "body")
"""The order in which `first_difference` compares the top-level fields."""


@dataclass(frozen=True, slots=True)
class Normalizer:
    """A regex whose matches in request strings are replaced before fingerprinting (the
    rules file's `settings.normalize`)."""

    pattern: re.Pattern[str]
    replace: str = ""
    """Literal text (no group references)."""

    def apply(self, text: str) -> str:
        return self.pattern.sub(lambda _: self.replace, text)


@dataclass(frozen=True, slots=True)
class FingerprintPolicy:
    """What the user chose to leave out of the key."""

    ignore: tuple[str, ...] = ()
    """JSON body paths (`replay_ignore`) removed before hashing."""
    normalize: tuple[Normalizer, ...] = ()
    """Applied to the body's JSON strings (or its text) before hashing."""
    redact: tuple[re.Pattern[str], ...] = ()
    """The user's redaction patterns (rules file `settings.redact`): their matches are
    replaced as in the stored request, so that a stored request keys like its original."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A request's key: `hex` is the SHA-256 of `canonical_json(material)`."""

    hex: str
    material: dict[str, object]
    """The canonical form that was hashed; JSON numbers in it are Decimals. Serialise it
    with `canonical.canonical_json` and read it back with `canonical.parse_json`."""
    version: int


MEMO_MAX_BODY = 64 * 1024
"""Requests with bodies up to this size have their fingerprints memoised (LRU)."""


def fingerprint(request: Request, policy: FingerprintPolicy) -> Fingerprint:
    """The key of `request` under `policy` (docs/matching.md, "The material").

    A test suite repeats the same requests: a small LRU keyed by the whole request (all
    headers and body bytes: identical input, identical key) spares the parsing, scrubbing
    and hashing. Treat the returned material as read-only.
    """
    if len(request.body) <= MEMO_MAX_BODY:
        return _memoised(request, policy)
    return _fingerprint(request, policy)


@lru_cache(maxsize=1024)
def _memoised(request: Request, policy: FingerprintPolicy) -> Fingerprint:
    return _fingerprint(request, policy)


def _fingerprint(request: Request, policy: FingerprintPolicy) -> Fingerprint:
    material = _material(request, policy)
    return Fingerprint(
        hex=canonical.canonical_digest(material),
        material=material,
        version=FINGERPRINT_VERSION,
    )


def material(request: Request, policy: FingerprintPolicy) -> dict[str, object]:
    """The canonical material that `fingerprint` hashes, freshly built (not memoised, so
    the caller may keep or change it). A stored request gives its original's material."""
    return _material(request, policy)


def _material(request: Request, policy: FingerprintPolicy) -> dict[str, object]:
    if policy.redact:
        request = redact_user(canonical.decoded_request(request), policy.redact)
    return {
        "v": FINGERPRINT_VERSION,
        "method": request.method.upper(),
        "scheme": request.scheme.lower(),
        "authority": _authority(request),
        "path": scrub_text(request.path),
        "query": _query(request.query),
        "headers": _headers(request),
        "body": _body(request, policy),
    }


def _authority(request: Request) -> str:
    host = request.host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal, bracketed as in a URL
    if DEFAULT_PORTS.get(request.scheme.lower()) == request.port:
        return host
    return f"{host}:{request.port}"


def _query(query: tuple[tuple[str, str], ...]) -> list[list[str]]:
    pairs = [
        [name, scrub_text(value)] for name, value in query if name.lower() not in SECRET_PARAMS
    ]
    return sorted(pairs)


def _headers(request: Request) -> dict[str, str]:
    names = sorted({k.lower() for k, _ in request.headers} & HEADER_ALLOWLIST)
    return {name: scrub_text(str(canonical.header_values(request, name))) for name in names}


def _body(request: Request, policy: FingerprintPolicy) -> dict[str, object]:
    request = canonical.decoded_request(request)
    content_type = request.header("content-type")
    body = scrub_body(request.body, content_type)
    tagged = canonical.body_material(body, content_type, policy.ignore)
    if policy.normalize and ("json" in tagged or "text" in tagged):  # not digests, parts
        tagged = {tag: _normalized(value, policy.normalize) for tag, value in tagged.items()}
    return tagged


def _normalized(value: object, rules: tuple[Normalizer, ...]) -> object:
    """`value` with every string in it (keys aside) rewritten by the normalisers."""
    if isinstance(value, str):
        for rule in rules:
            value = rule.apply(value)
        return value
    if isinstance(value, dict):
        return {k: _normalized(v, rules) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v, rules) for v in value]
    return value


def decoded_request(request: Request) -> Request:
    """`request` with its body content-decoded (when decodable) and `content-encoding` and
    `content-length` dropped: the form the store keeps. Its fingerprint is the original's."""
    return canonical.decoded_request(request)


def first_difference(a: dict[str, object], b: dict[str, object]) -> str | None:
    """The dotted path of the first field where materials `a` and `b` differ, or None.

    Top-level fields in MATERIAL_ORDER (then any others sorted), then recursively: object
    keys sorted, array elements by index. Leaves compare by their canonical JSON, so 1 and
    1.0 are equal and true is not 1. A key or element that only one side has differs.
    """
    order = [k for k in MATERIAL_ORDER if k in a or k in b]
    order += sorted((a.keys() | b.keys()) - set(MATERIAL_ORDER))
    for key in order:
        found = _difference(a.get(key, _MISSING), b.get(key, _MISSING), key)
        if found is not None:
            return found
    return None


_MISSING = object()


def _difference(a: object, b: object, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            found = _difference(a.get(key, _MISSING), b.get(key, _MISSING), f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for index in range(max(len(a), len(b))):
            left = a[index] if index < len(a) else _MISSING
            right = b[index] if index < len(b) else _MISSING
            found = _difference(left, right, f"{path}.{index}")
            if found is not None:
                return found
        return None
    return None if _same_leaf(a, b) else path


def _same_leaf(a: object, b: object) -> bool:
    if a is _MISSING or b is _MISSING:
        return a is b
    try:
        return canonical.canonical_json(a) == canonical.canonical_json(b)
    except (TypeError, ValueError):
        return a == b
