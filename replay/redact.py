"""The one choke point for secrets: what counts as one, and how it is replaced.

Owns the complete lists (SECRET_HEADERS, SECRET_PARAMS, the key-shaped patterns), the fixed
placeholders, `scrub` (key-shaped strings in bytes), the header/query/form redactors,
`redact(Interaction) -> RedactedInteraction` (the only constructor of RedactedInteraction)
and `scan` for `replay verify`.

Does not own: the fingerprint (fingerprint.py removes secret parameters and hashes the
scrubbed form, so it never depends on a secret), user-configured patterns (they arrive with
the rules file), or response bodies, which are stored byte-exact and only ever scanned.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from email.message import Message
from urllib.parse import unquote_plus

from replay.canonical import decode_content, decoded_request, parse_json
from replay.errors import BodyTooLarge
from replay.models import Headers, Interaction, RedactedInteraction, Request, header_value

PLACEHOLDER = "<redacted>"
"""What the value of a secret header or parameter becomes."""

_FORM = "application/x-www-form-urlencoded"

logger = logging.getLogger(__name__)

SECRET_HEADERS = frozenset(
    {
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
        # Beyond the spec's list, each a credential by its own documentation:
        "x-amz-security-token",  # AWS STS session token (Bedrock through SigV4)
        "ocp-apim-subscription-key",  # Azure API Management / Azure AI services key
        "x-auth-token",  # generic token header of OpenAI-compatible gateways
        "cf-aig-authorization",  # Cloudflare AI Gateway token
        "helicone-auth",  # Helicone gateway key
        "x-portkey-api-key",  # Portkey gateway key
    }
)
"""Header names (lower-case) whose values are replaced by PLACEHOLDER, in requests and
responses. `x-goog-user-project` is not here: it names a billing project, not a credential."""

SECRET_PARAMS = frozenset(
    {
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
        # Beyond the spec's list:
        "refresh_token",  # OAuth token material (form bodies of token endpoints)
        "id_token",
        "subscription-key",  # Azure API Management's query form of its key
        "x-amz-security-token",  # AWS presigned URLs
        "x-amz-signature",
        "x-amz-credential",
        "x-goog-signature",  # Google signed URLs
        "x-goog-credential",
    }
)
"""Query (and form body) parameter names, compared lower-case, whose values are replaced by
PLACEHOLDER and which the fingerprint leaves out. Azure's `api-version` is not a secret."""

SECRET_FIELDS = frozenset(
    {
        "apikey",
        "xapikey",
        "password",
        "passwd",
        "secret",
        "clientsecret",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "sessiontoken",
        "bearertoken",
        "securitytoken",
        "privatekey",
        "secretkey",
        "secretaccesskey",
        "authorization",
    }
)
"""JSON and multipart field names whose values are secrets, compared lower-case with `_`,
`-` and `.` removed (so `api_key`, `api-key`, `apiKey` and `API_KEY` are one name). A name
matches when it is one of these, or ends with one of SECRET_FIELD_SUFFIXES (`openai_api_key`,
`db_password`). Whole names only: `max_tokens`, `token_count`, `tokens`, `next_page_token`
are not secrets (a bare `token` suffix is not in the suffix list for that reason)."""

SECRET_FIELD_SUFFIXES = (
    "apikey",
    "password",
    "passwd",
    "secret",
    "secretkey",
    "secretaccesskey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "sessiontoken",
    "privatekey",
)
"""Suffixes (in the compared form above) that make a field name secret."""


def is_secret_field(name: str) -> bool:
    """Whether a JSON or multipart field called `name` holds a secret (SECRET_FIELDS)."""
    folded = name.lower().replace("_", "").replace("-", "").replace(".", "")
    return folded in SECRET_FIELDS or folded.endswith(SECRET_FIELD_SUFFIXES)


_TOKEN = r"[A-Za-z0-9_\-]"
_B64 = r"[A-Za-z0-9/+]"
# (group, kind, pattern, glued): `glued` patterns have a prefix distinctive enough to be
# found right after a letter (`KEYsk-proj-…`); the others must start a word (_KEY_START).
_SHAPES: tuple[tuple[str, str, str, bool], ...] = (
    ("anthropic_key", "anthropic-key", rf"sk-ant-{_TOKEN}{{20,}}", True),
    ("openrouter_key", "openrouter-key", rf"sk-or-{_TOKEN}{{20,}}", True),
    ("openai_key_typed", "openai-key", rf"sk-(?:proj|svcacct|admin)-{_TOKEN}{{20,}}", True),
    (
        "openai_key",
        "openai-key",
        rf"sk-(?!ant-|or-)(?:(?={_TOKEN}*[0-9]){_TOKEN}{{20,}}|[A-Za-z0-9]{{32,}}{_TOKEN}*)",
        False,
    ),
    ("groq_key", "groq-key", r"gsk_[A-Za-z0-9]{20,}", True),
    ("xai_key", "xai-key", r"xai-[A-Za-z0-9]{20,}", True),
    ("huggingface_token", "huggingface-token", r"hf_[A-Za-z0-9]{30,}", False),
    (
        "github_token",
        "github-token",
        r"(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
        True,
    ),
    ("slack_token", "slack-token", r"xox[abposr]-[A-Za-z0-9\-]{10,}", True),
    ("google_key", "google-key", rf"AIza{_TOKEN}{{35,}}", True),
    ("aws_key_id", "aws-key-id", r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])", False),
    ("aws_secret_key", "aws-secret-key", rf"{_B64}{{40}}(?![A-Za-z0-9/+=])", True),
    ("jwt", "jwt", r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]*", False),
    (
        "private_key",
        "private-key",
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?:[A-Za-z0-9+/=\s:,.\\]|-(?!----))*"
        r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----)?",
        True,
    ),
    ("bearer", "bearer", r"[A-Za-z0-9\-._~+/=]{20,}", False),
)
KEY_PATTERNS: dict[str, str] = {}
for _group, _kind, _pattern, _ in _SHAPES:
    KEY_PATTERNS[_kind] = f"{KEY_PATTERNS[_kind]}|{_pattern}" if _kind in KEY_PATTERNS else _pattern
r"""The key-shaped strings by kind, tried in this order at each position (docs/matching.md
lists them). Most start only where the preceding character is not an ASCII letter or digit,
or right after a JSON or percent escape (`\nsk-…`, `%3Dsk-…`); those with a distinctive
prefix (`sk-proj-`, `sk-ant-`, `gsk_`, `ghp_`, `AIza`, a PEM header...) also right after a
letter (`KEYsk-proj-…`). A bearer token must follow `Bearer` (any case) and spaces, tabs,
`%20` or `+`; one that is itself another kind is reported as that kind (a JWT stays a bearer
token). An AWS secret access key (40 characters with no prefix of its own) is recognised
only right after an AWS context: `aws_secret_access_key`, `SecretAccessKey`, `aws_secret`...
then `=` or `:` (quotes and spaces allowed around them); only the key is replaced. Each
pattern ends where its characters end, which makes `scrub` idempotent."""

_BEARER_PREFIX = r"(?i:bearer)(?:[ \t]|%20|\+)+"  # also as a form or URL encodes it
_AWS_PREFIX = (
    r"(?i:(?:aws[_\-]?)?secret[_\-]?access[_\-]?key|aws[_\-]?secret(?:[_\-]?key)?)"
    r"(?:\\?[\"'])?[ \t]*[:=][ \t]*(?:\\?[\"'])?"
)
_PREFIXES = {"bearer": _BEARER_PREFIX, "aws_secret_key": _AWS_PREFIX}
# A key starts where no ASCII letter or digit precedes it, or right after a JSON escape
# (`\n`, `\u00a0`) or a percent-escape (`%20`), whose last character is alphanumeric.
_KEY_START = r"(?:(?<![A-Za-z0-9])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{4})|(?<=%[0-9A-Fa-f]{2}))"
_GROUP_KIND = {group: kind for group, kind, _, _ in _SHAPES}
_KEY_PATTERN = (
    "(?:"
    + "|".join(
        ("" if glued else _KEY_START) + _PREFIXES.get(group, "") + f"(?P<{group}>{pattern})"
        for group, _, pattern, glued in _SHAPES
    )
    + ")"
)
_KEYS_BYTES = re.compile(_KEY_PATTERN.encode("ascii"))
_KEYS_TEXT = re.compile(_KEY_PATTERN, re.ASCII)
# Every match of the full pattern starts at one of these places; finding them with literal
# searches (C speed) is many times faster on large bodies than letting the full pattern,
# which starts with a lookbehind and an alternation, scan. (literal, where a match starts
# relative to it); then the case-insensitive ones by regex.
_ANCHORS: tuple[tuple[bytes, int], ...] = (
    (b"sk-", 0),
    (b"sk_", -1),  # gsk_
    (b"AIza", 0),
    (b"AKIA", 0),
    (b"ASIA", 0),
    (b"gh", 0),
    (b"github_pat_", 0),
    (b"xai-", 0),
    (b"xox", 0),
    (b"hf_", 0),
    (b"eyJ", 0),
    (b"-----BEGIN ", 0),
)
_BEARER_START = re.compile(rb"[bB](?i:earer)")
_AWS_START = re.compile(rb"(?i:aws[_\-]?secret|secret[_\-]?access)")


def placeholder(kind: str) -> str:
    """The fixed text a key-shaped string of `kind` becomes, e.g. `<redacted:openai-key>`."""
    return f"<redacted:{kind}>"


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A key-shaped string found by `scan`; `excerpt` never holds the whole secret."""

    kind: str
    offset: int
    """Byte offset of the secret (for a bearer token: of the token, after `Bearer `), in
    the bytes `where` names."""
    length: int
    excerpt: str
    where: str = "raw"
    """Which view of the scanned bytes holds it: "raw", "decoded" (content-decoded),
    "unescaped" (JSON ASCII escapes undone) or "decoded+unescaped"."""
    secret_hash: str = ""
    """The first 16 hex digits of the secret's SHA-256: tells findings apart without
    holding the secret (an allow-list may name it)."""


# -- key-shaped strings --------------------------------------------------------------------


def _kind_of[AnyStr: (bytes, str)](match: re.Match[AnyStr]) -> tuple[str, int, int]:
    """(kind, start, end) of the secret in `match`."""
    group = str(match.lastgroup)  # every alternative is one named group
    kind = _GROUP_KIND[group]
    if kind == "bearer":
        nested = match.re.fullmatch(match.group(group))
        if nested is not None and nested.lastgroup not in (group, "jwt"):
            kind = _GROUP_KIND[str(nested.lastgroup)]
    return kind, match.start(group), match.end(group)


def _starts(data: bytes) -> list[int]:
    """Every place where a match of the full pattern may start, sorted (a superset)."""
    starts = []
    for literal, shift in _ANCHORS:
        at = data.find(literal)
        while at >= 0:
            if at + shift >= 0:
                starts.append(at + shift)
            at = data.find(literal, at + 1)
    starts += [m.start() for m in _BEARER_START.finditer(data)]
    if b"ecret" in data or b"ECRET" in data:  # every AWS secret context says "secret"
        starts += [m.start() for m in _AWS_START.finditer(data)]
    starts.sort()
    return starts


def _matches(data: bytes) -> Iterator[re.Match[bytes]]:
    """What `_KEYS_BYTES.finditer(data)` yields (leftmost first, no overlaps), faster."""
    end = 0
    for start in _starts(data):
        if start >= end and (match := _KEYS_BYTES.match(data, start)) is not None:
            end = match.end()
            yield match


def scrub(data: bytes) -> bytes:
    """`data` with every key-shaped string replaced by its placeholder. Idempotent."""
    out: list[bytes] = []
    pos = 0
    for match in _matches(data):
        kind, start, _ = _kind_of(match)
        out += (data[pos:start], placeholder(kind).encode("ascii"))  # "Bearer " stays
        pos = match.end()
    if not out:
        return data
    out.append(data[pos:])
    return b"".join(out)


def scrub_text(text: str) -> str:
    """`scrub` for str values (paths, query values, header values)."""

    def sub(match: re.Match[str]) -> str:
        kind, start, _ = _kind_of(match)
        return match.group()[: start - match.start()] + placeholder(kind)

    return _KEYS_TEXT.sub(sub, text)


def scan(data: bytes, content_encoding: str | None = None) -> list[SecretFinding]:
    """Every key-shaped string in `data`, in order. Placeholders are never reported.

    Also looks where a raw scan cannot see: in the content-decoded bytes when
    `content_encoding` names a coding (a gzip/br/zstd response body stored byte-exact) or
    when `data` starts like a gzip or zstd stream, and in JSON text with its ASCII escapes
    undone (`sk\\u002dproj-…`). Those findings come after the raw ones, with `where`
    saying which view their offset is in ("decoded", "unescaped", "decoded+unescaped");
    a secret already found in an earlier view is not reported again. Decoding is capped at
    DEFAULT_MAX_BODY; what cannot be decoded is scanned raw only.
    """
    findings = _scan_view(data, "raw")
    seen = {(f.kind, f.secret_hash) for f in findings}
    views: list[tuple[str, bytes]] = []
    coding = content_encoding or _sniff_coding(data)
    decoded = None
    if coding and coding.strip().lower() != "identity":
        try:
            decoded = decode_content(data, coding)
        except (ValueError, BodyTooLarge):
            decoded = None
    if decoded is not None and decoded != data:
        views.append(("decoded", decoded))
    for where, view in list(views) or [("raw", data)]:
        unescaped = unescape_ascii(view)
        if unescaped != view:
            views.append(("unescaped" if where == "raw" else f"{where}+unescaped", unescaped))
    for where, view in views:
        for finding in _scan_view(view, where):
            if (finding.kind, finding.secret_hash) not in seen:
                seen.add((finding.kind, finding.secret_hash))
                findings.append(finding)
    return findings


def _sniff_coding(data: bytes) -> str | None:
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return None


def _scan_view(data: bytes, where: str) -> list[SecretFinding]:
    findings = []
    for match in _matches(data):
        kind, start, end = _kind_of(match)
        secret = data[start:end].decode("ascii")
        digest = hashlib.sha256(secret.encode("ascii")).hexdigest()[:16]
        findings.append(SecretFinding(kind, start, end - start, _mask(secret), where, digest))
    return findings


def _mask(secret: str) -> str:
    shown = min(8, len(secret) // 4)
    return f"{secret[:shown]}…({len(secret)} chars)"


# -- headers, query, bodies ----------------------------------------------------------------


def redact_headers(headers: Headers) -> Headers:
    """Secret headers' values replaced by PLACEHOLDER, key-shaped strings in the others
    scrubbed; names, order and case kept."""
    return tuple(
        (name, PLACEHOLDER if name.lower() in SECRET_HEADERS else scrub_text(value))
        for name, value in headers
    )


def redact_query(query: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Secret parameters' values replaced by PLACEHOLDER (the parameter stays, so a reader
    sees it was there), key-shaped strings in the others scrubbed; order kept."""
    return tuple(
        (name, PLACEHOLDER if name.lower() in SECRET_PARAMS else scrub_text(value))
        for name, value in query
    )


def redact_form(body: bytes) -> bytes:
    """An application/x-www-form-urlencoded body with secret parameters' values (and those
    of secret field names, `is_secret_field`) replaced by PLACEHOLDER; everything else
    byte-exact."""
    fields = body.split(b"&")
    for i, field in enumerate(fields):
        name, sep, _ = field.partition(b"=")
        plain = unquote_plus(name.decode("latin-1"))
        if sep and (plain.lower() in SECRET_PARAMS or is_secret_field(plain)):
            fields[i] = name + b"=" + PLACEHOLDER.encode("ascii")
    return b"&".join(fields)


# A `"name": value` pair whose name may be secret, in raw JSON or in JSON inside a JSON string
# (`{\"api_key\": \"…\"}` in a prompt). The value is a string in the same quotes, or a number.
_FIELD = re.compile(
    rb'(?P<q>\\?")(?P<name>[A-Za-z0-9_.\-]{0,64}?(?i:key|secret|passw(?:or)?d|token|auth'
    rb"orization)[A-Za-z0-9_.\-]{0,64})(?P=q)[ \t\r\n]*:[ \t\r\n]*"
    rb'(?:(?P=q)(?P<string>(?:(?!(?P=q))(?:[^\\"]|\\.))*)(?P=q)|(?P<number>-?[0-9][0-9.eE+\-]*))'
)
_FIELD_WORDS = (b"key", b"secret", b"passw", b"token", b"authorization")
_FIELD_TAIL = re.compile(rb'[A-Za-z0-9_.\-]{0,64}\\?"[ \t\r\n]*:')


def _field_starts(body: bytes) -> list[int]:
    """Where a `_FIELD` match may start: the quote before each name holding a hint word
    (found by literal searches in a lower-cased copy: much faster than a regex scan)."""
    lowered = body.lower()
    starts = set()
    for word in _FIELD_WORDS:
        at = lowered.find(word)
        while at >= 0:
            if _FIELD_TAIL.match(body, at + len(word)):
                quote = body.rfind(b'"', max(0, at - 66), at)
                if quote >= 0:
                    starts.add(quote - 1 if quote and body[quote - 1] == 0x5C else quote)
            at = lowered.find(word, at + 1)
    return sorted(starts)


def redact_fields(body: bytes) -> bytes:
    """JSON text (or text holding JSON, even inside a JSON string) with the value of every
    field whose name `is_secret_field` replaced by PLACEHOLDER; everything else byte-exact.
    Only string and number values are replaced (an object under a secret name keeps its
    fields, each judged by its own name); an empty string stays empty. Idempotent."""
    out: list[bytes] = []
    pos = 0
    for start in _field_starts(body):
        m = _FIELD.match(body, start)
        if m is None or start < pos or not is_secret_field(m["name"].decode("ascii")):
            continue
        if m["string"] in (b"", _PLACEHOLDER):
            continue
        q = m["q"]
        value_start = m.start("string") - len(q) if m["number"] is None else m.start("number")
        out += (body[pos:value_start], q, _PLACEHOLDER, q)
        pos = m.end()
    if not out:
        return body
    out.append(body[pos:])
    return b"".join(out)


_PLACEHOLDER = PLACEHOLDER.encode("ascii")
_MULTIPART_NAME = re.compile(
    rb'(?im)^content-disposition:[^\r\n]*?;[ \t]*name[ \t]*=[ \t]*(?:"([^"\r\n]*)"|([^;\s]+))'
)


def redact_multipart(body: bytes, content_type: str) -> bytes:
    """A multipart body with the content of every part whose field name `is_secret_field`
    replaced by PLACEHOLDER; boundaries, part headers and other parts byte-exact. A body
    that does not split on its boundary is returned as it is."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_boundary()
    if not boundary:
        return body
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    pieces = body.split(delimiter)
    changed = False
    for i in range(1, len(pieces) - 1):  # [0] is the preamble, [-1] the close and epilogue
        head, sep, data = pieces[i].partition(b"\r\n\r\n")
        found = _MULTIPART_NAME.search(head)
        if not sep or found is None:
            continue
        name = (found[1] if found[1] is not None else found[2]).decode("utf-8", "replace")
        if is_secret_field(name) and data.removesuffix(b"\r\n") not in (b"", _PLACEHOLDER):
            ending = b"\r\n" if data.endswith(b"\r\n") else b""
            pieces[i] = head + sep + _PLACEHOLDER + ending
            changed = True
    return delimiter.join(pieces) if changed else body


# Escapes that JSON allows for printable ASCII (`\u002d` for `-`, `\/`), an escaped
# backslash first so that `\\u002d` (a backslash, then text) is left alone.
_ASCII_ESCAPE = re.compile(rb"\\\\|\\u00([2-7][0-9A-Fa-f])|\\/")
_KEEP_ESCAPED = frozenset({0x22, 0x5C, 0x7F})  # '"', '\\', DEL


def unescape_ascii(body: bytes) -> bytes:
    """JSON text with `\\uXXXX` escapes of printable ASCII (other than `"` and `\\`) and `\\/`
    written as the characters themselves: the same JSON value, in which a key spelled
    `sk\\u002dproj-…` has its shape again. Non-JSON bytes are returned as they are."""
    if b"\\u00" not in body and b"\\/" not in body:
        return body
    if parse_json(body) is None:
        return body

    def sub(m: re.Match[bytes]) -> bytes:
        if m[1] is not None:
            code = int(m[1], 16)
            return m[0] if code in _KEEP_ESCAPED else bytes([code])
        return b"/" if m[0] == b"\\/" else m[0]

    return _ASCII_ESCAPE.sub(sub, body)


def scrub_body(body: bytes, content_type: str | None) -> bytes:
    """A (content-decoded) request body as it may be stored and hashed: in a form body the
    secret parameters redacted, in a multipart body the secret fields' parts, in any body
    the values of secret JSON fields (`redact_fields`); JSON escapes of ASCII undone
    (`unescape_ascii`); then key-shaped strings scrubbed. Idempotent."""
    media = content_type.split(";")[0].strip().lower() if content_type else ""
    if media == _FORM:
        body = redact_form(body)
    elif media.startswith("multipart/") and content_type:
        body = redact_multipart(body, content_type)
    body = unescape_ascii(body)
    body = redact_fields(body)
    return scrub(body)


# -- interactions --------------------------------------------------------------------------


UNDECODABLE_BODY = b"<redacted:undecodable-content-encoding>"
"""What a request body becomes when its content-encoding cannot be undone: scrubbing the
encoded bytes would find nothing, so they are not kept at all."""


def redacted_url(request: Request) -> str:
    """The request's URL as it may be logged or reported: secret parameters redacted,
    key-shaped strings in the path and query values scrubbed."""
    return replace(request, path=scrub_text(request.path), query=redact_query(request.query)).url


USER_PLACEHOLDER = placeholder("user-pattern")
"""What a match of a user redaction pattern (rules file `settings.redact`) becomes."""


def scrub_user(text: str, patterns: Sequence[re.Pattern[str]]) -> str:
    """`text` with every match of the user's `patterns` replaced by USER_PLACEHOLDER."""
    for pattern in patterns:
        text = pattern.sub(USER_PLACEHOLDER, text)
    return text


def _scrub_user_bytes(data: bytes, patterns: Sequence[re.Pattern[str]]) -> bytes:
    if not patterns or not data:
        return data
    text = data.decode("utf-8", "surrogateescape")
    scrubbed = scrub_user(text, patterns)
    return data if scrubbed == text else scrubbed.encode("utf-8", "surrogateescape")


def redact_user(request: Request, patterns: Sequence[re.Pattern[str]]) -> Request:
    """`request` with every match of the user's `patterns` replaced by USER_PLACEHOLDER in
    its path, query values, header values and (content-decoded) body."""
    if not patterns:
        return request
    return replace(
        request,
        path=scrub_user(request.path, patterns),
        query=tuple((k, scrub_user(v, patterns)) for k, v in request.query),
        headers=tuple((k, scrub_user(v, patterns)) for k, v in request.headers),
        body=_scrub_user_bytes(request.body, patterns),
    )


def redact_request(request: Request, patterns: Sequence[re.Pattern[str]] = ()) -> Request:
    """The request as it may be written: body content-decoded (when it can be; when it
    cannot, replaced by UNDECODABLE_BODY) and scrubbed, secret headers and parameters
    redacted, key-shaped strings in the path, query values and header values scrubbed,
    and matches of the user's redaction `patterns` replaced there too."""
    request = decoded_request(request)
    if request.body and header_value(request.headers, "content-encoding"):
        logger.warning(
            "request body of %s not stored: its content-encoding could not be undone",
            redacted_url(request),
        )
        request = replace(request, body=UNDECODABLE_BODY)
    request = redact_user(request, patterns)
    body = scrub_body(request.body, request.header("content-type"))
    headers = redact_headers(request.headers)
    if body != request.body and header_value(headers, "content-length") is not None:
        headers = tuple(
            (k, str(len(body)) if k.lower() == "content-length" else v) for k, v in headers
        )
    return replace(
        request,
        path=scrub_text(request.path),
        query=redact_query(request.query),
        headers=headers,
        body=body,
    )


def redact(
    interaction: Interaction, patterns: Sequence[re.Pattern[str]] = ()
) -> RedactedInteraction:
    """`interaction` without credentials: the request as `redact_request`, response headers
    redacted (and cleared of the user's `patterns`), the client user-agent scrubbed.
    Response body chunks are kept byte-exact (`replay verify` reports what they hold)."""
    provenance = interaction.provenance
    user_agent = provenance.user_agent
    response_headers = tuple(
        (k, scrub_user(v, patterns)) for k, v in redact_headers(interaction.response.headers)
    )
    return RedactedInteraction(
        replace(
            interaction,
            request=redact_request(interaction.request, patterns),
            response=replace(interaction.response, headers=response_headers),
            provenance=replace(
                provenance, user_agent=scrub_text(user_agent) if user_agent else user_agent
            ),
        )
    )
