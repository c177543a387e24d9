"""Deterministic embedding vectors: the same model and text give the same unit vector.

Owns the model → dimensions table of SPEC.md, the vector itself (seeded by model and text
only, so a text gets the same vector alone or in any batch, whatever the fingerprint), and
the base64 float32 little-endian encoding that OpenAI-style clients ask for by default.
Values are rounded to float32 before they are returned, so the float and base64 encodings
of one vector carry the same numbers.
"""

from __future__ import annotations

import base64
import math
import struct
from array import array

from replay.providers.text import rng_for

DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "gemini-embedding-001": 3072,
    "text-embedding-004": 768,
}
DEFAULT_DIMENSIONS = 1536
MAX_DIMENSIONS = 65536


def dimensions_for(model: str | None, requested: object = None) -> int:
    """`requested` when it is a positive int, else the model's own size (`models/` and
    `:tag` suffixes ignored), else 1536. `ValueError` for a requested size out of range."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int):
            raise ValueError(f"dimensions must be an integer, not {requested!r}")
        if not 1 <= requested <= MAX_DIMENSIONS:
            raise ValueError(f"dimensions must be between 1 and {MAX_DIMENSIONS}")
        return requested
    name = (model or "").removeprefix("models/").split(":", 1)[0]
    return DIMENSIONS.get(name, DEFAULT_DIMENSIONS)


def vector(model: str | None, text: str, dimensions: int) -> list[float]:
    """A unit vector (L2 norm 1 within float32 precision) for `text` under `model`."""
    name = (model or "").removeprefix("models/")
    rng = rng_for("embedding", name, text, dimensions)
    raw = [rng.random() * 2.0 - 1.0 for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return array("f", (v / norm for v in raw)).tolist()


def to_base64(values: list[float]) -> str:
    """float32 little-endian bytes, base64: what `encoding_format: "base64"` returns."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")
