"""The admin pages through the Flask test client, signed in through the real mock-provider flow.

What a person would notice: where sign-in sends them, the numbers each page shows (compared
with the JSON API's own answers), what a viewer may not do, the security headers, and that data
is shown as text, never run as HTML. The same pages in a real browser: test_admin_browser.py.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from app.auth.signin import safe_next_path
from app.auth.users import create_user
from app.models import RetryBatch, RetryPlan
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER
from tests.support.retry_scenarios import api_key_headers, at, execution, iso, ramp, vendor, world

ADMIN = "oncall@example.com"
VIEWER = "viewer@example.com"
JOBS_API = "/api/ramps/executions/retry-jobs"
TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "admin" / "templates"
REQUIRED_CSP = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'none'",
}


# ---- helpers ----------------------------------------------------------------------------------


def add_user(session_factory, email: str, role: str) -> None:
    with session_factory() as session, session.begin():
        create_user(session, email=email, role=role)


def login(client, email: str, path: str = "/auth/login"):
    """The whole authorization-code flow starting at `path`; the callback's response."""
    start = client.get(path)
    assert start.status_code == 302, start.get_data(as_text=True)
    approved = requests.get(start.headers["Location"], params={"email": email}, allow_redirects=False, timeout=5)
    assert approved.status_code == 302, approved.text
    back = urlsplit(approved.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def signed_in(auth_app, session_factory, email: str = ADMIN, role: str = ROLE_ADMIN):
    add_user(session_factory, email, role)
    client = auth_app.test_client()
    assert login(client, email).status_code == 302
    return client


def html(response) -> str:
    return response.get_data(as_text=True)


def csp(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = [part.strip().split(None, 1) for part in header.split(";") if part.strip()]
    return {d[0]: (d[1] if len(d) > 1 else "") for d in directives}


def incident(base_url: str = "http://127.0.0.1:9") -> dict:
    """Two vendors: vendor 1 has 3 failures of one ramp (one a config error), vendor 2 has one."""
    v1, v2 = vendor(1, base_url=base_url), vendor(2, base_url=base_url)
    v1["name"], v2["name"] = "Acme", "Globex"
    r1, r2 = ramp(1), ramp(2)
    rows = [
        execution(r1, minutes=5),
        execution(r1, minutes=6),
        execution(r1, minutes=7, error_type="MissingTriggerField", error_message="company.id is missing"),
        execution(r2, minutes=8, error_type="RateLimitError", error_message="429 from the CRM"),
    ]
    return world([v1, v2], [r1, r2], rows)


WINDOW = {"since": iso(0), "until": iso(60)}


# ---- sign-in and the way back -----------------------------------------------------------------


def test_an_unsigned_visitor_is_sent_to_sign_in_and_brought_back(auth_app, session_factory):
    add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    asked = "/admin/jobs?state=running"

    first = client.get(asked)

    assert first.status_code == 302
    location = urlsplit(first.headers["Location"])
    assert location.path == "/auth/login"
    assert parse_qs(location.query)["next"] == [asked]
    assert csp(first)["default-src"] == "'none'"
    done = login(client, ADMIN, f"{location.path}?{location.query}")
    assert done.status_code == 302
    assert done.headers["Location"] == asked
    page = client.get(done.headers["Location"])
    assert page.status_code == 200
    assert "Retry jobs" in html(page)


@pytest.mark.parametrize(
    "unsafe",
    [
        "https://evil.example/admin",
        "//evil.example/admin",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/%0a/x\n",
        "admin",
        "/auth/login",
        "/auth/callback?code=x",
        "/" + "a" * 3000,
    ],
)
def test_an_unsafe_next_is_ignored_and_sign_in_lands_on_me(auth_app, session_factory, unsafe):
    add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    query = requests.models.RequestEncodingMixin._encode_params({"next": unsafe})

    done = login(client, ADMIN, f"/auth/login?{query}")

    assert done.status_code == 302
    assert urlsplit(done.headers["Location"]).path == "/auth/me"
    assert not urlsplit(done.headers["Location"]).netloc.endswith("evil.example")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/admin", "/admin"),
        ("/admin/jobs/8b7c?x=1&y=%2F%2Fz", "/admin/jobs/8b7c?x=1&y=%2F%2Fz"),
        ("/admin/executions/é", "/admin/executions/é"),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("http://127.0.0.1/admin", None),
        ("/admin\r\nSet-Cookie: x=1", None),
        ("/admin\u00a0x", None),
        ("", None),
        (None, None),
        (["/admin"], None),
    ],
)
def test_safe_next_path_takes_only_paths_on_this_site(value, expected):
    assert safe_next_path(value) == expected


def test_a_next_from_an_earlier_login_is_not_used_by_a_later_one(auth_app, session_factory):
    add_user(session_factory, ADMIN, ROLE_ADMIN)
    client = auth_app.test_client()
    assert client.get("/auth/login?next=/admin/jobs").status_code == 302

    done = login(client, ADMIN, "/auth/login")

    assert urlsplit(done.headers["Location"]).path == "/auth/me"


def test_me_links_to_the_admin_page(auth_app, session_factory):
    client = signed_in(auth_app, session_factory)
    page = client.get("/auth/me", headers={"Accept": "text/html"})
    assert 'href="/admin"' in html(page)


# ---- headers, escaping, templates -------------------------------------------------------------


def test_every_page_sends_a_strict_csp_and_no_store(auth_app, session_factory, load):
    data = incident()
    load(data)
    client = signed_in(auth_app, session_factory)
    job = client.post(JOBS_API, json={**WINDOW, "suppress_notifications": True}).get_json()
    pages = [
        "/admin",
        f"/admin?since={WINDOW['since']}",
        "/admin?since=not-a-time",
        "/admin/preview",
        f"/admin/preview?since={WINDOW['since']}&until={WINDOW['until']}",
        "/admin/jobs",
        f"/admin/jobs/{job['job_id']}",
        f"/admin/jobs/{uuid.uuid4()}",
        f"/admin/executions/{data['executions'][0]['uuid']}",
        f"/admin/executions/{uuid.uuid4()}",
        "/admin/executions/not-a-uuid",
        "/admin/static/admin.css",
        "/admin/static/job.js",
    ]
    anonymous = auth_app.test_client()
    for path in pages:
        for who, c in (("admin", client), ("anonymous", anonymous)):
            response = c.get(path)
            policy = csp(response)
            for directive, value in REQUIRED_CSP.items():
                assert policy.get(directive) == value, (who, path, response.headers.get("Content-Security-Policy"))
            assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
            assert response.headers["Cache-Control"] == "no-store", (who, path)
    assert client.get(f"/admin/jobs/{uuid.uuid4()}").status_code == 404
    assert client.get("/admin/executions/not-a-uuid").status_code == 404


def test_pages_hold_no_inline_script_style_or_event_handler(auth_app, session_factory, load):
    data = incident()
    load(data)
    client = signed_in(auth_app, session_factory)
    job = client.post(JOBS_API, json={**WINDOW, "suppress_notifications": True}).get_json()
    for path in (
        "/admin?since=" + WINDOW["since"],
        f"/admin/preview?since={WINDOW['since']}&until={WINDOW['until']}",
        "/admin/jobs",
        f"/admin/jobs/{job['job_id']}",
        f"/admin/executions/{data['executions'][0]['uuid']}",
    ):
        page = html(client.get(path))
        assert not re.search(r"<script(?![^>]*\bsrc=)", page), path  # every script is a file
        assert not re.search(r"<style\b|\sstyle=", page), path
        assert not re.search(r"\son[a-z]+\s*=", page), path


def test_templates_never_mark_data_safe():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"\|\s*safe\b|Markup|autoescape\s+false", text), template.name


def test_an_execution_payload_with_markup_is_shown_as_text(auth_app, session_factory, load):
    v, r = vendor(1), ramp(1)
    hostile = execution(
        r,
        payload={"company": {"id": "c-x", "name": "<script>document.title='owned'</script>"}, "note": "<b>bold</b>"},
        error_message="<img src=x onerror=alert(1)>",
    )
    load(world([v], [r], [hostile]))
    client = signed_in(auth_app, session_factory)

    page = html(client.get(f"/admin/executions/{hostile['uuid']}"))

    assert "&lt;script&gt;document.title=" in page
    assert "<script>document.title" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_bar_geometry_keeps_small_values_visible_and_segments_within_the_bar():
    from app.admin.charts import SCALE, bars, segments

    drawn = bars([{"label": "a", "value": 1}, {"label": "b", "value": 400, "part": 100}, {"label": "c", "value": 0}])
    assert [(b.label, b.width, b.part_width) for b in drawn] == [("b", SCALE, 250), ("a", 4, 0), ("c", 0, 0)]
    parts = segments(3, [("success", 1), ("error", 1), ("skipped", 1)])
    assert [s.x for s in parts] == [0, 333, 666] and sum(s.width for s in parts) <= SCALE
    assert [s.width for s in segments(0, [("success", 0)])] == [0]


# ---- the overview -----------------------------------------------------------------------------


def test_the_overview_shows_the_error_summary_with_a_chart_and_preview_links(auth_app, session_factory, load):
    data = incident()
    load(data)
    client = signed_in(auth_app, session_factory)
    api = client.get("/api/ramps/executions/error-summary", query_string=WINDOW).get_json()

    response = client.get("/admin", query_string=WINDOW)

    assert response.status_code == 200
    page = html(response)
    assert re.search(rf'id="total">{api["total"]}<', page) and api["total"] == 4
    assert re.search(rf'id="eligible">{api["eligible"]}<', page)
    assert "Acme" in page and "Globex" in page
    table = page[page.index('id="groups"') :]
    table = table[table.index("<tbody>") : table.index("</tbody>")]
    assert table.count("<tr>") == len(api["groups"]) == 3
    widths = [int(w) for w in re.findall(r'class="bar-total" x="0" y="0" width="(\d+)"', page)]
    assert widths[0] == 1000 and sorted(widths, reverse=True) == widths and widths[-1] == 500
    biggest = api["groups"][0]
    links = {
        tuple(sorted((k, tuple(v)) for k, v in parse_qs(urlsplit(href.replace("&amp;", "&")).query).items()))
        for href in re.findall(r'href="(/admin/preview\?[^"]+)"', page)
    }
    expected = {
        ("ramp_uuids", (biggest["ramp_uuid"],)),
        ("since", (WINDOW["since"],)),
        ("until", (WINDOW["until"],)),
        ("vendor_ids", (str(biggest["vendor_id"]),)),
    }
    assert tuple(sorted(expected)) in links
    # A group's link says that it previews the whole ramp, not only the group's error type.
    assert table.count(">Preview ramp</a>") == 3 and "every error type of that vendor's ramp" in page


def test_the_overview_defaults_to_the_last_24_hours(auth_app, session_factory, load):
    from app.models.base import utcnow

    v, r = vendor(1), ramp(1)
    recent = execution(r, created_at=(utcnow().replace(microsecond=0) - _hours(1)).isoformat())
    old = execution(r, created_at=(utcnow().replace(microsecond=0) - _hours(30)).isoformat())
    load(world([v], [r], [recent, old]))
    client = signed_in(auth_app, session_factory)

    page = html(client.get("/admin"))

    assert re.search(r'id="total">1<', page)


def _hours(n: int):
    from datetime import timedelta

    return timedelta(hours=n)


def test_a_bad_window_is_a_400_page_naming_the_field(auth_app, session_factory):
    client = signed_in(auth_app, session_factory)
    response = client.get("/admin", query_string={"since": iso(60), "until": iso(0)})
    assert response.status_code == 400
    assert "Must be later than since." in html(response)


# ---- the preview ------------------------------------------------------------------------------


def _count(session_factory, model) -> int:
    with session_factory() as session, session.begin():
        return session.scalar(select(func.count()).select_from(model))


def test_an_admin_preview_is_the_api_dry_run_with_its_plan_and_reasons(auth_app, session_factory, load):
    data = incident()
    # One eligible row ran an older version of its ramp: the preview flags the drift.
    r1 = data["ramps"][0]
    r1["versions"] = [{"version": 1}, {"version": 2}]
    r1["current_version"] = 2
    for row in data["executions"]:
        if row["ramp_uuid"] == r1["uuid"]:
            row["version"] = 1
    load(data)
    client = signed_in(auth_app, session_factory)
    api = client.post("/api/ramps/executions/retry-batch", json={**WINDOW, "dry_run": True}).get_json()

    response = client.get("/admin/preview", query_string=WINDOW)

    assert response.status_code == 200
    page = html(response)
    for figure in ("matched", "eligible", "skipped"):
        assert re.search(rf'data-figure="{figure}">{api["summary"][figure]}<', page), figure
    token = re.search(r'id="plan-token">(plan_[^<]+)<', page).group(1)
    with session_factory() as session, session.begin():
        plan = session.scalar(select(RetryPlan).where(RetryPlan.token == token))
        assert plan is not None and plan.total == api["summary"]["eligible"] == 3
        assert plan.created_by == ADMIN
    assert f'data-rows="{api["summary"]["eligible"]}"' in page
    assert "config_error" in page and 'id="skipped-by-reason"' in page
    assert len(re.findall(r'href="/admin/executions/[0-9a-f-]{36}"', page)) == 4  # 3 eligible + 1 skipped
    assert 'id="drift-notice"' in page and "<strong>2</strong> of the listed rows" in page


def test_a_viewer_sees_the_preview_form_and_a_notice_but_no_dry_run(auth_app, session_factory, load):
    load(incident())
    client = signed_in(auth_app, session_factory, VIEWER, ROLE_VIEWER)

    response = client.get("/admin/preview", query_string=WINDOW)

    assert response.status_code == 200
    page = html(response)
    assert 'id="viewer-notice"' in page and "ONRAMP_ADMIN" in page
    assert 'id="plan-token"' not in page and 'id="start"' not in page
    assert _count(session_factory, RetryPlan) == 0
    assert _count(session_factory, RetryBatch) == 0


def test_a_preview_link_from_another_site_fills_the_form_but_runs_nothing_until_pressed(
    auth_app, session_factory, load
):
    load(incident())
    client = signed_in(auth_app, session_factory)
    # (A browser without Fetch Metadata headers is judged by its Referer.)
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": "https://chat.example.net/incident-42"},
    ):
        response = client.get("/admin/preview", query_string=WINDOW, headers=headers)
        assert response.status_code == 200
        page = html(response)
        assert 'id="elsewhere-notice"' in page and 'id="plan-token"' not in page, headers
        assert f'value="{WINDOW["since"]}"' in page
    assert _count(session_factory, RetryPlan) == 0
    assert _count(session_factory, RetryBatch) == 0

    # Pressing the form's button is a same-origin navigation: the dry run runs, judged either way.
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Referer": "http://localhost/admin/preview"}):
        pressed = html(client.get("/admin/preview", query_string=WINDOW, headers=headers))
        assert 'id="plan-token"' in pressed and 'id="elsewhere-notice"' not in pressed, headers
    assert _count(session_factory, RetryPlan) == 2


def test_preview_form_errors_are_shown_per_field(auth_app, session_factory):
    client = signed_in(auth_app, session_factory)
    response = client.get(
        "/admin/preview",
        query_string={"since": iso(0), "vendor_ids": "1, acme", "ramp_uuids": "not-a-uuid", "max_attempts": "0"},
    )
    assert response.status_code == 400
    page = html(response)
    assert "Not a vendor id: &#39;acme&#39;." in page
    assert "Not a valid UUID." in page
    assert "Must be a whole number, 1 or more." in page
    assert _count(session_factory, RetryBatch) == 0


def test_the_preview_form_reads_vendors_ramps_pattern_and_options(auth_app, session_factory, load):
    data = incident()
    load(data)
    client = signed_in(auth_app, session_factory)
    r1 = data["ramps"][0]["uuid"]

    narrowed = html(client.get("/admin/preview", query_string={**WINDOW, "vendor_ids": "1", "ramp_uuids": r1}))
    forced = html(client.get("/admin/preview", query_string={**WINDOW, "vendor_ids": "1", "force_retry": "on"}))
    pattern = html(client.get("/admin/preview", query_string={**WINDOW, "error_pattern": "new_task"}))

    assert re.search(r'data-figure="matched">3<', narrowed) and re.search(r'data-figure="eligible">2<', narrowed)
    assert re.search(r'data-figure="eligible">3<', forced)  # the config error too
    assert re.search(r'data-figure="eligible">2<', pattern)


# ---- jobs -------------------------------------------------------------------------------------


def test_jobs_list_and_job_page_show_state_progress_and_events(auth_app, session_factory, load):
    load(incident())
    client = signed_in(auth_app, session_factory)
    queued = client.post(JOBS_API, json={**WINDOW, "suppress_notifications": True}).get_json()
    empty = client.post(JOBS_API, json={"since": iso(600), "until": iso(700)}).get_json()
    assert queued["state"] == "queued" and empty["state"] == "completed"

    listing = html(client.get("/admin/jobs"))
    page = html(client.get(f"/admin/jobs/{queued['job_id']}"))
    done_page = html(client.get(f"/admin/jobs/{empty['job_id']}"))

    assert listing.index(empty["job_id"]) < listing.index(queued["job_id"])  # newest first
    assert 'id="job-state">queued<' in page
    assert re.search(r'id="p-total">3<', page)
    assert "<strong>suppressed</strong>" in page
    assert re.search(r'data-action="pause"[^>]*data-from="queued running"\s*>', page)  # offered
    assert re.search(r'data-action="resume"[^>]*hidden', page)  # not a valid move now
    assert re.search(r'data-action="cancel"[^>]*data-from="halted paused queued running"\s*>', page)
    assert "nothing eligible" in done_page
    assert not re.search(r'data-action="(pause|resume|cancel)"[^>]*\s>', done_page)  # all hidden
    assert re.search(r'<p class="muted" id="control-none"\s*>The job has finished', done_page)
    assert html(client.get("/admin/jobs?state=completed")).count('<tr data-job-id="') == 1


def test_control_events_name_who_paused_and_why(auth_app, session_factory, load):
    load(incident())
    client = signed_in(auth_app, session_factory)
    job = client.post(JOBS_API, json={**WINDOW, "suppress_notifications": True}).get_json()
    paused = client.post(f"{JOBS_API}/{job['job_id']}/pause", json={"reason": "CRM <flapping>"})
    assert paused.status_code == 200

    page = html(client.get(f"/admin/jobs/{job['job_id']}"))

    events = page[page.index('id="events"') :]
    assert "paused" in events and ADMIN in events and "CRM &lt;flapping&gt;" in events
    assert 'id="state-reason-text">CRM &lt;flapping&gt;<' in page
    assert re.search(r'data-action="resume"[^>]*data-from="halted paused"\s*>', page)


def test_a_viewer_sees_jobs_without_controls_and_the_api_refuses_them(auth_app, session_factory, load):
    load(incident())
    admin_headers = api_key_headers(session_factory, name="admin-bot")
    job = auth_app.test_client().post(JOBS_API, json=WINDOW, headers=admin_headers).get_json()
    client = signed_in(auth_app, session_factory, VIEWER, ROLE_VIEWER)

    page = html(client.get(f"/admin/jobs/{job['job_id']}"))
    refused = client.post(f"{JOBS_API}/{job['job_id']}/pause", json={"reason": "viewer"})

    assert 'id="job-state">queued<' in page
    assert 'class="control' not in page and 'id="controls"' not in page
    assert refused.status_code == 403


def test_unknown_job_and_execution_are_404_pages(auth_app, session_factory):
    client = signed_in(auth_app, session_factory)
    for path in (f"/admin/jobs/{uuid.uuid4()}", "/admin/jobs/nope", f"/admin/executions/{uuid.uuid4()}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/html"
        assert "not_found" in html(response)


# ---- an execution -----------------------------------------------------------------------------


def test_the_execution_page_shows_payload_log_history_and_project(auth_app, session_factory, load):
    v, r = vendor(1), ramp(1)
    failed = execution(r, minutes=5, error_message="cannot access local variable 'new_task'")
    linked = execution(r, minutes=6, has_project=True)
    load(world([v], [r], [failed, linked]))
    client = signed_in(auth_app, session_factory)
    dismissed = client.post(
        "/api/ramps/executions/dismiss-batch",
        json={"execution_uuids": [failed["uuid"]], "reason": "handled by hand", "dry_run": False},
    )
    assert dismissed.status_code == 200

    page = html(client.get(f"/admin/executions/{failed['uuid']}"))
    with_project = html(client.get(f"/admin/executions/{linked['uuid']}"))

    assert 'id="execution-status">DISMISSED<' in page
    assert failed["payload"]["company"]["name"] in page
    assert "cannot access local variable &#39;new_task&#39;" in page
    history = page[page.index('id="history"') :]
    assert "dismissed" in history and ADMIN in history and "handled by hand" in history
    assert "none linked" in page
    assert "none linked" not in with_project and "Company" in with_project
    assert at(5).strftime("%Y-%m-%d %H:%M:%S UTC") in page
