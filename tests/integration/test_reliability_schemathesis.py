"""Schemathesis, driven by `/api/openapi.json`, with ALL its checks and every phase it runs from a
document (examples, coverage, fuzzing), against the service over real HTTP: the retry endpoint
with admin credentials, and the trigger webhook for a real ramp with correctly signed bodies.

Any check failure fails the test: a 5xx; a status, content type, header or body the document does
not promise; a request the document calls valid that is refused, or an invalid one that is
accepted; a missing required header or credentials not refused; an unsupported method not
answered 405 with `Allow`. Seeded and bounded, so it is repeatable.

The engine is driven through its Python API (schemathesis' pytest plugin does not run under
pytest 9). Hooks do only what a real client does: the CRM signs the exact bytes it sends and calls
a ramp that exists. One rule stated in the document's words but not expressible in JSON Schema
(`until` later than `since`) is applied to generated windows; the hostile-input tests cover what
happens when it is broken.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.engine import events, from_schema
from werkzeug.serving import make_server

from app.signing import SIGNATURE_HEADER, sign
from tests.support.retry_scenarios import SIGNING_SECRET, api_key_headers, backlog

pytestmark = pytest.mark.slow  # generated requests (schemathesis + hypothesis)

RETRY = "/api/ramps/executions/retry-batch"
SUMMARY = "/api/ramps/executions/error-summary"
DISMISS = "/api/ramps/executions/dismiss-batch"
JOBS = "/api/ramps/executions/retry-jobs"
TRIGGER = "/api/ramps/{ramp_uuid}/trigger"
SEED = 20261202
# The header schemathesis adds to make a request invalid "in header".
UNKNOWN_HEADER = "x-schemathesis-unknown-property"


@contextmanager
def serving(app) -> Iterator[str]:
    """The app on a real HTTP port in this process (threaded, like gunicorn's threads)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@dataclass
class Run:
    statuses: Counter = field(default_factory=Counter)  # (operation label, phase, status) -> count
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def count(self, label: str, *, phase: str | None = None, status: int | None = None) -> int:
        return sum(
            n
            for (lab, ph, st), n in self.statuses.items()
            if lab == label and (phase is None or ph == phase) and (status is None or st == status)
        )


def _run(schema) -> Run:
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    run.statuses[(recorder.label, event.phase.value, interaction.response.status_code)] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        case = recorder.cases[case_id].value
                        run.failures.append(
                            f"{check.name} on {recorder.label} ({event.phase.value}): "
                            f"{check.failure_info.failure.message[:400]}\n  body: {str(case.body)[:300]}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            run.errors.append(repr(getattr(event, "value", None) or getattr(event, "exception", None))[:500])
    return run


def _config(**overrides) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": 25, "deterministic": True, "database": "none", "allow-x00": False},
            "checks": {"enabled": True},
            # Examples, coverage and fuzzing per operation; sequences of calls are not tested here.
            "phases": {"stateful": {"enabled": False}},
            **overrides,
        }
    )


def _for_every_case(schema, change) -> None:
    """Apply `change(case) -> case` to generated cases and to the document's own examples (the
    examples phase does not run `map_case`)."""

    @schema.hook("map_case")
    def _generated(context, case):
        return change(case)

    @schema.hook("before_add_examples")
    def _examples(context, examples):
        examples[:] = [change(case) for case in examples]


def _patches_of_picked_rows(body):
    """`payload_patches` keys must be among `execution_uuids` (documented in words)."""
    if not isinstance(body, dict) or not isinstance(body.get("payload_patches"), dict):
        return body
    picked = body.get("execution_uuids")
    if not isinstance(picked, list) or not picked:
        return body
    patches = list(body["payload_patches"].values())
    return {**body, "payload_patches": {str(u): patch for u, patch in zip(picked, patches, strict=False)}}


def _ordered_window(body):
    """`until` must be later than `since` (documented in words; JSON Schema cannot compare), and
    its default is now."""
    if not isinstance(body, dict):
        return body
    try:
        since = datetime.fromisoformat(body["since"])
        if body.get("until") is None and since.tzinfo is not None and since >= datetime.now(UTC):
            return {**body, "until": (since + timedelta(days=1)).isoformat()}
        until = datetime.fromisoformat(body["until"])
        if until > since:
            return body
    except (KeyError, TypeError, ValueError):
        return body
    if until == since:
        return {**body, "until": None}
    return {**body, "since": body["until"], "until": body["since"]}


@contextmanager
def admin_schema(app, session_factory, path: str, *, real_job_id=None):
    """The document's operations on `path`, called with admin credentials. With `real_job_id`,
    every other case that names a job names this one (the rest keep their generated id), so the
    job's own answers (200, 409) are checked as well as 404."""
    admin = api_key_headers(session_factory)
    named_jobs = Counter()
    with serving(app) as url:
        config = _config(
            auth={
                "openapi": {
                    "apiKey": {"api_key": admin["Authorization"]},
                    "apiSecret": {"api_key": admin["or-internal-api-auth-secret"]},
                }
            }
        )
        schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json", config=config).include(path=path)

        def order_window(case):
            if not isinstance(case.body, NotSet):
                case.body = _patches_of_picked_rows(_ordered_window(case.body))
            if isinstance(case.query, dict):
                case.query = _ordered_window(case.query)
            if real_job_id is not None and isinstance(case.path_parameters, dict) and "job_id" in case.path_parameters:
                named_jobs["cases"] += 1
                if named_jobs["cases"] % 2:
                    case.path_parameters = {**case.path_parameters, "job_id": real_job_id(admin)}
            if case.headers and "Idempotency-Key" in case.headers:
                # A client sends a new key with each new request (a repeat with another body is
                # 422 by design, which the document says but a generator cannot know).
                case.headers = {**case.headers, "Idempotency-Key": uuid.uuid4().hex}
            return case

        _for_every_case(schema, order_window)

        @schema.hook("filter_case")
        def _not_only_an_unknown_header(context, case):
            # HTTP lets a server ignore headers it does not know (RFC 9110, 5.1): a request that
            # is "invalid" only by an extra header is not one the service should refuse.
            return UNKNOWN_HEADER not in (case.headers or {})

        yield schema


def test_all_checks_pass_on_the_retry_endpoint(app, session_factory, load):
    load(backlog(3))  # a few replayable rows, so windows that match them run the use case

    with admin_schema(app, session_factory, RETRY) as schema:
        run = _run(schema)

    assert run.errors == []
    assert run.failures == [], "\n".join(run.failures)
    label = f"POST {RETRY}"
    for phase in ("examples", "coverage", "fuzzing"):
        assert run.count(label, phase=phase) > 0, (phase, run.statuses)
    # Accepted and refused bodies, refused credentials and unsupported methods were all exercised.
    for status in (200, 400, 401, 405):
        assert run.count(label, status=status) > 0, (status, run.statuses)


@pytest.mark.parametrize("path, method", [(SUMMARY, "GET"), (DISMISS, "POST")])
def test_all_checks_pass_on_the_toolbox_endpoints(app, session_factory, load, path, method):
    load(backlog(3))

    with admin_schema(app, session_factory, path) as schema:
        run = _run(schema)

    assert run.errors == []
    assert run.failures == [], "\n".join(run.failures)
    label = f"{method} {path}"
    for status in (200, 400, 401, 405):
        assert run.count(label, status=status) > 0, (status, run.statuses)


JOB = JOBS + "/{job_id}"


@pytest.mark.parametrize(
    "path, method, statuses",
    [
        (JOBS, "POST", (202, 400, 401, 405)),
        (JOBS, "GET", (200, 400, 401)),
        (JOB, "GET", (200, 404)),
        (JOB + "/pause", "POST", (200, 409, 404, 400, 401)),
        (JOB + "/resume", "POST", (409, 404, 400)),
        (JOB + "/cancel", "POST", (200, 409, 404, 400, 401)),
    ],
)
def test_all_checks_pass_on_the_retry_job_endpoints(app, session_factory, load, path, method, statuses):
    load(backlog(3))
    client = app.test_client()
    made: list[str] = []

    def real_job_id(admin) -> str:
        # One real job (made on first use; no worker runs it, so it stays queued until a case
        # pauses or cancels it, after which the same moves are 409).
        if not made:
            body = {"since": "2000-01-01T00:00:00Z", "suppress_notifications": True}
            made.append(client.post(JOBS, json=body, headers=admin).get_json()["job_id"])
        return made[0]

    with admin_schema(app, session_factory, path, real_job_id=real_job_id) as schema:
        run = _run(schema.include(method=method))

    assert run.errors == []
    assert run.failures == [], "\n".join(run.failures)
    label = f"{method} {path}"
    for status in statuses:
        assert run.count(label, status=status) > 0, (status, run.statuses)


def _wire_bytes(body) -> bytes:
    """The bytes the HTTP transport sends for a generated JSON body (requests' `json=`, which is
    `json.dumps` with its defaults); the case keeps its body, so schemathesis still knows whether
    it is valid."""
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, allow_nan=False).encode()


@pytest.fixture
def trigger_run(app, load):
    data = backlog(0)  # one active ramp whose vendor's integration signs with SIGNING_SECRET
    load(data)
    ramp_uuid = data["ramps"][0]["uuid"]
    with serving(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json", config=_config()).include(path=TRIGGER)

        def real_ramp_signed_body(case):
            # The CRM calls a ramp that exists, about a deal of its own (a repeated trigger key is
            # answered 200 as a duplicate), and signs the exact bytes it sends.
            case.path_parameters = {**(case.path_parameters or {}), "ramp_uuid": ramp_uuid}
            key = case.body.get("trigger_key") if isinstance(case.body, dict) else None
            if isinstance(key, str) and 1 <= len(key) <= 200:  # still valid with the suffix
                case.body = {**case.body, "trigger_key": f"{key}-{uuid.uuid4().hex}"}
            if SIGNATURE_HEADER in (case.headers or {}):  # the coverage phase also leaves it out on purpose
                case.headers = {**case.headers, SIGNATURE_HEADER: sign(SIGNING_SECRET, _wire_bytes(case.body))}
            return case

        _for_every_case(schema, real_ramp_signed_body)
        yield _run(schema)


def test_all_checks_pass_on_the_trigger_endpoint(trigger_run):
    run = trigger_run

    assert run.errors == []
    assert run.failures == [], "\n".join(run.failures)
    label = f"POST {TRIGGER}"
    for phase in ("examples", "coverage", "fuzzing"):
        assert run.count(label, phase=phase) > 0, (phase, run.statuses)
    # Reached the handler: executions started (201) and bodies refused by the parser (400);
    # a missing signature is 401, and unsupported methods 405.
    for status in (201, 400, 401, 405):
        assert run.count(label, status=status) > 0, (status, run.statuses)
    total = run.count(label)
    assert run.count(label, status=404) == 0, run.statuses  # always the real ramp
    assert run.count(label, status=201) >= total // 4, run.statuses
