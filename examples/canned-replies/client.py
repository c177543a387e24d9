"""Runs against the canned replies of rules.yaml through the proxy: the same fixtures answer
the openai and anthropic SDKs, streamed and not, including a tool-call round trip."""

from __future__ import annotations

import anthropic
import openai

oa = openai.OpenAI(api_key="sk-not-a-real-key", max_retries=0)
an = anthropic.Anthropic(api_key="sk-ant-not-a-real-key", max_retries=0)


def ask_openai(text: str) -> str | None:
    r = oa.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return r.choices[0].message.content


def ask_claude(text: str) -> str:
    m = an.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": text}]
    )
    return "".join(b.text for b in m.content if b.type == "text")


assert ask_openai("Hello") == "Hi! How can I help you today?"
assert ask_claude("Hello") == "Hi! How can I help you today?"
assert ask_openai("Hello there") != "Hi! How can I help you today?"  # exact means exact
assert ask_openai("Can I get a refund?") == "Refunds are accepted within 30 days of purchase."
assert ask_claude("who are you?") == "I am a canned Claude."
assert ask_openai("who are you?") != "I am a canned Claude."  # model: claude-* only

# Streamed, through the SDKs' stream helpers: the same text.
with oa.chat.completions.stream(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "What about a refund?"}]
) as s:
    final = s.get_final_completion()
assert final.choices[0].message.content == "Refunds are accepted within 30 days of purchase."
with an.messages.stream(
    model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
) as s:
    assert s.get_final_text() == "Hi! How can I help you today?"

# A tool-call round trip, OpenAI shape.
tools = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
]
messages: list = [{"role": "user", "content": "Where is my order #1042?"}]
first = oa.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
call = first.choices[0].message.tool_calls[0]
assert call.function.name == "lookup_order" and call.function.arguments == '{"order_id":"A-1042"}'
messages += [
    first.choices[0].message.model_dump(exclude_none=True),
    {"role": "tool", "tool_call_id": call.id, "content": '{"status": "packed"}'},
]
second = oa.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
assert second.choices[0].message.content == "Your order A-1042 ships tomorrow."

# The same round trip, Anthropic shape (streamed).
claude_tools = [
    {
        "name": "lookup_order",
        "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }
]
turns: list = [{"role": "user", "content": "where is my order 1042"}]
with an.messages.stream(
    model="claude-haiku-4-5", max_tokens=100, messages=turns, tools=claude_tools
) as s:
    message = s.get_final_message()
use = next(b for b in message.content if b.type == "tool_use")
assert message.stop_reason == "tool_use" and use.input == {"order_id": "A-1042"}
turns += [
    {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "ok"}]},
]
last = an.messages.create(
    model="claude-haiku-4-5", max_tokens=100, messages=turns, tools=claude_tools
)
assert (
    last.content[0].type == "text" and last.content[0].text == "Your order A-1042 ships tomorrow."
)
print("canned-replies: ok")
