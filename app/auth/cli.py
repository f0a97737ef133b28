"""`flask --app wsgi users ...` and `flask --app wsgi api-keys ...`.

Key and secret are printed once, at creation (and the secret at rotation); `list` never shows
either -- the database does not hold them in usable form.
"""

from __future__ import annotations

import functools
import logging

import click
from flask.cli import AppGroup

from app.auth import manage
from app.db import get_database
from app.errors import AppError
from app.models.identity import ROLES

log = logging.getLogger(__name__)

users_cli = AppGroup("users", help="People who may sign in, and their roles.")
api_keys_cli = AppGroup("api-keys", help="Internal API keys for automation.")

_role_option = click.option("--role", required=True, type=click.Choice(ROLES), help="Role to grant.")


def _reports_errors(command):
    """A typed error (unknown name, duplicate, bad role) becomes a one-line CLI error, exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except AppError as exc:
            raise click.ClickException(exc.message) from exc

    return wrapper


def _factory():
    return get_database().session_factory


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


@users_cli.command("create")
@click.option("--email", required=True)
@_role_option
@_reports_errors
def users_create(email: str, role: str) -> None:
    """Allow EMAIL to sign in with ROLE."""
    user = manage.add_user(_factory(), email=email, role=role)
    log.info("user created: %s role=%s", user.email, user.role)
    click.echo(f"created user {user.email} with role {user.role}")


@users_cli.command("list")
@_reports_errors
def users_list() -> None:
    """List users, their roles and last sign-in."""
    rows = manage.all_users(_factory())
    click.echo(f"{'EMAIL':40} {'ROLE':15} {'CREATED':26} LAST LOGIN")
    for user in rows:
        click.echo(f"{user.email:40} {user.role:15} {_when(user.created_at):26} {_when(user.last_login_at)}")


@users_cli.command("set-role")
@click.option("--email", required=True)
@_role_option
@_reports_errors
def users_set_role(email: str, role: str) -> None:
    """Change a user's role (takes effect on their next request)."""
    user = manage.change_user_role(_factory(), email=email, role=role)
    log.info("user role changed: %s role=%s", user.email, user.role)
    click.echo(f"{user.email} now has role {user.role}")


@users_cli.command("delete")
@click.option("--email", required=True)
@_reports_errors
def users_delete(email: str) -> None:
    """Remove a user; their browser sessions stop working at once."""
    manage.remove_user(_factory(), email)
    log.info("user deleted: %s", email.strip().lower())
    click.echo(f"deleted user {email.strip().lower()}")


@api_keys_cli.command("create")
@click.option("--name", required=True, help="A unique name; it is what audit records show.")
@_role_option
@_reports_errors
def api_keys_create(name: str, role: str) -> None:
    """Create a key and print its key and secret (shown only this once)."""
    api_key, key, secret = manage.issue_api_key(_factory(), name=name, role=role)
    log.info("api key created: %s role=%s", api_key.name, api_key.role)
    click.echo(f"created API key {api_key.name!r} with role {api_key.role}")
    click.echo("Store these now; they cannot be shown again:")
    click.echo(f"key:    {key}")
    click.echo(f"secret: {secret}")


@api_keys_cli.command("list")
@_reports_errors
def api_keys_list() -> None:
    """List keys (names, roles, state, last use); never the key or the secret."""
    rows = manage.all_api_keys(_factory())
    click.echo(f"{'NAME':30} {'ROLE':15} {'STATUS':8} {'CREATED':26} LAST USED")
    for row in rows:
        status = "revoked" if row.revoked_at else "active"
        click.echo(f"{row.name:30} {row.role:15} {status:8} {_when(row.created_at):26} {_when(row.last_used_at)}")


@api_keys_cli.command("revoke")
@click.option("--name", required=True)
@_reports_errors
def api_keys_revoke(name: str) -> None:
    """Revoke a key; it stops working on the next request."""
    api_key = manage.revoke_api_key(_factory(), name)
    log.info("api key revoked: %s", api_key.name)
    click.echo(f"revoked API key {api_key.name!r}")


@api_keys_cli.command("rotate")
@click.option("--name", required=True)
@_reports_errors
def api_keys_rotate(name: str) -> None:
    """Give a key a new secret (printed once); the old secret stops working at once."""
    api_key, secret = manage.rotate_api_key(_factory(), name)
    log.info("api key rotated: %s", api_key.name)
    click.echo(f"rotated API key {api_key.name!r}; the key is unchanged, the old secret no longer works")
    click.echo(f"secret: {secret}")
