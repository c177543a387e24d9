"""Provider-shaped HTTP errors, and the "no cassette matched" answer that explains a miss.

Owns the error bodies per provider (OpenAI and compatible, Azure OpenAI, Anthropic, Gemini,
Ollama) with the type/code/status each uses per HTTP status, the retry headers the SDKs
honour, the request-id headers they read, and the wording of a miss: the fingerprint, the
namespace, the nearest recorded request (`NearMiss`, found by `replay.nearmiss`) with its
first differing field, and the command that records the request.

Knows nothing of the store or the engine: the caller passes what the message must say.
Every answer is deterministic: request ids are derived from the message (or the key).
"""

from __future__ import annotations

import hashlib
import math
import shlex
from dataclasses import dataclass

from replay.models import DEFAULT_NAMESPACE, Headers, Key
from replay.providers.base import JSON_TYPE, Answer
from replay.providers.sse import json_bytes

MISS_STATUS = 404
MISS_CODE = "replay_no_cassette"
"""`error.code` of a miss in the OpenAI shapes (and Anthropic's `error.details.error_code`,
Gemini's ErrorInfo reason): lets a test tell a miss from a real 404."""

RECORD_COMMAND = "mitmdump --listen-host 127.0.0.1 -s addons/replay.py --set replay_mode=auto"
"""The command a miss message tells the user to record with (`replay_cassette` appended)."""

GEMINI_TYPE = "application/json; charset=UTF-8"

_OPENAI: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
"""OpenAI's (error.type, error.code) per status; other 4xx are invalid_request_error, 5xx
server_error, both with a null code (PROTOCOLS.md §2.2)."""

_OPENAI_TYPE_OF_CODE = {"insufficient_quota": "insufficient_quota"}
"""Codes whose error.type is not the status's (a spent quota is a 429 of its own type)."""

_ANTHROPIC = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's error.type per status (§4.5); other 4xx invalid_request_error, 5xx api_error."""

_GEMINI = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""google.rpc status names per HTTP status (§6.5); other 4xx FAILED_PRECONDITION, 5xx
INTERNAL."""

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class NearMiss:
    """The recorded request most like a request that missed (see `replay.nearmiss`)."""

    fingerprint: str
    occurrence: int
    method: str
    url: str
    """Redacted: no secret parameter or key-shaped string."""
    field: str | None
    """The first field of the canonical material that differs (`body.json.messages.0.content`),
    None when nothing differs (another `replay_ignore` or fingerprint version, or the
    recording is incomplete)."""


# --- shapes -------------------------------------------------------------------------------


def shape_of(provider: str) -> str:
    """The error shape a provider name takes: openai, azure, anthropic, gemini or ollama.

    Accepts `router.resolve`'s names (and `anthropic-compatible`, as older recordings name
    their provider); anything unknown (a host name, `openai-compatible`) is OpenAI's.
    """
    if provider in ("anthropic", "anthropic-compatible"):
        return "anthropic"
    if provider in ("gemini", "azure", "ollama"):
        return provider
    return "openai"


def error_answer(
    provider: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
    headers: Headers = (),
    request_id: str | None = None,
) -> Answer:
    """An HTTP error `status` in `provider`'s own shape, JSON, not streamed.

    `code`: OpenAI's `error.code` (Azure's, default the status as a string), Anthropic's
    `error.details.error_code`, a Gemini ErrorInfo `reason`; Ollama has none. `retry_after`
    (seconds) adds the retry headers (`retry_headers`) and, for Gemini, a RetryInfo detail.
    `request_id` defaults to one derived from provider, status and message; it goes in the
    headers the SDKs read (`x-request-id`, Anthropic's `request-id` and body).
    """
    if not 400 <= status <= 599:
        raise ValueError(f"not an HTTP error status: {status}")
    shape = shape_of(provider)
    seed = f"{provider}\n{status}\n{message}\n{code}"
    extra: list[tuple[str, str]] = []
    content_type = JSON_TYPE
    body: dict[str, object]
    if shape == "anthropic":
        rid = request_id or _anthropic_request_id(seed)
        error: dict[str, object] = {"type": _anthropic_type(status), "message": message}
        if code is not None:
            error["details"] = {"error_code": code}
        body = {"type": "error", "error": error, "request_id": rid}
        extra.append(("request-id", rid))
    elif shape == "gemini":
        body = {"error": _gemini_error(status, message, code, retry_after)}
        content_type = GEMINI_TYPE
    elif shape == "ollama":
        body = {"error": message}
    else:
        if shape == "azure":
            fields = {"code": code or str(status), "message": message, "type": None, "param": None}
        else:
            kind, default_code = _openai_kind(status)
            kind = _OPENAI_TYPE_OF_CODE.get(code or "", kind)
            fields = {"message": message, "type": kind, "param": None, "code": code or default_code}
        body = {"error": fields}
        extra.append(("x-request-id", request_id or "req_" + _digest(seed).hex()[:32]))
    if retry_after is not None:
        extra += retry_headers(retry_after)
    data = json_bytes(body)
    return Answer(status, (("content-type", content_type), *extra, *headers), (data,))


def _openai_kind(status: int) -> tuple[str, str | None]:
    if status in _OPENAI:
        return _OPENAI[status]
    return ("server_error" if status >= 500 else "invalid_request_error"), None


def _anthropic_type(status: int) -> str:
    return _ANTHROPIC.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _gemini_error(
    status: int, message: str, code: str | None, retry_after: float | None
) -> dict[str, object]:
    name = _GEMINI.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    error: dict[str, object] = {"code": status, "message": message, "status": name}
    details: list[dict[str, object]] = []
    if code is not None:
        domain = "replay" if code == MISS_CODE else "googleapis.com"
        details.append(
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code, "domain": domain}
        )
    if retry_after is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": _proto_duration(retry_after),
            }
        )
    if details:
        error["details"] = details
    return error


def _proto_duration(seconds: float) -> str:
    """A protobuf JSON Duration: `7s`, or 3 fractional digits (`0.005s`) when not whole."""
    ms = round(_check_delay(seconds) * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms // 1000}.{ms % 1000:03d}s"


def retry_headers(retry_after: float) -> Headers:
    """`retry-after` (whole seconds, rounded up) and `retry-after-ms` (the exact delay).

    The openai and anthropic SDKs read `retry-after-ms` first and honour a delay only when
    it is above 0 (PROTOCOLS.md §1.3); at 0 they fall back to their own 0.5-8 s backoff. So
    `retry-after-ms` is never below 1 (0 means "as soon as possible"), which keeps SDK
    retries in tests fast; `retry-after` is the standard header, 0 allowed.
    """
    seconds = _check_delay(retry_after)
    ms = max(seconds * 1000, 1.0)
    ms_text = f"{ms:.3f}".rstrip("0").rstrip(".")
    return (("retry-after", str(math.ceil(seconds))), ("retry-after-ms", ms_text))


def _check_delay(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"retry_after must be a finite number of seconds >= 0, not {seconds}")
    return float(seconds)


def _digest(seed: str) -> bytes:
    return hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()


def _anthropic_request_id(seed: str) -> str:
    """`req_011C` and 20 base58 characters, as Anthropic's ids look."""
    return "req_011C" + "".join(_BASE58[b % 58] for b in _digest(seed)[:20])


def bad_request_answer(provider: str, message: str) -> Answer:
    """A 400 in `provider`'s shape, for a request a responder refused (`BadCall`)."""
    return error_answer(provider, 400, f"replay (synthetic): {message}")


# --- misses -------------------------------------------------------------------------------


def record_command(namespace: str) -> str:
    """The command that records requests of `namespace` (quoted for a POSIX shell)."""
    if namespace and namespace != DEFAULT_NAMESPACE:
        return f"{RECORD_COMMAND} --set replay_cassette={shlex.quote(namespace)}"
    return RECORD_COMMAND


def miss_message(
    key: Key, mode: str, nearest: NearMiss | None = None, *, unknown_endpoint: bool = False
) -> str:
    """What a miss says: the key, the nearest recorded request, how to record this one."""
    what = "no cassette matched this request"
    if unknown_endpoint:
        what += " and no synthetic responder knows this endpoint"
    namespace = key.namespace or DEFAULT_NAMESPACE
    parts = [
        f"replay: {what} (mode {mode}, namespace {namespace!r}, "
        f"fingerprint {key.fingerprint}, occurrence {key.occurrence})."
    ]
    if nearest is not None:
        parts.append(_nearest_sentence(nearest))
    parts.append(
        "To record it, run the same test once with real credentials through "
        f"`{record_command(namespace)}`."
    )
    return " ".join(parts)


def _nearest_sentence(nearest: NearMiss) -> str:
    where = (
        f"Nearest recorded request: {nearest.fingerprint[:12]} occurrence {nearest.occurrence}, "
        f"{nearest.method} {nearest.url}"
    )
    field = nearest.field
    if field is None:
        return (
            f"{where}; it differs in nothing the fingerprint covers now (recorded under "
            "another replay_ignore or fingerprint version, or its recording is incomplete)."
        )
    sentence = f"{where}; first difference: {field}."
    if field.startswith("body.json."):
        path = field.removeprefix("body.json.")
        sentence += (
            " If that field changes from run to run, leave it out of the key with "
            f"--set replay_ignore={shlex.quote(path)}."
        )
    return sentence


def miss_answer(
    key: Key,
    mode: str,
    nearest: NearMiss | None,
    provider: str,
    *,
    unknown_endpoint: bool = False,
) -> Answer:
    """The 404 a miss gets, in the shape of `provider` (the request's, `router.resolve`).

    The message names the key and, when given, the nearest recorded request and its first
    differing field, and the command that records the request. Request ids are derived
    from the key, so the same miss is the same bytes.
    """
    message = miss_message(key, mode, nearest, unknown_endpoint=unknown_endpoint)
    seed = f"{key.namespace}\n{key.fingerprint}\n{key.occurrence}"
    shape = shape_of(provider)
    if shape == "anthropic":
        request_id: str | None = _anthropic_request_id(seed)
    elif shape in ("openai", "azure"):
        request_id = "req_" + _digest(seed).hex()[:32]
    else:
        request_id = None
    return error_answer(provider, MISS_STATUS, message, code=MISS_CODE, request_id=request_id)
