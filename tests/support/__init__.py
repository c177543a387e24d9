"""Test support: certificates, the fake provider upstream, mitmdump launcher and helpers."""
