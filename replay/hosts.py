"""Which traffic is LLM traffic: the `replay_hosts` policy, and a request's model name.

Owns the list of known provider hosts, the known LLM API path surfaces, host globs, and the
reader of a request's model name. A request's provider is `providers.router.resolve`'s.
Knows nothing of mitmproxy, the store or fingerprints.
"""

from __future__ import annotations

import fnmatch
import json
import re

from replay.models import Request

KNOWN_HOSTS: tuple[str, ...] = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "*-aiplatform.googleapis.com",
    "*.openai.azure.com",
    "*.cognitiveservices.azure.com",
    "*.services.ai.azure.com",
    "api.mistral.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.deepseek.com",
    "api.fireworks.ai",
    "api.x.ai",
    "api.cohere.com",
    "api.perplexity.ai",
    "openrouter.ai",
)
"""Provider hosts handled by default, whatever the path."""

LLM_PATHS = re.compile(
    r"""^(?:
        (?:/openai)?(?:/v\d+[\w.]*)?(?:/openai)?
          /(?:chat/completions|completions|embeddings|responses(?:/.*)?|models(?:/.*)?
             |messages(?:/count_tokens)?|moderations|audio/.+|images/.+)
      | /openai/deployments/[^/]+/.+
      | /api/(?:chat|generate|embed|embeddings|tags|show|version|ps)
      | /.*:(?:generateContent|streamGenerateContent|embedContent|batchEmbedContents|countTokens)
    )$""",
    re.VERBOSE,
)
"""Paths of known LLM API surfaces, handled on any host (self-hosted, OpenAI-compatible)."""


def _globs_pattern(globs: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex matching any of the (lower-cased) host globs."""
    return re.compile("|".join(fnmatch.translate(g.lower()) for g in globs))


_KNOWN = _globs_pattern(KNOWN_HOSTS)


class HostPolicy:
    """Decides which requests the addon handles. Empty `globs` means the default policy."""

    def __init__(self, globs: tuple[str, ...] = ()) -> None:
        self.globs = globs
        self._everything = "*" in globs
        self._hosts = _globs_pattern(globs) if globs else _KNOWN

    def handles(self, host: str, path: str) -> bool:
        if self._everything:
            return True
        if self._hosts.match(host.lower().rstrip(".")):
            return True
        return not self.globs and LLM_PATHS.match(path) is not None


_GEMINI_MODEL = re.compile(r"/models/([^/:]+):")
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/([^/]+)/")


def model_of(request: Request, decoded_body: bytes) -> str | None:
    """The model a request asks for: the JSON body's `model`, else the path's, else None."""
    if decoded_body[:1] in (b"{", b" ", b"\n") and len(decoded_body) < 16 * 2**20:
        try:
            value = json.loads(decoded_body)
        except ValueError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("model"), str):
            return str(value["model"])
    for pattern in (_GEMINI_MODEL, _AZURE_DEPLOYMENT):
        if m := pattern.search(request.path):
            return m.group(1)
    return None
