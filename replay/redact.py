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

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote_plus

from replay.canonical import decoded_request
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

_TOKEN = r"[A-Za-z0-9_\-]"
KEY_PATTERNS: dict[str, str] = {
    "anthropic-key": rf"sk-ant-{_TOKEN}{{20,}}",
    "openai-key": rf"sk-(?!ant-)(?={_TOKEN}*[0-9]){_TOKEN}{{20,}}",
    "google-key": rf"AIza{_TOKEN}{{35,}}",
    "aws-key-id": r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    "bearer": r"[A-Za-z0-9\-._~+/=]{20,}",
}
r"""The key-shaped strings by kind, tried in this order at each position. Each starts
only where the preceding character is not an ASCII letter or digit, or right after a JSON
or percent escape (`\nsk-…`, `%3Dsk-…`). A bearer token must follow `Bearer` (any case)
and spaces, tabs, `%20` or `+`; one that is itself another kind is reported as that kind.
Each pattern ends where its characters end, which makes `scrub` idempotent."""

_BEARER_PREFIX = r"(?i:bearer)(?:[ \t]|%20|\+)+"  # also as a form or URL encodes it
# A key starts where no ASCII letter or digit precedes it, or right after a JSON escape
# (`\n`, `\u00a0`) or a percent-escape (`%20`), whose last character is alphanumeric.
_KEY_START = r"(?:(?<![A-Za-z0-9])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{4})|(?<=%[0-9A-Fa-f]{2}))"
_GROUP_KIND = {kind.replace("-", "_"): kind for kind in KEY_PATTERNS}
_KEY_PATTERN = (
    _KEY_START
    + "(?:"
    + "|".join(
        (_BEARER_PREFIX if kind == "bearer" else "") + f"(?P<{group}>{KEY_PATTERNS[kind]})"
        for group, kind in _GROUP_KIND.items()
    )
    + ")"
)
_KEYS_BYTES = re.compile(_KEY_PATTERN.encode("ascii"))
_KEYS_TEXT = re.compile(_KEY_PATTERN, re.ASCII)
# Every match of the full pattern starts at one of these; finding them first is ~20x faster
# on large bodies than letting the full pattern (which starts with a lookbehind) scan.
_CANDIDATES = re.compile(rb"[sAbB](?=k-|Iza|KIA|SIA|(?i:earer))")


def placeholder(kind: str) -> str:
    """The fixed text a key-shaped string of `kind` becomes, e.g. `<redacted:openai-key>`."""
    return f"<redacted:{kind}>"


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """A key-shaped string found by `scan`; `excerpt` never holds the whole secret."""

    kind: str
    offset: int
    """Byte offset of the secret (for a bearer token: of the token, after `Bearer `)."""
    length: int
    excerpt: str


# -- key-shaped strings --------------------------------------------------------------------


def _kind_of[AnyStr: (bytes, str)](match: re.Match[AnyStr]) -> tuple[str, int, int]:
    """(kind, start, end) of the secret in `match`."""
    group = str(match.lastgroup)  # every alternative is one named group
    kind = _GROUP_KIND[group]
    if kind == "bearer":
        nested = match.re.fullmatch(match.group(group))
        if nested is not None and nested.lastgroup != group:
            kind = _GROUP_KIND[str(nested.lastgroup)]
    return kind, match.start(group), match.end(group)


def _matches(data: bytes) -> Iterator[re.Match[bytes]]:
    """What `_KEYS_BYTES.finditer(data)` yields (leftmost first, no overlaps), faster."""
    end = 0
    for candidate in _CANDIDATES.finditer(data):
        start = candidate.start()
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


def scan(data: bytes) -> list[SecretFinding]:
    """Every key-shaped string in `data`, in order. Placeholders are never reported."""
    findings = []
    for match in _matches(data):
        kind, start, end = _kind_of(match)
        secret = data[start:end].decode("ascii")
        findings.append(SecretFinding(kind, start, end - start, _mask(secret)))
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
    """An application/x-www-form-urlencoded body with secret parameters' values replaced
    by PLACEHOLDER; everything else byte-exact."""
    fields = body.split(b"&")
    for i, field in enumerate(fields):
        name, sep, _ = field.partition(b"=")
        if sep and unquote_plus(name.decode("latin-1")).lower() in SECRET_PARAMS:
            fields[i] = name + b"=" + PLACEHOLDER.encode("ascii")
    return b"&".join(fields)


def scrub_body(body: bytes, content_type: str | None) -> bytes:
    """A (content-decoded) request body as it may be stored and hashed: key-shaped strings
    scrubbed and, in a form body, secret parameters redacted. Idempotent."""
    if content_type and content_type.split(";")[0].strip().lower() == _FORM:
        body = redact_form(body)
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
