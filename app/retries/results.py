"""What the retry paths report: per-row entries, the summary, a batch call's result."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from app.retries.reasons import empty_counts


class ActorLike(Protocol):
    kind: str  # "user" | "api_key"
    name: str


def actor_label(actor: ActorLike) -> str:
    """How logs and Sentry name the caller: the user's email, or `api_key:<name>`."""
    return actor.name if actor.kind == "user" else f"{actor.kind}:{actor.name}"


@dataclass
class ReplayError:
    type: str
    category: str
    message: str


@dataclass
class EligibleEntry:
    execution_uuid: str
    vendor_id: int
    ramp_uuid: str
    created_at: datetime
    error_message: str | None
    workflow_version_drift: bool
    outcome: str  # would_replay | success | error
    error: ReplayError | None = None
    project_uuid: str | None = None
    payload: dict | None = None  # set when a payload patch changes the row's input


@dataclass
class SkippedEntry:
    execution_uuid: str
    reason: str
    detail: str | None


@dataclass
class Summary:
    matched: int = 0
    eligible: int = 0
    selected: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=empty_counts)
    success: int = 0
    error: int = 0
    remaining: int = 0


@dataclass
class BatchResult:
    batch_id: uuid.UUID
    dry_run: bool
    summary: Summary
    eligible: list[EligibleEntry]
    skipped: list[SkippedEntry]
    skipped_truncated: bool
    plan_token: str | None = None
    plan_expires_at: datetime | None = None
