"""Runs against the mock Ollama of rules.yaml through the proxy (HTTP_PROXY set): the
official ollama client, native endpoints only."""

from __future__ import annotations

import httpx
import ollama

HOST = "http://ollama.internal:11434"  # any host: the proxy answers, nothing is contacted
client = ollama.Client(host=HOST)

# Chat streams by default: NDJSON lines, token counts in the final object.
parts = list(
    client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}], stream=True)
)
assert parts[-1].done and parts[-1].done_reason == "stop"
content = [p.message.content for p in parts[:-1] if p.message.content]
assert parts[-1].eval_count == len(content) and (parts[-1].prompt_eval_count or 0) > 0

# The fixture prompt, non-streamed and streamed.
fixed = client.chat(
    model="llama3.2", messages=[{"role": "user", "content": "Why is the sky blue?"}]
)
assert fixed.message.content == "Rayleigh scattering."
pieces = client.generate(model="llama3.2", prompt="Why is the sky blue?", stream=True)
assert "".join(p.response for p in pieces) == "Rayleigh scattering."

# Generate, non-streamed.
g = client.generate(model="llama3.2", prompt="Write a haiku", stream=False)
assert g.done and g.response and g.eval_count and g.eval_count > 0

# Embeddings: the same text, the same vector; 768 dimensions for nomic-embed-text.
e = client.embed(model="nomic-embed-text", input=["alpha", "beta"])
assert len(e.embeddings) == 2 and len(e.embeddings[0]) == 768
assert client.embed(model="nomic-embed-text", input="beta").embeddings[0] == e.embeddings[1]
legacy = client.embeddings(model="nomic-embed-text", prompt="alpha")
assert list(legacy.embedding) == e.embeddings[0]

# Model management.
names = [m.model for m in client.list().models]
assert names, "tags lists a few models"
shown = client.show("llama3.2")
assert shown.modelinfo is not None and shown.details is not None
assert [m.model for m in client.ps().models]
version = httpx.get(f"{HOST}/api/version").json()
assert version["version"]
print("ollama-mock: ok")
