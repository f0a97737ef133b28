"""The blast radius (SPEC section 8): totals agree with the runbook's SQL, `eligible` with a dry
run of the same window, and the cost is one statement whatever the window holds."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from app.models.identity import ROLE_VIEWER
from tests.support.retry_scenarios import api_key_headers, execution, iso, post, ramp, vendor, window, world

SUMMARY = "/api/ramps/executions/error-summary"
RUNBOOK_SQL = (
    "SELECT COUNT(*), vendor_id, ramp_id FROM or_ramp_executions WHERE status_code = 'ERROR'"
    " AND created_at >= :since AND created_at < :until GROUP BY vendor_id, ramp_id"
)


@pytest.fixture
def viewer(session_factory):
    return api_key_headers(session_factory, name="summary-viewer", role=ROLE_VIEWER)


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="summary-admin")


def incident(n_regression: int = 6) -> dict:
    """Two vendors, three ramps: regressions, config errors, a project, a success, a row outside."""
    r1, r2, r3 = ramp(1), ramp(1), ramp(2)
    rows = [execution(r1, minutes=1 + i) for i in range(n_regression)]
    rows += [execution(r1, minutes=30, error_type="MissingTriggerField", error_message="no company.id")]
    rows += [execution(r2, minutes=31, has_project=True)]
    rows += [
        execution(r3, minutes=32 + i, error_type="IntegrationConnectionError", error_message="CRM 503")
        for i in range(3)
    ]
    rows += [execution(r3, minutes=40, status="SUCCESS")]
    rows += [execution(r1, minutes=-30)]  # before the window
    return world([vendor(1), vendor(2)], [r1, r2, r3], rows)


def summary(client, headers, **query) -> dict:
    params = {"since": iso(0), "until": iso(24 * 60), **query}
    response = client.get(SUMMARY, query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_totals_match_the_runbook_sql_and_eligible_matches_a_dry_run(client, viewer, admin, load, engine):
    data = incident()
    load(data)
    body = summary(client, viewer)
    with engine.connect() as conn:
        runbook = conn.execute(text(RUNBOOK_SQL), {"since": iso(0), "until": iso(24 * 60)}).all()
    assert body["total"] == sum(row[0] for row in runbook) == 11
    dry = post(client, admin, window()).get_json()
    assert body["eligible"] == dry["summary"]["eligible"] == 9
    assert sum(g["count"] for g in body["groups"]) == body["total"]
    assert sum(g["eligible"] for g in body["groups"]) == body["eligible"]
    biggest = body["groups"][0]
    assert set(biggest) == {
        "vendor_id",
        "ramp_uuid",
        "ramp_name",
        "error_type",
        "count",
        "eligible",
        "first_at",
        "last_at",
        "sample_message",
    }
    assert (biggest["vendor_id"], biggest["ramp_uuid"], biggest["error_type"]) == (
        1,
        data["ramps"][0]["uuid"],
        "UnboundLocalError",
    )
    assert (biggest["count"], biggest["eligible"]) == (6, 6)
    assert biggest["first_at"].startswith("2026-05-11T12:31") and biggest["last_at"].startswith("2026-05-11T12:36")
    assert body["groups_truncated"] is False


def test_vendor_filter_agrees_with_a_dry_run_of_that_vendor(client, viewer, admin, load):
    load(incident())
    body = summary(client, viewer, vendor_ids="2")
    dry = post(client, admin, window(vendor_ids=[2])).get_json()
    assert (body["total"], body["eligible"]) == (dry["summary"]["matched"], dry["summary"]["eligible"]) == (3, 3)
    assert {g["vendor_id"] for g in body["groups"]} == {2}


@pytest.mark.parametrize(
    "group_by, keys, groups",
    [
        ("vendor", {"vendor_id"}, 2),
        ("category", {"category"}, 3),
        ("ramp", {"ramp_uuid", "ramp_name"}, 3),
        ("vendor,category", {"vendor_id", "category"}, 3),
        ("error_type,vendor", {"error_type", "vendor_id"}, 3),
        ("vendor,vendor", {"vendor_id"}, 2),
    ],
)
def test_group_by_variants(client, viewer, load, group_by, keys, groups):
    load(incident())
    body = summary(client, viewer, group_by=group_by)
    assert len(body["groups"]) == groups
    for group in body["groups"]:
        assert set(group) == keys | {"count", "eligible", "first_at", "last_at", "sample_message"}
    assert body["total"] == 11
    counts = [g["count"] for g in body["groups"]]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize(
    "query, field",
    [
        ({"group_by": "vendor,planet"}, "group_by"),
        ({"vendor_ids": "1,x"}, "vendor_ids"),
        ({"vendor_ids": "9223372036854775808"}, "vendor_ids"),
        ({"until": iso(-5)}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"colour": "red"}, "colour"),
        # Valid local times that leave the UTC range once their offset is applied.
        ({"until": "9999-12-31T23:59:59-01:00"}, "until"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ],
)
def test_bad_queries_are_400_naming_the_parameter(client, viewer, query, field):
    response = client.get(SUMMARY, query_string={"since": iso(0), **query}, headers=viewer)
    assert response.status_code == 400, response.get_json()
    assert list(response.get_json()["error"]["details"]) == [field]


def test_since_is_required_and_a_repeated_parameter_is_refused(client, viewer):
    response = client.get(SUMMARY, headers=viewer)
    assert response.status_code == 400 and "since" in response.get_json()["error"]["details"]
    response = client.get(f"{SUMMARY}?since={iso(0)}&since={iso(5)}", headers=viewer)
    assert response.status_code == 400 and "since" in response.get_json()["error"]["details"]


def test_the_statement_count_does_not_grow_with_the_window(client, viewer, load, engine):
    def statements_for_summary() -> list[str]:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            summary(client, viewer)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return seen

    def of_the_summary(statements: list[str]) -> list[str]:
        # Everything but the credential check (the key lookup, its last use, the throttle).
        return [s for s in statements if not any(t in s for t in ("or_api_keys", "or_auth_throttle"))]

    load(incident(n_regression=3))
    small = statements_for_summary()
    more = incident(n_regression=400)
    for row in more["executions"]:
        row["trigger_key"] = "big-" + row["uuid"]
    more["vendors"] = [dict(v, id=v["id"] + 10) for v in more["vendors"]]
    for r in more["ramps"]:
        r["vendor_id"] += 10
    load(more)
    large = statements_for_summary()
    # Every statement of the request counts, so a per-group lookup (of a ramp or a vendor name)
    # would show: SET TRANSACTION and the one grouped statement, whatever the window holds.
    assert len(small) == len(large)
    assert len(of_the_summary(small)) == len(of_the_summary(large)) == 2
