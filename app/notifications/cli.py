"""`flask --app wsgi notifications dispatch [--limit N] [--ignore-backoff]`: retry due outbox rows."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from app.db import get_database
from app.notifications.delivery import dispatch_pending

notifications_cli = AppGroup("notifications", help="The notification outbox.")


@notifications_cli.command("dispatch")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(min=1), help="Rows to try, due first.")
@click.option("--ignore-backoff", is_flag=True, help="Also try pending rows whose next attempt is not due yet.")
def dispatch(limit: int, ignore_backoff: bool) -> None:
    """Deliver due notifications; exits 1 when some deliveries failed again."""
    report = dispatch_pending(
        get_database().session_factory, config=current_app.config["ONRAMP"], limit=limit, ignore_backoff=ignore_backoff
    )
    for line in report.summary_lines():
        click.echo(line)
    if report.failed:
        sys.exit(1)
