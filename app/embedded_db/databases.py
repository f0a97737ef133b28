"""Databases on a server (embedded or any other): create one if missing, the app's default URL."""

from __future__ import annotations

from pathlib import Path

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from app.embedded_db.common import DEFAULT_DBNAME, DEFAULT_INSTANCE_DIR, HOST, SUPERUSER, EmbeddedServer
from app.embedded_db.lifecycle import ensure_server


def _connect_kwargs(url_or_server: str | EmbeddedServer) -> dict:
    if isinstance(url_or_server, EmbeddedServer):
        return {"host": HOST, "port": url_or_server.port, "user": SUPERUSER}
    from sqlalchemy.engine import make_url

    url = make_url(url_or_server)
    kwargs = {k: v for k, v in url.translate_connect_args(username="user").items() if k != "database"}
    kwargs.update(url.query)
    return kwargs


def ensure_database(url_or_server: str | EmbeddedServer, dbname: str) -> None:
    """Create database `dbname` on the server if it does not exist.

    `url_or_server` is an EmbeddedServer or any SQLAlchemy/libpq URL of that server (its
    database part is ignored: we connect to the `postgres` maintenance database).
    """
    conn = psycopg2.connect(dbname="postgres", connect_timeout=10, **_connect_kwargs(url_or_server))
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                except (pg_errors.DuplicateDatabase, pg_errors.UniqueViolation):
                    pass  # a concurrent process created it first
    finally:
        conn.close()


def default_database_url(instance_dir: Path | str = DEFAULT_INSTANCE_DIR) -> str:
    """What the app uses when DATABASE_URL is unset: the `onramp` database on the embedded
    server, started if needed."""
    server = ensure_server(instance_dir)
    ensure_database(server, DEFAULT_DBNAME)
    return server.url(DEFAULT_DBNAME)
