"""Runs against the stub of rules.yaml through the proxy (HTTPS_PROXY and the CA set):
embeddings, a timed stream, a tool call by fixture and a schema-valid forced tool call."""

from __future__ import annotations

import json
import time

import openai

client = openai.OpenAI(api_key="sk-not-a-real-key", max_retries=0)

# Hash-seeded embeddings: the same text gets the same vector, whatever the batch.
one = client.embeddings.create(model="text-embedding-3-small", input="hello")
batch = client.embeddings.create(model="text-embedding-3-small", input=["other", "hello"])
assert len(one.data[0].embedding) == 1536
assert one.data[0].embedding == batch.data[1].embedding
short = client.embeddings.create(model="text-embedding-3-large", input="hello", dimensions=256)
assert len(short.data[0].embedding) == 256

# Chunked streaming, with the upfront and per-chunk delays of the settings.
started = time.monotonic()
stream = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Tell me a story"}],
    stream=True,
    stream_options={"include_usage": True},
)
pieces: list[str] = []
first = None
usage = None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        first = first or time.monotonic()
        pieces.append(chunk.choices[0].delta.content)
    usage = chunk.usage or usage
assert first is not None and first - started >= 0.15, "the upfront delay is 200 ms"
assert len(pieces) > 5 and usage is not None and usage.completion_tokens == len(pieces)
assert time.monotonic() - first >= 0.015 * (len(pieces) - 1), "20 ms between chunks"

# A tool call by fixture.
weather = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}
answer = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    tools=[weather],
)
call = answer.choices[0].message.tool_calls[0]
assert answer.choices[0].finish_reason == "tool_calls"
assert call.function.name == "get_weather"
assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}

# Any forced tool call: arguments made up, valid against the schema.
forced = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Anything"}],
    tools=[weather],
    tool_choice="required",
)
arguments = json.loads(forced.choices[0].message.tool_calls[0].function.arguments)
assert isinstance(arguments["city"], str) and arguments.get("unit", "celsius") in (
    "celsius",
    "fahrenheit",
)

# Each occurrence of a request gets its own answer, the same one in every run.
again = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
)
twice = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
)
assert again.choices[0].message.content and again.id != twice.id  # occurrences differ
print("openai-stub: ok")
