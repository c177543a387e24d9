"""Provider-shaped "no cassette matched" errors: status 404, a body the SDKs parse.

Owns the error bodies per provider (OpenAI and compatible, Anthropic, Gemini, Ollama) and the
wording that names the fingerprint and tells how to record the request. Knows nothing of the
store or the engine: the caller passes what the message must say.
"""

from __future__ import annotations

import json

from replay.hosts import provider_of
from replay.models import Key, Request

MISS_STATUS = 404


def miss_message(key: Key, mode: str) -> str:
    return (
        f"replay: no cassette matched this request (mode {mode}, namespace {key.namespace!r}, "
        f"fingerprint {key.fingerprint}, occurrence {key.occurrence}). To record it, run the "
        "same test once with --set replay_mode=auto (or record) and real credentials."
    )


def miss_response(
    request: Request, key: Key, mode: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a miss, in the shape the request's provider uses."""
    message = miss_message(key, mode)
    provider = provider_of(request)
    body: object
    if provider in ("anthropic", "anthropic-compatible"):
        body = {"type": "error", "error": {"type": "not_found_error", "message": message}}
    elif provider == "gemini":
        body = {"error": {"code": MISS_STATUS, "message": message, "status": "NOT_FOUND"}}
    elif provider == "ollama":
        body = {"error": message}
    else:
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "replay_no_cassette",
            }
        }
    data = json.dumps(body).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
    return MISS_STATUS, headers, data
