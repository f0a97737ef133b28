"""Flask CLI verbs (`flask --app wsgi <verb>`); each feature adds its group in register_cli."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

db_cli = AppGroup("db", help="Database schema (Alembic migrations).")


def _database_url() -> str:
    return current_app.extensions["onramp_db"].engine.url.render_as_string(hide_password=False)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from app.migrate import upgrade

    upgrade(_database_url(), revision)
    click.echo(f"database upgraded to {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from app.migrate import downgrade

    downgrade(_database_url(), revision)
    click.echo(f"database downgraded to {revision}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(db_cli)

    from app.auth.cli import api_keys_cli, users_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(api_keys_cli)

    from app.notifications.cli import notifications_cli
    from app.scenarios.cli import scenario_cli

    app.cli.add_command(scenario_cli)
    app.cli.add_command(notifications_cli)

    from app.worker import worker_command

    app.cli.add_command(worker_command)
