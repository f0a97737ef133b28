"""The admin page in a real headless browser (chromium through Selenium), against the real
service process (gunicorn, devtools/service.py), the mock OIDC provider and real worker
processes, so the jobs a page starts really run.

Skipped, with the command that installs a browser, where chromium, chromedriver or Selenium is
missing. With ONRAMP_SCREENSHOTS_DIR set (e.g. docs/screenshots), the pages are saved there as
PNGs; otherwise into the test's tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select

from app.config import REPO_ROOT
from app.models import RampExecution, WorkflowHistory
from tests.integration.auth_support import CLIENT_ID, CLIENT_SECRET
from tests.support import browser as browser_support
from tests.support.browser import Browser
from tests.support.retry_scenarios import api_key_headers, backlog, execution, ramp, vendor, world
from tests.support.worker import running_workers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(browser_support.missing() is not None, reason=f"no browser: {browser_support.missing()}"),
]

ADMIN = "oncall@example.com"
VIEWER = "viewer@example.com"
USERS = [{"email": ADMIN, "role": "ONRAMP_ADMIN"}, {"email": VIEWER, "role": "ONRAMP_VIEWER"}]
JOBS_API = "/api/ramps/executions/retry-jobs"
REGRESSION = REPO_ROOT / "devtools" / "scenarios" / "regression-incident.json"
SCENARIO_CRM_URL = "http://127.0.0.1:9300"  # what devtools/scenarios/make_incidents.py writes
INCIDENT = {"since": "2026-05-11T12:30:00Z", "until": "2026-05-12T00:00:00Z"}


# ---- the world: service, provider, workers, browser ---------------------------------------------


@pytest.fixture
def service(service_process, fresh_provider):
    """The service signing in through the mock provider (cookie not Secure: plain http here)."""
    service = service_process("admin-pages")
    service.env.update(
        OIDC_METADATA_URL=fresh_provider.metadata_url,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        ADMIN_EMAIL_DOMAINS="example.com",
        PUBLIC_BASE_URL=service.url,
        SESSION_COOKIE_SECURE="false",
        HTTP_TIMEOUT_SECONDS="1",
    )
    with service.start(timeout=45):
        yield service


@pytest.fixture
def workers(database_url, tmp_path):
    with running_workers(database_url, tmp_path / "workers", count=1, task_modules=()) as started:
        yield started


@pytest.fixture
def browser(tmp_path):
    with Browser(tmp_path / "browser") as started:
        yield started


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: ONRAMP_SCREENSHOTS_DIR (relative to the repo) or the test's tmp_path."""
    wanted = os.environ.get("ONRAMP_SCREENSHOTS_DIR")
    return (REPO_ROOT / wanted) if wanted else tmp_path / "screenshots"


def regression_incident(crm_url: str) -> dict:
    """The regression scenario, its CRM calls pointed at the test's mock CRM."""
    return json.loads(REGRESSION.read_text().replace(SCENARIO_CRM_URL, crm_url))


def sign_in_on_the_way(browser: Browser, service, path: str, email: str) -> None:
    """Open `path` unsigned: the provider's form asks for an email, and sign-in lands on `path`."""
    browser.get(service.url + path)
    browser.wait_for("input[name=email]")
    assert not browser.url.startswith(service.url), "the provider's page is on its own origin"
    browser.type("input[name=email]", email)
    browser.click("button[type=submit]")
    browser.wait(lambda: browser.url == service.url + path, message=f"back on {path}")


def page_errors(browser: Browser, service) -> list[dict]:
    """Console errors of our own pages: CSP refusals, failed loads, script errors."""
    return [
        e
        for e in browser.console_errors()
        if "Content Security Policy" in e.get("message", "") or service.url in e.get("message", "")
    ]


def api(service, browser: Browser, method: str, path: str, body=None):
    """The JSON API with the browser's own session cookie, as curl would send it."""
    cookie = browser.driver.get_cookie("session")
    assert cookie, "the browser has no session cookie"
    return requests.request(method, service.url + path, json=body, cookies={"session": cookie["value"]}, timeout=10)


def job_id_of(browser: Browser) -> str:
    return browser.url.rsplit("/", 1)[1]


def displayed_controls(browser: Browser) -> list[str]:
    return sorted(b.get_attribute("data-action") for b in browser.find_all(".control") if b.is_displayed())


# ---- the tests ----------------------------------------------------------------------------------


def test_sign_in_preview_start_a_job_and_watch_it_finish_live(
    service, workers, browser, load, webhook_receiver, session_factory, shots
):
    load(regression_incident(webhook_receiver.url))
    overview = "/admin?" + urlencode(INCIDENT)

    sign_in_on_the_way(browser, service, overview, ADMIN)

    summary = api(service, browser, "GET", "/api/ramps/executions/error-summary?" + urlencode(INCIDENT)).json()
    assert browser.text("#total") == str(summary["total"])
    assert browser.text("#eligible") == str(summary["eligible"])
    assert len(browser.find_all("#groups tbody tr")) == len(summary["groups"])
    browser.screenshot(shots / "overview.png")

    # The biggest group's preview: its window, vendor and ramp prefilled, the dry run shown.
    biggest = summary["groups"][0]
    browser.find("#groups tbody tr a.button").click()
    browser.wait_for("#plan-token")
    assert browser.find("input[name=vendor_ids]").get_attribute("value") == str(biggest["vendor_id"])
    assert browser.find("input[name=ramp_uuids]").get_attribute("value") == biggest["ramp_uuid"]
    assert browser.find("input[name=since]").get_attribute("value") == INCIDENT["since"]
    rows = browser.text('[data-figure="eligible"]')
    same_ramp = [
        g for g in summary["groups"] if (g["vendor_id"], g["ramp_uuid"]) == (biggest["vendor_id"], biggest["ramp_uuid"])
    ]
    assert rows == str(sum(g["eligible"] for g in same_ramp)) and int(rows) > 25  # every error type of the ramp
    assert len(browser.find_all("#eligible tbody tr")) == 25
    assert browser.find_all("#drift-notice")  # the regression's rows ran the older version
    browser.screenshot(shots / "preview.png")

    # The confirmation: the number of rows, suppression on by default, the number typed.
    browser.click("#start-open")
    browser.wait_visible("#start-dialog")
    assert browser.text("#start-rows") == rows
    assert browser.find("#start-suppress").is_selected()
    assert not browser.find("#start-submit").is_enabled()
    browser.type("#start-confirm", str(int(rows) - 1))
    assert not browser.find("#start-submit").is_enabled()
    browser.type("#start-rate", "40")
    browser.type("#start-confirm", rows)
    assert browser.find("#start-submit").is_enabled()
    browser.screenshot(shots / "start-confirmation.png", full_page=False)
    browser.click("#start-submit")

    # The job page, live: progress moves and the job completes without a reload.
    browser.wait(lambda: "/admin/jobs/" in browser.url, message="on the job page")
    job_id = job_id_of(browser)
    browser.run("window.__sameDocument = true")
    seen: set[str] = set()

    def finished():
        seen.add(browser.text("#p-done"))
        return browser.text("#job-state") == "completed"

    browser.wait(lambda: int(browser.text("#p-done")) > 0, timeout=60, message="first replays")
    browser.wait(
        lambda: int(browser.text("#p-done")) >= int(rows) // 4 or browser.text("#job-state") != "running",
        timeout=60,
        message="a quarter done",
    )
    if browser.text("#job-state") == "running":
        browser.screenshot(shots / "job-running.png")
    browser.wait(finished, timeout=120, message="job completed")
    assert browser.run("return window.__sameDocument === true"), "the page reloaded"
    assert len(seen) >= 2, f"no live progress seen: {seen}"
    assert browser.text("#p-done") == rows and browser.text("#p-success") == rows
    assert browser.text("#p-remaining") == "0"
    assert displayed_controls(browser) == [] and browser.find("#control-none").is_displayed()
    browser.wait(lambda: "completed" in browser.text("#events"), message="events refreshed")
    browser.screenshot(shots / "job-finished.png")

    job = api(service, browser, "GET", f"{JOBS_API}/{job_id}").json()
    assert job["state"] == "completed" and job["progress"]["success"] == int(rows)
    assert job["request"]["suppress_notifications"] is True and job["max_replays_per_second"] == 40
    assert job["created_by"] == ADMIN
    assert webhook_receiver.snapshot()["counts"].get("webhooks", 0) == 0  # suppressed: nothing went out

    # From the jobs list to a replayed execution: its log and history name the job.
    browser.get(service.url + "/admin/jobs")
    browser.wait_for(f'tr[data-job-id="{job_id}"]')
    browser.screenshot(shots / "jobs.png")
    replayed = _a_row_replayed_by(session_factory, job_id)
    browser.get(service.url + f"/admin/executions/{replayed}")
    browser.wait_for("#history")
    assert browser.text("#execution-status") == "SUCCESS"
    assert browser.find_all(f'#history a[href="/admin/jobs/{job_id}"]')
    browser.screenshot(shots / "execution.png")
    assert page_errors(browser, service) == []


def _a_row_replayed_by(session_factory, job_id: str) -> str:
    """An execution the job replayed, one that ran an older version (a log with two attempts)."""
    with session_factory() as session, session.begin():
        return str(
            session.scalar(
                select(RampExecution.uuid)
                .join(WorkflowHistory, WorkflowHistory.execution_id == RampExecution.id)
                .where(WorkflowHistory.batch_id == uuid.UUID(job_id))
                .order_by(RampExecution.created_at)
                .limit(1)
            )
        )


def test_pause_and_cancel_a_running_job_with_reasons(service, workers, browser, load, session_factory, shots):
    data = backlog(30)
    data["users"] = USERS
    load(data)
    headers = api_key_headers(session_factory, name="slow-bot")
    created = requests.post(
        service.url + JOBS_API,
        json={"since": "2026-05-11T12:30:00Z", "until": "2026-05-12T12:30:00Z", "max_replays_per_second": 1},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    sign_in_on_the_way(browser, service, f"/admin/jobs/{job_id}", ADMIN)
    browser.wait_text("#job-state", "running", timeout=30)
    assert displayed_controls(browser) == ["cancel", "pause"]

    browser.type("#control-reason", "CRM is flapping")
    browser.click(".control-pause")
    browser.wait_text("#job-state", "paused")
    assert displayed_controls(browser) == ["cancel", "resume"]
    assert browser.text("#state-reason-text") == "CRM is flapping"
    browser.wait(lambda: "CRM is flapping" in browser.text("#events"), message="pause event listed")
    assert ADMIN in browser.text("#events")
    done_when_paused = int(browser.text("#p-done"))

    # Cancel asks for a reason first; nothing is sent without one.
    browser.click(".control-cancel")
    assert browser.wait_visible("#control-error").text.startswith("Say why you cancel")
    assert browser.text("#job-state") == "paused"
    browser.type("#control-reason", "customer asked us to stop")
    browser.click(".control-cancel")
    browser.wait_text("#job-state", "cancelled")
    assert displayed_controls(browser) == [] and browser.find("#control-none").is_displayed()
    assert browser.text("#state-reason-text") == "customer asked us to stop"
    browser.wait(lambda: "customer asked us to stop" in browser.text("#events"), message="cancel event listed")
    time.sleep(3)
    assert int(browser.text("#p-done")) <= done_when_paused + 1  # the one in flight at most
    assert 0 < int(browser.text("#p-done")) < 30

    events = api(service, browser, "GET", f"{JOBS_API}/{job_id}").json()
    assert events["state"] == "cancelled" and events["state_reason"] == "customer asked us to stop"
    assert page_errors(browser, service) == []


def test_a_halted_job_shows_the_brakes_reason(service, workers, browser, load, webhook_receiver, shots):
    load(regression_incident(webhook_receiver.url))
    webhook_receiver.set_mode("503")  # the CRM is down: every replay that fetches from it fails
    sign_in_on_the_way(browser, service, "/admin/jobs", ADMIN)
    created = api(
        service,
        browser,
        "POST",
        JOBS_API,
        {
            **INCIDENT,
            "vendor_ids": [1],
            "workflow_version": "latest",
            "suppress_notifications": True,
            "max_replays_per_second": 50,
        },
    )
    assert created.status_code == 202, created.text
    job_id = created.json()["job_id"]

    browser.get(service.url + f"/admin/jobs/{job_id}")
    browser.wait_text("#job-state", "halted", timeout=60)

    banner = browser.wait_visible("#state-reason")
    assert "banner-halted" in banner.get_attribute("class")
    assert browser.text("#state-reason-title") == "The brake stopped this job"
    assert browser.find("#state-reason-hint").is_displayed()
    assert re.fullmatch(r"\d+ of the last \d+ replays failed, limit 5 \(20%\)", browser.text("#state-reason-text"))
    assert displayed_controls(browser) == ["cancel", "resume"]
    browser.wait(lambda: len(browser.find_all("#recent-errors tr")) >= 6, message="recent errors listed")
    assert "IntegrationConnectionError" in browser.text("#recent-errors") or "503" in browser.text("#recent-errors")
    browser.wait(lambda: "halted" in browser.text("#events"), message="halt event listed")
    browser.screenshot(shots / "job-halted.png")


def test_a_viewer_sees_no_action_buttons_and_the_api_refuses_them(service, browser, load, session_factory):
    data = backlog(5)
    data["users"] = USERS
    load(data)
    headers = api_key_headers(session_factory, name="admin-bot")
    job_id = requests.post(
        service.url + JOBS_API,
        json={"since": "2026-05-11T12:30:00Z", "until": "2026-05-12T12:30:00Z"},
        headers=headers,
        timeout=10,
    ).json()["job_id"]

    sign_in_on_the_way(browser, service, f"/admin/jobs/{job_id}", VIEWER)

    assert browser.text("#job-state") == "queued"
    assert browser.find_all(".control") == [] and browser.find_all("#controls") == []
    browser.get(service.url + "/admin/preview?" + urlencode({"since": "2026-05-11T12:30:00Z"}))
    browser.wait_for("#viewer-notice")
    assert browser.find_all("#start") == [] and browser.find_all("#plan-token") == []
    # The page offers nothing, and the API refuses the viewer anyway, from this very browser.
    statuses = browser.driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const post = (url, body) => fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                                body: JSON.stringify(body)}).then(r => r.status);
        Promise.all([post(arguments[0] + "/pause", {reason: "viewer"}), post(arguments[1], {since: "2026-05-11T12:30:00Z"})])
          .then(done);
        """,
        f"{JOBS_API}/{job_id}",
        JOBS_API,
    )
    assert statuses == [403, 403]
    assert api(service, browser, "GET", f"{JOBS_API}/{job_id}").json()["state"] == "queued"


def test_markup_in_a_payload_is_text_and_every_page_sends_its_csp(service, browser, load):
    v, r = vendor(1), ramp(1)
    hostile = execution(
        r,
        payload={
            "company": {"id": "c-1", "name": "<script>window.__owned = 1</script>"},
            "note": '<img src=x onerror="window.__owned = 2">',
        },
        error_message="<b>bold</b> cannot access local variable",
    )
    data = world([v], [r], [hostile])
    data["users"] = USERS
    load(data)

    sign_in_on_the_way(browser, service, f"/admin/executions/{hostile['uuid']}", ADMIN)

    payload = browser.text("#payload")
    assert "<script>window.__owned = 1</script>" in payload
    assert '<img src=x onerror=\\"window.__owned = 2\\">' in payload
    assert browser.run("return window.__owned === undefined")
    assert browser.find_all("#payload script, #payload img, #last-error b") == []
    assert "<b>bold</b>" in browser.text("#last-error")

    pages = [
        "/admin",
        "/admin?" + urlencode(INCIDENT),
        "/admin/preview",
        "/admin/preview?" + urlencode(INCIDENT),
        "/admin/jobs",
        f"/admin/executions/{hostile['uuid']}",
    ]
    for path in [*pages, f"/admin/jobs/{uuid.uuid4()}"]:
        answer = api(service, browser, "GET", path)
        policy = answer.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in policy and "script-src 'self'" in policy, path
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy, path
        assert answer.headers.get("Cache-Control") == "no-store", path
    for path in pages:  # and the browser, holding the page to that policy, finds nothing refused
        browser.get(service.url + path)
        browser.wait_for("footer.bottom")
        assert page_errors(browser, service) == [], path
    unsigned = requests.get(service.url + "/admin", allow_redirects=False, timeout=10)
    assert unsigned.status_code == 302 and "Content-Security-Policy" in unsigned.headers
