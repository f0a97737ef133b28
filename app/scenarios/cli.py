"""`flask --app wsgi scenario load FILE`."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app.db import get_database
from app.errors import ValidationError
from app.scenarios.schema import error_lines
from app.scenarios.use_case import import_scenario_file

scenario_cli = AppGroup("scenario", help="Scenario files (SPEC section 5).")


@scenario_cli.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
def load(file: str) -> None:
    """Load FILE in one transaction: all of it, or (on any error) nothing."""
    try:
        report = import_scenario_file(get_database().session_factory, file)
    except ValidationError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if isinstance(exc.details, dict) and all(isinstance(v, list) for v in exc.details.values()):
            for line in error_lines(exc.details):
                click.echo(f"  {line}", err=True)
        click.echo("nothing was written", err=True)
        sys.exit(1)
    click.echo(f"loaded {file}")
    for line in report.summary_lines():
        click.echo(f"  {line}")
    for line in report.credential_lines():
        # Shown once, like `api-keys create`: only the hashes are stored.
        click.echo(f"  {line}")
