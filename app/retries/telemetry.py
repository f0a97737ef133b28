"""What the retry endpoint tells the outside world: one summary log line per call and a Sentry
event per failed replay (see README, Observability)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def log_batch_summary(
    *,
    batch_id: str,
    actor: str | None,
    dry_run: bool,
    summary: Mapping[str, Any],
    duration_ms: int | None = None,
    request: Mapping[str, Any] | None = None,
    logger: logging.Logger | None = None,
) -> None:
    """One INFO line per retry-batch call with its counts, for dashboards and the on-call log.

    `request` may be the normalised request; only its scope fields are logged (never payloads).
    """
    fields: dict[str, Any] = {
        "event": "retry_batch.summary",
        "batch_id": str(batch_id),
        "actor": actor,
        "dry_run": bool(dry_run),
    }
    for key in ("matched", "eligible", "selected", "skipped", "success", "error", "remaining"):
        if key in summary:
            fields[key] = summary[key]
    if summary.get("skipped_by_reason") is not None:
        fields["skipped_by_reason"] = dict(summary["skipped_by_reason"])
    if duration_ms is not None:
        fields["duration_ms"] = int(duration_ms)
    if request:
        for key in (
            "since",
            "until",
            "vendor_ids",
            "ramp_uuids",
            "error_pattern",
            "suppress_notifications",
            "force_retry",
            "max_attempts",
            "workflow_version",
        ):
            if key in request:
                fields[key] = request[key]
        if request.get("execution_uuids") is not None:
            fields["execution_uuids_count"] = len(request["execution_uuids"])
    (logger or logging.getLogger("app.retries")).info(
        "retry batch %s: %s matched, %s selected, %s success, %s error, %s remaining%s",
        fields["batch_id"],
        summary.get("matched"),
        summary.get("selected"),
        summary.get("success"),
        summary.get("error"),
        summary.get("remaining"),
        " (dry run)" if dry_run else "",
        extra=fields,
    )


def capture_replay_failure(exc: BaseException, *, tags: dict[str, str], actor: str | None) -> None:
    """Report a failed replay to Sentry (a no-op when Sentry is not initialised).

    `tags`: batch_id, execution_uuid, vendor_id, ramp_uuid, error_category (values are stringified).
    `actor`: who ran the batch (user email or `api_key:<name>`), sent as the Sentry user.
    Never raises: reporting must not break the batch.
    """
    try:
        import sentry_sdk

        client = sentry_sdk.get_client()
        if not client.is_active() or client.transport is None:
            return
        with sentry_sdk.new_scope() as scope:
            for key, value in tags.items():
                if value is not None:
                    scope.set_tag(key, str(value))
            scope.set_tag("replay", "failed")
            if actor:
                scope.set_user({"id": actor, "username": actor})
            sentry_sdk.capture_exception(exc)
    except Exception:  # pragma: no cover - defensive: Sentry trouble is logged, never raised
        log.warning("could not report replay failure to Sentry", exc_info=True)
