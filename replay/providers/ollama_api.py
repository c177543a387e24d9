"""Synthetic responder module (being written): exports ROUTES."""

from __future__ import annotations

from replay.providers.base import Route

ROUTES: tuple[Route, ...] = ()
