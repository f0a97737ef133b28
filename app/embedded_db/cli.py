"""`python -m app.embedded_db [--instance-dir DIR] start|stop|status|url|psql [--db NAME]`
(the Makefile's db-start, db-stop, db-status and psql targets)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.embedded_db.common import (
    DEFAULT_DBNAME,
    DEFAULT_INSTANCE_DIR,
    HOST,
    POSTGRES_BIN_PATH,
    SUPERUSER,
    EmbeddedPostgresError,
    paths,
)
from app.embedded_db.databases import ensure_database
from app.embedded_db.lifecycle import ensure_server, get_running_server, not_answering_message, stop_server
from app.embedded_db.state import probe, read_pid_file, same_dir


def _libpq_url(url: str) -> str:
    # psql does not understand SQLAlchemy's "+driver" suffix.
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.embedded_db", description="Manage the embedded PostgreSQL server.", allow_abbrev=False
    )  # keep psql's options for psql
    parser.add_argument(
        "--instance-dir",
        type=Path,
        default=DEFAULT_INSTANCE_DIR,
        help="default: $ONRAMP_INSTANCE_DIR or <repo>/instance",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "url", "psql"])
    parser.add_argument("--db", default=DEFAULT_DBNAME, help="database name (default: onramp)")
    parser.add_argument(
        "--libpq", action="store_true", help="url: print postgresql:// instead of postgresql+psycopg2://"
    )
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "psql":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    try:
        if args.command == "start":
            server = ensure_server(args.instance_dir)
            ensure_database(server, args.db)
            print(f"embedded PostgreSQL running: pid={server.pid} port={server.port} pgdata={server.pgdata}")
            print(f"  psql -h {HOST} -p {server.port} -U {SUPERUSER} {args.db}")
        elif args.command == "stop":
            stopped = stop_server(args.instance_dir)
            print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL not running")
        elif args.command == "status":
            server = get_running_server(args.instance_dir)
            if server is None:
                print(f"not running (pgdata={paths(args.instance_dir).pgdata})")
                return 3  # pg_ctl status convention
            reported = probe(server.port)
            ready = same_dir(reported, server.pgdata)
            print(
                f"running pid={server.pid} port={server.port} pgdata={server.pgdata} "
                f"accepting_connections={'yes' if ready else 'no'}"
            )
            info = read_pid_file(server.pgdata)
            if not ready and info is not None and info.status == "ready":
                print(not_answering_message(server, reported), file=sys.stderr)
        elif args.command == "url":
            server = ensure_server(args.instance_dir)
            ensure_database(server, args.db)
            print(server.libpq_url(args.db) if args.libpq else server.url(args.db))
        elif args.command == "psql":
            # DATABASE_URL wins, as for the app; otherwise the embedded server.
            env_url = os.environ.get("DATABASE_URL")
            if env_url:
                target = _libpq_url(env_url)
            else:
                server = ensure_server(args.instance_dir)
                ensure_database(server, args.db)
                target = server.libpq_url(args.db)
            psql = str(POSTGRES_BIN_PATH / "psql")
            sys.stdout.flush()
            os.execv(psql, [psql, target, *extra])
    except EmbeddedPostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
