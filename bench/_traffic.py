"""Mixed LLM traffic for the store benches: N interactions as the proxy would record them.

Shares (of every 20): 7 OpenAI chat JSON answers, 5 OpenAI chat SSE streams, 2 tool-call
answers (the request offers tools), 3 Anthropic message streams, 3 embeddings (1-4 inputs,
`text-embedding-3-small` at 256 dimensions, as float JSON). Requests carry the headers the
official SDKs send (credentials already redacted), responses the provider's usual headers.
Text comes from the standard library's docstrings (bench_codec.WORDS): the same on every
machine. Also `vcr_yaml`: the same traffic as a VCR.py cassette, written by vcrpy's own
YAML serializer (what the size benchmark compares against).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from bench_codec import WORDS, _headers

from replay.fingerprint import FingerprintPolicy, fingerprint
from replay.models import Chunk, Interaction, Key, Provenance, Request, ResponseHead

KINDS = ["chat"] * 7 + ["stream"] * 5 + ["tools"] * 2 + ["anthropic"] * 3 + ["embed"] * 3
SDK_HEADERS = (
    ("host", "api.openai.com"),
    ("accept-encoding", "gzip, deflate"),
    ("connection", "keep-alive"),
    ("accept", "application/json"),
    ("content-type", "application/json"),
    ("user-agent", "OpenAI/Python 1.99.0"),
    ("x-stainless-lang", "python"),
    ("x-stainless-package-version", "1.99.0"),
    ("x-stainless-os", "Linux"),
    ("x-stainless-arch", "x64"),
    ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.13.1"),
    ("authorization", "<redacted>"),
    ("x-stainless-async", "false"),
    ("x-stainless-retry-count", "0"),
    ("x-stainless-read-timeout", "600"),
)
SYSTEM = "You are a careful assistant for an accounting firm. Answer briefly and cite rules."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_invoice",
            "description": "Find an invoice by number and return its lines.",
            "parameters": {
                "type": "object",
                "properties": {"number": {"type": "string"}, "year": {"type": "integer"}},
                "required": ["number"],
            },
        },
    }
]


class Traffic:
    def __init__(self, seed: int = 11) -> None:
        self.rng = random.Random(seed)

    def words(self, n: int) -> str:
        start = self.rng.randrange(len(WORDS) - n)
        return " ".join(WORDS[start : start + n])

    def rid(self, n: int) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))

    def interactions(self, count: int, namespaces: int = 1) -> Iterator[Interaction]:
        for n in range(count):
            kind = KINDS[n % len(KINDS)]
            namespace = f"suite_{n % namespaces}" if namespaces > 1 else "default"
            yield getattr(self, kind)(namespace)

    def _make(
        self,
        namespace: str,
        host: str,
        path: str,
        body: dict[str, object],
        ctype: str,
        chunks: list[bytes],
        provider: str,
    ) -> Interaction:
        headers = tuple((k, host if k == "host" else v) for k, v in SDK_HEADERS)
        request = Request("POST", "https", host, 443, path, (), headers, json.dumps(body).encode())
        offset, timed = 0.0, []
        for data in chunks:
            timed.append(Chunk(round(offset, 6), data))
            offset += self.rng.uniform(0.004, 0.04)
        return Interaction(
            key=Key(namespace, fingerprint(request, FingerprintPolicy()).hex, 0),
            fingerprint_version=1,
            ignore=(),
            request=request,
            response=ResponseHead(200, "OK", "HTTP/1.1", _headers(ctype)),
            ttfb=round(self.rng.uniform(0.2, 0.9), 6),
            chunks=tuple(timed),
            complete=True,
            provenance=Provenance(
                "2026-11-30T12:00:00.000+00:00",
                provider,
                str(body.get("model")),
                "OpenAI/Python 1.99.0",
                200,
                "0.1.0",
            ),
        )

    def _messages(self) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": SYSTEM}]
        for _ in range(self.rng.randrange(1, 4)):
            turns.append({"role": "user", "content": self.words(self.rng.randrange(8, 40))})
            turns.append({"role": "assistant", "content": self.words(self.rng.randrange(10, 60))})
        return turns[:-1]

    def chat(self, namespace: str, tools: bool = False) -> Interaction:
        body: dict[str, object] = {"messages": self._messages(), "model": "gpt-4o-mini"}
        message: dict[str, object] = {"role": "assistant", "content": None, "refusal": None}
        if tools:
            body["tools"] = TOOLS
            args = json.dumps({"number": f"INV-{self.rng.randrange(10**5)}", "year": 2026})
            call = {"name": "lookup_invoice", "arguments": args}
            message["tool_calls"] = [
                {"id": "call_" + self.rid(24), "type": "function", "function": call}
            ]
        else:
            message["content"] = self.words(self.rng.randrange(20, 300))
        answer = {
            "id": "chatcmpl-" + self.rid(29),
            "object": "chat.completion",
            "created": 1767225600 + self.rng.randrange(10**6),
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if tools else "stop",
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
            "service_tier": "default",
            "system_fingerprint": "fp_" + self.rid(10),
        }
        data = json.dumps(answer, indent=2).encode()
        path = "/v1/chat/completions"
        return self._make(
            namespace, "api.openai.com", path, body, "application/json", [data], "openai"
        )

    def tools(self, namespace: str) -> Interaction:
        return self.chat(namespace, tools=True)

    def stream(self, namespace: str) -> Interaction:
        body = {"messages": self._messages(), "model": "gpt-4o-mini", "stream": True}
        base = {
            "id": "chatcmpl-" + self.rid(29),
            "object": "chat.completion.chunk",
            "created": 1767225600 + self.rng.randrange(10**6),
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_" + self.rid(10),
        }
        words = self.words(self.rng.randrange(20, 150)).split()
        events = [{"role": "assistant", "content": ""}, *({"content": " " + w} for w in words)]
        chunks = []
        for delta in events:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
            chunks.append(f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode())
        end = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
        chunks.append(f"data: {json.dumps({**base, 'choices': [end]})}\n\n".encode())
        chunks.append(b"data: [DONE]\n\n")
        path = "/v1/chat/completions"
        return self._make(
            namespace, "api.openai.com", path, body, "text/event-stream", chunks, "openai"
        )

    def anthropic(self, namespace: str) -> Interaction:
        msgs = [m for m in self._messages() if m["role"] != "system"]
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 1024,
            "system": SYSTEM,
            "messages": msgs,
            "stream": True,
        }
        msg_id = "msg_" + self.rid(24)

        def event(name: str, data: dict[str, object]) -> bytes:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

        start = {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-haiku-4-5-20251001",
            "stop_reason": None,
            "usage": {"input_tokens": 80, "output_tokens": 1},
        }
        chunks = [
            event("message_start", {"message": start}),
            event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            event("ping", {}),
        ]
        for word in self.words(self.rng.randrange(20, 120)).split():
            delta = {"type": "text_delta", "text": " " + word}
            chunks.append(event("content_block_delta", {"index": 0, "delta": delta}))
        chunks += [
            event("content_block_stop", {"index": 0}),
            event(
                "message_delta",
                {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 90}},
            ),
            event("message_stop", {}),
        ]
        return self._make(
            namespace,
            "api.anthropic.com",
            "/v1/messages",
            body,
            "text/event-stream",
            chunks,
            "anthropic",
        )

    def embed(self, namespace: str) -> Interaction:
        inputs = [self.words(self.rng.randrange(5, 30)) for _ in range(self.rng.randrange(1, 5))]
        body = {
            "input": inputs,
            "model": "text-embedding-3-small",
            "dimensions": 256,
            "encoding_format": "float",
        }
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(self.rng.gauss(0, 0.06), 9) for _ in range(256)],
            }
            for i in range(len(inputs))
        ]
        answer = {
            "object": "list",
            "data": data,
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 40, "total_tokens": 40},
        }
        chunk = json.dumps(answer, indent=2).encode()
        return self._make(
            namespace,
            "api.openai.com",
            "/v1/embeddings",
            body,
            "application/json",
            [chunk],
            "openai",
        )


def vcr_yaml(interactions: list[Interaction]) -> str:
    """The interactions as a VCR.py cassette, serialized by vcrpy's own YAML serializer."""
    from vcr.serializers import yamlserializer

    def headers(pairs: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in pairs:
            out.setdefault(name, []).append(value)
        return out

    items = []
    for i in interactions:
        items.append(
            {
                "request": {
                    "body": i.request.body.decode(),
                    "headers": headers(i.request.headers),
                    "method": i.request.method,
                    "uri": i.request.url,
                },
                "response": {
                    "body": {"string": i.body.decode()},
                    "headers": headers(i.response.headers),
                    "status": {"code": i.response.status, "message": i.response.reason},
                },
            }
        )
    return yamlserializer.serialize({"interactions": items, "version": 1})
