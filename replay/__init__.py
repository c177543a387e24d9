"""replay: a record-and-replay cassette proxy for LLM provider APIs (a mitmproxy addon)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
