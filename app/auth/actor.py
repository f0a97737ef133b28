"""Who is calling: the identity `require_role` resolves for a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    kind: str  # "user" | "api_key"
    name: str  # user email or API key name
    role: str
