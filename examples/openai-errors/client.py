"""Runs against the failing mock of rules.yaml through the proxy: 429s that the SDK retries,
a 500, a stream that breaks mid-way, a slow first token; chat and Responses APIs."""

from __future__ import annotations

import time

import httpx
import openai

client = openai.OpenAI(api_key="sk-not-a-real-key", max_retries=2)


def chat(text: str, **kw: object) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **kw
    )


# Two 429s then success: the SDK's own retries get through (retry-after-ms honoured: 10 ms
# each, where the SDK's own backoff would wait 0.5 s and more).
started = time.monotonic()
raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi [rate-limit]"}]
)
assert raw.retries_taken == 2 and raw.parse().choices[0].message.content
assert time.monotonic() - started < 1.0, "the retries waited the SDK's own backoff"

# Without retries, the 429 surfaces as the SDK's RateLimitError.
strict = client.with_options(max_retries=0)
try:
    strict.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "again [429]"}]
    )
except openai.RateLimitError as e:
    assert e.status_code == 429 and "Rate limit" in e.message
else:
    raise AssertionError("expected a 429")

# A 500, for the Responses API too.
for call in (
    lambda: strict.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "boom [500]"}]
    ),
    lambda: strict.responses.create(model="gpt-4.1-mini", input="boom [500]"),
):
    try:
        call()
    except openai.InternalServerError as e:
        assert e.status_code == 500
    else:
        raise AssertionError("expected a 500")

# A stream that breaks after three chunks: the SDK sees a broken connection.
received = []
try:
    for chunk in chat("tell me more [cut]", stream=True):
        received.append(chunk)
except (openai.APIConnectionError, httpx.HTTPError):
    pass
else:
    raise AssertionError("the stream should have been cut")
assert len(received) == 3  # exactly the three chunks before the cut

# Responses streams work alongside.
with strict.responses.stream(model="gpt-4.1-mini", input="Say something") as s:
    assert s.get_final_response().output_text

# A slow first token.
started = time.monotonic()
assert chat("hello [slow]").choices[0].message.content
assert time.monotonic() - started >= 0.25
print("openai-errors: ok")
