"""The rules file's answers reach every SDK in its provider's shape: a canned reply, a rule's
error, the responder's 400 for a malformed request; each answer's outcome as the report
would name it. Through the engine, like every test in tests/sdk (support/inprocess.py)."""

from __future__ import annotations

import json

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import types
from support.inprocess import Harness, Harnesses, http_client_for

from replay.models import Outcome

RULES = """
rules:
  - match: {last_user_message: canned}
    reply: {text: "from the rules file"}
  - match: {last_user_message: overloaded}
    error: {status: 529}
"""


@pytest.fixture
def r(harness: Harnesses) -> Harness:
    return harness(rules=RULES)


def test_openai_chat_responses_embeddings_and_rules(r: Harness) -> None:
    client = openai.OpenAI(api_key="k", http_client=http_client_for(openai, r), max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    assert client.chat.completions.create(model="gpt-4o-mini", messages=hi).choices[0].message
    with client.chat.completions.stream(model="gpt-4o-mini", messages=hi) as s:
        assert s.get_final_completion().choices[0].message.content
    with client.responses.stream(model="gpt-4.1-mini", input="hi") as resp:
        assert resp.get_final_response().output_text
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"]).data
    assert [len(v.embedding) for v in vectors] == [1536, 1536]
    canned = [{"role": "user", "content": "canned"}]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=canned)
    assert answer.choices[0].message.content == "from the rules file"
    with pytest.raises(openai.BadRequestError):  # the responder's 400, in OpenAI's shape
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert r.outcomes == [Outcome.SYNTHETIC] * 6


def test_anthropic_gemini_and_ollama(r: Harness) -> None:
    claude = anthropic.Anthropic(
        api_key="k", http_client=http_client_for(anthropic, r), max_retries=0
    )
    with claude.messages.stream(
        model="claude-replay-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        assert s.get_final_message().content
    with pytest.raises(anthropic.InternalServerError) as e:  # a rule's 529 in Anthropic's shape
        claude.messages.create(
            model="claude-replay-test",
            max_tokens=50,
            messages=[{"role": "user", "content": "overloaded"}],
        )
    assert e.value.status_code == 529
    assert json.loads(r.seen[-1][1].body)["error"]["type"] == "overloaded_error"
    options = types.HttpOptions(client_args={"transport": r.httpx_transport()})
    with genai.Client(api_key="k", http_options=options) as gemini:
        chunks = list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
        assert "".join(c.text or "" for c in chunks)
        canned = gemini.models.generate_content(model="gemini-2.5-flash", contents="canned")
        assert canned.text == "from the rules file"
    with ollama.Client(host="http://127.0.0.1:11434", transport=r.httpx_transport()) as local:
        messages = [{"role": "user", "content": "x"}]
        parts = list(local.chat(model="llama3.2", messages=messages, stream=True))
        assert parts[-1].done and parts[-1].eval_count == len(parts) - 1
    with httpx.Client(transport=r.httpx_transport()) as plain:
        version = plain.get("http://127.0.0.1:11434/api/version")
        assert json.loads(version.text)["version"]
    assert r.outcomes == [Outcome.SYNTHETIC] * 6
