"""The shape of the bench data: error mixes, shares of the skip-reason extras, and the
parameters the fill's SQL binds (generate.py's docstring describes the result).

The fill draws one uniform random number per row for its error kind and another for its
extras; the tables below turn those draws into buckets.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

RUNTIME_REGRESSION = "cannot access local variable 'new_task' where it is not associated with a value"

# (error_type, category, step, message). The first column of each mix is the upper bound of the
# bucket on a uniform draw, so each mix reads as cumulative shares.
BACKGROUND_ERRORS = [
    (0.09, "MissingTriggerField", "config", "find_or_create_account", "trigger payload has no 'company.id'"),
    (
        0.11,
        "MissingRelatedAccount",
        "config",
        "create_project",
        "create_project needs an account: run find_or_create_account first",
    ),
    (0.12, "InvalidConfigurationError", "config", None, "unknown step type 'create_task'"),
    (0.27, "IntegrationConnectionError", "integration", "notify", "cannot reach CRM: ConnectionError"),
    (0.35, "RateLimitError", "integration", "notify", "CRM rate limit hit (429)"),
    (0.40, "InvalidAccessTokenError", "integration", "notify", "CRM refused our token (401)"),
    (0.47, "ModuleTimeoutError", "integration", "notify", "CRM did not answer within 5s"),
    (0.72, "UnboundLocalError", "runtime", "create_project", RUNTIME_REGRESSION),
    (0.82, "KeyError", "runtime", "notify", "'owner'"),
    (0.92, "TypeError", "runtime", "create_project", "'NoneType' object is not subscriptable"),
    (1.00, "AttributeError", "runtime", "find_or_create_account", "'NoneType' object has no attribute 'get'"),
]
INCIDENT_ERRORS = [
    (0.02, "MissingTriggerField", "config", "find_or_create_account", "trigger payload has no 'company.id'"),
    (0.04, "RateLimitError", "integration", "notify", "CRM rate limit hit (429)"),
    (0.05, "IntegrationConnectionError", "integration", "notify", "cannot reach CRM: ConnectionError"),
    (1.00, "UnboundLocalError", "runtime", "create_project", RUNTIME_REGRESSION),
]
# Extra skip reasons, as cumulative shares of a second uniform draw:
# (linked project, later SUCCESS duplicate, earlier replay attempt).
BACKGROUND_EXTRAS = (0.03, 0.07, 0.12)
INCIDENT_EXTRAS = (0.01, 0.02, 0.03)
# Ramps by id % 100, vendors' integrations by id % 50 (the two never pick the same vendor).
RAMP_STATUS_BY_MOD100 = {3: "archived", 13: "deleted", 23: "draft"}
INTEGRATION_BY_MOD50 = {5: "not_configured", 15: "revoked", 25: "expired", 35: "missing"}
# Companies per vendor named in payloads; the first ACCOUNTS_PER_VENDOR already have an account
# (so replays both reuse and create accounts).
COMPANIES_PER_VENDOR = 800
ACCOUNTS_PER_VENDOR = 400
# Share of SUCCESS rows that keep their INFO log lines.
SUCCESS_LOG_SHARE = 0.10
SEED = 0.4242


def _catalog(mix, scope: str) -> list[tuple]:
    return [
        (scope, bucket, etype, category, step, message)
        for bucket, (_share, etype, category, step, message) in enumerate(mix, start=1)
    ]


def thresholds(mix) -> list[float]:
    # width_bucket(x, array[t1..tn]) returns 0 below t1, i for t_i <= x < t_{i+1}: the bucket
    # ids must start at 1 for x in [0, t1), so the array starts at 0 and drops the final 1.0.
    return [0.0] + [hi for hi, *_ in mix[:-1]]


def error_catalog() -> list[tuple]:
    """(scope, bucket, error_type, category, step, message) of both mixes, "bg" and "inc"."""
    return _catalog(BACKGROUND_ERRORS, "bg") + _catalog(INCIDENT_ERRORS, "inc")


def parameters(args: argparse.Namespace, anchor: datetime) -> dict:
    """Everything the fill's SQL binds, from the command line and the anchor hour."""
    n_total = args.executions
    n_err_total = round(n_total * args.error_rate)
    n_inc = args.incident
    n_bg_err = n_err_total - n_inc
    n_bg = n_total - n_inc  # background rows are g in 1..n_bg; ERROR ones are g <= n_bg_err
    span = timedelta(days=args.days)
    window = timedelta(hours=args.incident_hours)
    b0 = anchor - span
    inc0 = anchor - timedelta(days=1) - window
    version_switch = anchor - timedelta(days=10)
    return dict(
        n_err_total=n_err_total,
        n_bg=n_bg,
        n_bg_err=n_bg_err,
        n_inc=n_inc,
        n_vendors=args.vendors,
        n_ramps=args.ramps,
        b0=b0,
        span=span,
        inc0=inc0,
        window=window,
        anchor=anchor,
        version_switch=version_switch,
        companies=COMPANIES_PER_VENDOR,
        accounts=ACCOUNTS_PER_VENDOR,
        seed=SEED,
        bg_thresholds=thresholds(BACKGROUND_ERRORS),
        inc_thresholds=thresholds(INCIDENT_ERRORS),
        bg_x1=BACKGROUND_EXTRAS[0],
        bg_x2=BACKGROUND_EXTRAS[1],
        bg_x3=BACKGROUND_EXTRAS[2],
        inc_x1=INCIDENT_EXTRAS[0],
        inc_x2=INCIDENT_EXTRAS[1],
        inc_x3=INCIDENT_EXTRAS[2],
        success_log_share=SUCCESS_LOG_SHARE,
        success_projects=args.success_projects,
    )
