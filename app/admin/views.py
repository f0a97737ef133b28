"""The admin pages (SPEC section 11). Each view reads its form, calls one use case (the JSON API's
own, or a read-only query of queries.py) and renders; writes are the pages' JavaScript calling
the JSON API."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, render_template, request
from marshmallow import ValidationError as SchemaError

from app.admin import charts, filters, forms, queries  # filters: registers the template filters
from app.admin.web import bp, is_admin, page
from app.auth.access import current_actor
from app.db import get_database
from app.errors import ValidationError
from app.models.base import utcnow
from app.models.jobs import FINISHED_STATES, JOB_STATES
from app.retries import jobs
from app.retries.batch import MAX_BATCH_SIZE, retry_batch
from app.retries.job_schemas import JobControlsSchema, JobListQuerySchema, RetryJobListSchema, RetryJobSchema
from app.retries.jobs import TRANSITIONS
from app.retries.reasons import REASONS
from app.retries.schemas import RetryBatchResponseSchema

JOB_LIST_LIMIT = 50
_CONTROLS = JobControlsSchema().fields
# What a job started from the preview gets: the API's defaults (the page sends only the pace).
JOB_DEFAULTS = {
    "pace": _CONTROLS["max_replays_per_second"].load_default,
    "halt_error_rate": _CONTROLS["halt_error_rate"].load_default,
    "halt_window": _CONTROLS["halt_window"].load_default,
}
# The views' shared vocabulary for templates: state machine moves and the reasons' meanings.
TEMPLATE_GLOBALS = {
    "bars": charts.bars,
    "short_id": filters.short_id,
    "segments": charts.segments,
    "SCALE": charts.SCALE,
    "TRANSITIONS": TRANSITIONS,
    "FINISHED_STATES": FINISHED_STATES,
    "REASON_MEANINGS": {reason.code: reason.meaning for reason in REASONS},
    "MAX_BATCH_SIZE": MAX_BATCH_SIZE,
    "JOB_DEFAULTS": JOB_DEFAULTS,
}


@bp.context_processor
def _vocabulary():
    return TEMPLATE_GLOBALS


def _session_factory():
    return get_database().session_factory


@bp.get("")
@page
def overview():
    now = utcnow()
    form = forms.window_form(request.args, now=now)
    found = queries.overview(_session_factory(), form.request) if form.request is not None else None
    body = render_template("admin/overview.html", form=form, found=found, quick=forms.quick_windows(now), iso=forms.iso)
    return body, 400 if form.errors else 200


def _opened_from_another_site() -> bool:
    # A link on another site carries the session cookie (SameSite=Lax lets top-level GETs
    # through): it must not run a dry run, which records an audit row and a plan in the admin's
    # name. Browsers say where a navigation came from; a bookmark or a typed address is "none".
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("cross-site", "same-site")
    # A browser without Fetch Metadata: its Referer, when it sends one, names the page of the link.
    referrer = urlsplit(request.referrer or "")
    return bool(referrer.netloc) and (referrer.scheme, referrer.netloc) != (request.scheme, request.host)


@bp.get("/preview")
@page
def preview():
    form = forms.preview_form(request.args, now=utcnow())
    result = None
    from_elsewhere = form.request is not None and _opened_from_another_site()
    if form.request is not None and is_admin() and not from_elsewhere:
        # The same call the JSON endpoint makes for a dry run: it counts, lists and stores a plan.
        result = RetryBatchResponseSchema().dump(
            retry_batch(_session_factory(), form.request, current_actor(), config=current_app.config["ONRAMP"])
        )
    body = render_template("admin/preview.html", form=form, result=result, from_elsewhere=from_elsewhere)
    return body, 400 if form.errors else 200


@bp.get("/jobs")
@page
def job_list():
    try:
        query = JobListQuerySchema().load({**request.args.to_dict(), "limit": JOB_LIST_LIMIT})
    except SchemaError as exc:
        raise ValidationError(details=exc.messages) from exc
    found = jobs.list_jobs(_session_factory(), state=query["state"], limit=query["limit"])
    listed = RetryJobListSchema().dump({"jobs": found})["jobs"]
    return render_template("admin/jobs.html", jobs=listed, state=query["state"], states=JOB_STATES)


@bp.get("/jobs/<job_id>")
@page
def job_detail(job_id: str):
    found = queries.job_page(_session_factory(), job_id)
    return render_template("admin/job.html", job=RetryJobSchema().dump(found["job"]), events=found["events"])


@bp.get("/executions/<execution_uuid>")
@page
def execution_detail(execution_uuid: str):
    found = queries.execution_detail(_session_factory(), execution_uuid)
    return render_template("admin/execution.html", **found)
