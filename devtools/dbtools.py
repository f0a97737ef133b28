"""Database helpers shared by the tests, the rehearsal and the bench: which PostgreSQL server to
use, a URL in its two spellings, and throwaway databases on that server.

Which server (`server_url`), first match wins: TEST_DATABASE_URL, then DATABASE_URL (the same
server as the service; callers create their own database on it), else the embedded PostgreSQL
under instance/ (started if needed). The URL returned points at the server's `postgres`
maintenance database (or whatever DATABASE_URL names); `database_url` swaps in another name.

Two spellings of one URL: SQLAlchemy's `postgresql+psycopg2://...` (what app.db, Alembic and
create_app take; `app.config.normalize_database_url` turns the other form into it) and libpq's
`postgresql://...` (what psql, pgbench and psycopg2.connect take; `libpq_url` below).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from app.config import REPO_ROOT, normalize_database_url
from app.embedded_db import ensure_database

SERVER_VARIABLES = ("TEST_DATABASE_URL", "DATABASE_URL")


def server_url(variables: Sequence[str] = SERVER_VARIABLES) -> str:
    """SQLAlchemy URL of the server to use: the first of `variables` that is set, else the
    embedded server (the bench passes only DATABASE_URL: it is not a test)."""
    for name in variables:
        if os.environ.get(name):
            return normalize_database_url(os.environ[name])
    from app.embedded_db import ensure_server

    return ensure_server(REPO_ROOT / "instance").url("postgres")


def database_url(url: str, name: str) -> str:
    """The SQLAlchemy URL of database `name` on the server of `url`."""
    return make_url(normalize_database_url(url)).set(database=name).render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL without SQLAlchemy's `+driver` suffix, for psycopg2.connect, psql, pgbench."""
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


def database_name(url: str) -> str:
    return make_url(url).database


def redacted(url: str) -> str:
    """The URL with its password masked, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def drop_database(url: str, name: str) -> None:
    """Drop database `name` on the server of `url` if it exists, cutting off its connections."""
    admin = psycopg2.connect(libpq_url(database_url(url, "postgres")), connect_timeout=10)
    admin.autocommit = True  # DROP DATABASE cannot run inside a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


def recreate_database(url: str, name: str) -> str:
    """Drop and create database `name` on the server of `url`, empty; returns its SQLAlchemy URL."""
    drop_database(url, name)
    ensure_database(url, name)
    return database_url(url, name)
