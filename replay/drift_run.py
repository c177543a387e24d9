"""Re-sending recorded requests to the real providers, for `replay drift`.

Owns what happens between the store and the comparison: which interactions are checked
(one per request, a complete recording, an optional seeded sample), how a stored request is
rebuilt for the live provider (its redacted credentials filled from the environment or from
`--header`, hop-by-hop headers dropped, the body sent as stored), sending it with httpx
(which honours HTTPS_PROXY, NO_PROXY and SSL_CERT_FILE like any client) and reading the
answer whole, capped. Nothing here writes anywhere; drift.py compares, cli/drift.py reports.

Where a credential comes from, by the stored header that held it:
- `authorization`: `Bearer $OPENAI_API_KEY` (openai), `$AZURE_OPENAI_AD_TOKEN` (azure),
  `$ANTHROPIC_API_KEY`, else `$ANTHROPIC_AUTH_TOKEN` (anthropic: its SDK 2.x sends the key
  as a bearer token), `$OLLAMA_API_KEY` (ollama);
- `x-api-key`: `$ANTHROPIC_API_KEY`; `api-key`: `$AZURE_OPENAI_API_KEY`;
  `x-goog-api-key` and the `key` query parameter: `$GEMINI_API_KEY`, else `$GOOGLE_API_KEY`;
- `openai-organization` / `openai-project`: `$OPENAI_ORG_ID` / `$OPENAI_PROJECT_ID`, else
  left out; cookies and other account headers are left out;
- anything else that was redacted (a gateway's key header, a key inside a custom header)
  needs `--header "Name: value"`, which also overrides every rule above.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from replay.canonical import DEFAULT_MAX_BODY, decode_content, decoded_request
from replay.drift import Answer
from replay.models import Headers, Interaction, Key, Request
from replay.redact import PLACEHOLDER, SECRET_PARAMS, UNDECODABLE_BODY

_BEARER_KEYS = {
    "openai": ("OPENAI_API_KEY",),
    "azure": ("AZURE_OPENAI_AD_TOKEN",),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),  # SDK 2.x sends keys as Bearer
    "ollama": ("OLLAMA_API_KEY",),
}
_HEADER_KEYS = {
    "x-api-key": ("ANTHROPIC_API_KEY",),
    "api-key": ("AZURE_OPENAI_API_KEY",),
    "x-goog-api-key": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
_OPTIONAL_KEYS = {
    "openai-organization": ("OPENAI_ORG_ID",),
    "openai-project": ("OPENAI_PROJECT_ID",),
}
_LEFT_OUT = frozenset(
    {"cookie", "proxy-authorization", "anthropic-organization-id", "x-amz-security-token"}
)
_PARAM_KEYS = {"key": ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
_HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "accept-encoding",
        "content-encoding",
    }
)
_UNAVAILABLE = frozenset({408, 429, 500, 502, 503, 504, 529})
"""Live statuses that say the provider is busy or down, not that the API changed."""


class MissingCredential(Exception):
    """A redacted credential that neither the environment nor `--header` supplies."""


@dataclass(frozen=True, slots=True)
class LiveRequest:
    method: str
    url: str
    headers: Headers
    body: bytes
    credentials: tuple[str, ...]
    """Where each filled credential came from (`OPENAI_API_KEY`, `--header x-api-key`),
    never its value."""


def choose(
    interactions: Iterable[tuple[Key, Interaction]], sample: int | None, seed: int
) -> tuple[list[tuple[Key, Interaction]], int]:
    """The interactions worth re-sending: the lowest complete occurrence of each request
    (repeats are the same request), then `sample` of them drawn with `seed`, in store order.
    Also returns how many candidates there were."""
    first: dict[tuple[str, str], tuple[Key, Interaction]] = {}
    for key, interaction in interactions:
        slot = (key.namespace, key.fingerprint)
        if not interaction.complete:
            continue
        if slot not in first or key.occurrence < first[slot][0].occurrence:
            first[slot] = (key, interaction)
    chosen = list(first.values())
    total = len(chosen)
    if sample is not None and sample < total:
        picked = set(random.Random(seed).sample(range(total), sample))
        chosen = [c for i, c in enumerate(chosen) if i in picked]
    return chosen, total


def parse_header_options(values: Sequence[str]) -> dict[str, str]:
    """`--header "Name: value"` options as {lower-case name: value}; ValueError if malformed."""
    out = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise ValueError(f"--header {value!r} is not 'Name: value'")
        out[name.strip().lower()] = text.strip()
    return out


def not_resendable(interaction: Interaction) -> str | None:
    """Why this recording cannot be checked by sending its request again, or None: its body
    was not stored, its answer was the provider being busy or down (nothing asks for that
    again), or it continues a conversation stored at the provider."""
    if interaction.request.body == UNDECODABLE_BODY:
        return "its request body was not stored (its content-encoding could not be undone)"
    if interaction.response.status in _UNAVAILABLE:
        status = interaction.response.status
        return f"its recorded answer is the provider's {status} (busy or down), not the API's"
    return depends_on_state(interaction)


def depends_on_state(interaction: Interaction) -> str | None:
    """Why this request cannot be re-sent on its own (it names a response or conversation
    that only existed at the provider when it was recorded), or None."""
    body = interaction.request.body
    if b'"previous_response_id"' not in body and b'"conversation"' not in body:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    for name in ("previous_response_id", "conversation"):
        if isinstance(value, dict) and value.get(name):
            return f"it continues a stored conversation ({name}), which is not re-sent"
    return None


def live_request(
    interaction: Interaction, env: Mapping[str, str], overrides: Mapping[str, str]
) -> LiveRequest:
    """The stored request as it must go to the provider; MissingCredential if a redacted
    credential has no source."""
    stored = decoded_request(interaction.request)  # an encoded body is sent decoded
    provider = interaction.provenance.provider
    headers: list[tuple[str, str]] = []
    sources: list[str] = []
    for name, value in stored.headers:
        lname = name.lower()
        if lname in _HOP_BY_HOP or lname.startswith((":", "x-replay")) or lname in overrides:
            continue
        if "<redacted" not in value:
            headers.append((name, value))
            continue
        filled = _credential(lname, provider, env)
        if filled is None:
            if lname in _LEFT_OUT or lname in _OPTIONAL_KEYS:
                continue
            raise MissingCredential(_missing(lname, provider))
        headers.append((name, filled[0]))
        sources.append(filled[1])
    for name, value in overrides.items():
        headers.append((name, value))
        sources.append(f"--header {name}")
    headers.append(("accept-encoding", "identity"))
    query, more = _query(stored, provider, env)
    return LiveRequest(
        method=stored.method,
        url=_url(stored, query),
        headers=tuple(headers),
        body=stored.body,
        credentials=(*sources, *more),
    )


def _first(env: Mapping[str, str], names: Sequence[str]) -> tuple[str, str] | None:
    for name in names:
        if env.get(name):
            return env[name], name
    return None


def _credential(name: str, provider: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    if name == "authorization":
        found = _first(env, _BEARER_KEYS.get(provider, ()))
        return None if found is None else (f"Bearer {found[0]}", found[1])
    return _first(env, _HEADER_KEYS.get(name) or _OPTIONAL_KEYS.get(name) or ())


def _missing(name: str, provider: str) -> str:
    names = _BEARER_KEYS.get(provider, ()) if name == "authorization" else _HEADER_KEYS.get(name)
    if names:
        return f"no key for the {name} header: set {' or '.join(names)}"
    return f"no value for the redacted {name} header: pass --header '{name}: ...'"


def _query(
    stored: Request, provider: str, env: Mapping[str, str]
) -> tuple[list[tuple[str, str]], list[str]]:
    out, sources = [], []
    for name, value in stored.query:
        if value == PLACEHOLDER or (name.lower() in SECRET_PARAMS and "<redacted" in value):
            found = _first(env, _PARAM_KEYS.get(name.lower(), ()))
            if found is None:
                names = _PARAM_KEYS.get(name.lower())
                hint = f"set {' or '.join(names)}" if names else "it cannot be filled"
                raise MissingCredential(f"no key for the {name} query parameter: {hint}")
            value = found[0]
            sources.append(found[1])
        out.append((name, value))
    return out, sources


def _url(stored: Request, query: list[tuple[str, str]]) -> str:
    base = f"{stored.scheme}://{stored.authority}{stored.path}"
    return f"{base}?{urlencode(query)}" if query else base


def recorded_answer(interaction: Interaction, limit: int = DEFAULT_MAX_BODY) -> Answer:
    """The stored response with its body content-decoded."""
    response = interaction.response
    body = interaction.body
    coding = response.header("content-encoding")
    if coding and coding.strip().lower() != "identity":
        with contextlib.suppress(Exception):  # a body that does not decode is compared as is
            body = decode_content(body, coding, limit)
    return Answer(response.status, response.headers, body)


class LiveError(Exception):
    """The live request could not be made or read (network, TLS, a body over the cap)."""


def send(client: httpx.Client, request: LiveRequest, limit: int = DEFAULT_MAX_BODY) -> Answer:
    """Send `request` and read its answer whole (content-decoded, at most `limit` bytes)."""
    try:
        with client.stream(
            request.method, request.url, headers=list(request.headers), content=request.body
        ) as response:
            body = bytearray()
            for piece in response.iter_bytes():
                body += piece
                if len(body) > limit:
                    raise LiveError(f"the live answer is larger than {limit} bytes")
            headers = tuple(response.headers.multi_items())
            return Answer(response.status_code, headers, bytes(body))
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError) as e:
        # ValueError: a stored header httpx will not send (a non-ASCII value, a bad name)
        raise LiveError(f"{type(e).__name__}: {e}") from e


def unavailable(answer: Answer) -> bool:
    """The provider is busy or down: a status that says nothing of the API's shape."""
    return answer.status in _UNAVAILABLE


def client(timeout: float) -> httpx.Client:
    """An httpx client as any application would have: proxy and CA from the environment."""
    return httpx.Client(timeout=timeout, trust_env=True, follow_redirects=False)
