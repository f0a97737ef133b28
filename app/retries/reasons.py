"""The ordered skip reasons of the retry endpoint (SPEC section 3), defined once.

A row in scope gets the FIRST reason that applies, in this order; a row with none is eligible.
Everything else reads this list: the eligibility SQL builds its CASE from it (eligibility.py),
`summary.skipped_by_reason` takes its keys from it, and the runbook documents it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str
    # One line for operators: when it applies and what to do about it.
    meaning: str


REASONS: tuple[Reason, ...] = (
    Reason("not_found", "a hand-picked uuid matches no execution"),
    Reason("status_not_error", "the execution is no longer ERROR (someone or something replayed it)"),
    Reason("project_already_exists", "a project is linked to the execution; replaying would duplicate it"),
    Reason("ramp_deleted", "the ramp was deleted"),
    Reason("ramp_archived", "the ramp was archived"),
    Reason("workflow_is_draft", "the ramp, or the version that would run, is a draft or missing"),
    # Any other run of the deal, earlier or later (the SPEC says a later one): one deal, one project.
    Reason("duplicate_trigger_succeeded", "another execution of the same ramp and trigger key succeeded"),
    Reason("config_error", "the last error is a config error; fix the config (or pass force_retry)"),
    Reason("integration_disconnected", "the vendor's CRM integration is missing, unconfigured, revoked or expired"),
    Reason("outside_time_window", "created_at is outside [since, until)"),
    Reason("error_pattern_mismatch", "error_pattern is set and the last error message does not contain it"),
    Reason("retry_limit_reached", "the execution already had max_attempts replay attempts"),
)

REASON_CODES: tuple[str, ...] = tuple(reason.code for reason in REASONS)

NOT_FOUND = "not_found"
STATUS_NOT_ERROR = "status_not_error"


def empty_counts() -> dict[str, int]:
    """`skipped_by_reason` with every key present, in order."""
    return dict.fromkeys(REASON_CODES, 0)
