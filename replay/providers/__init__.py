"""Answers made up by the proxy instead of coming from the store or upstream.

For now: the provider-shaped "no cassette matched" error (`errors.py`). The synthetic
responders of every provider arrive with their own issue (#3).
"""
