"""The official SDKs against made-up answers produced the way the proxy produces them:
`Engine.decide` (mode table, rules) then `Engine.synthesize` (routing, canned replies, rule
errors, provider-shaped 400s), not the responders called directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from google import genai
from google.genai import types
from support.inprocess import ViaEngine, http_client_for

from replay.config import Settings
from replay.engine import Engine
from replay.models import Outcome

RULES = """
rules:
  - match: {last_user_message: canned}
    reply: {text: "from the rules file"}
  - match: {last_user_message: overloaded}
    error: {status: 529}
"""


@pytest.fixture
def via(tmp_path: Path) -> Iterator[ViaEngine]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = Settings.from_options(
        {"replay_dir": str(tmp_path / "store"), "replay_rules": str(rules), "replay_speed": "0"}
    )
    engine = Engine(settings)
    yield ViaEngine(engine=engine)
    engine.close()


def test_openai_chat_responses_embeddings_and_rules(via: ViaEngine) -> None:
    client = openai.OpenAI(api_key="k", http_client=http_client_for(openai, via), max_retries=0)
    hi = [{"role": "user", "content": "hi"}]
    assert client.chat.completions.create(model="gpt-4o-mini", messages=hi).choices[0].message
    with client.chat.completions.stream(model="gpt-4o-mini", messages=hi) as s:
        assert s.get_final_completion().choices[0].message.content
    with client.responses.stream(model="gpt-4.1-mini", input="hi") as r:
        assert r.get_final_response().output_text
    vectors = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"]).data
    assert [len(v.embedding) for v in vectors] == [1536, 1536]
    canned = [{"role": "user", "content": "canned"}]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=canned)
    assert answer.choices[0].message.content == "from the rules file"
    with pytest.raises(openai.BadRequestError):  # the responder's 400, in OpenAI's shape
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert via.outcomes == [Outcome.SYNTHETIC] * 6


def test_anthropic_gemini_and_ollama(via: ViaEngine) -> None:
    claude = anthropic.Anthropic(
        api_key="k", http_client=http_client_for(anthropic, via), max_retries=0
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
    options = types.HttpOptions(client_args={"transport": via.httpx_transport()})
    with genai.Client(api_key="k", http_options=options) as gemini:
        chunks = list(gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
        assert "".join(c.text or "" for c in chunks)
        canned = gemini.models.generate_content(model="gemini-2.5-flash", contents="canned")
        assert canned.text == "from the rules file"
    with ollama.Client(host="http://127.0.0.1:11434", transport=via.httpx_transport()) as local:
        messages = [{"role": "user", "content": "x"}]
        parts = list(local.chat(model="llama3.2", messages=messages, stream=True))
        assert parts[-1].done and parts[-1].eval_count == len(parts) - 1
    with httpx.Client(transport=via.httpx_transport()) as plain:
        version = plain.get("http://127.0.0.1:11434/api/version")
        assert json.loads(version.text)["version"]
