"""Answers made up by the proxy instead of coming from the store or upstream.

For now: the provider-shaped "no cassette matched" error (`errors.py`) and the pure building
blocks of the synthetic responders: seeded text and token counts (`text.py`), SSE/NDJSON
framing (`sse.py`) and tool arguments from JSON Schema (`schema.py`). The responders of every
provider arrive with their own issue (#3).
"""
