"""Looking at the embedded server without changing it: postmaster.pid, the process it names, the
port file, and what answers on a port."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2

from app.embedded_db.common import HOST, SUPERUSER, EmbeddedServer, Paths


@dataclass(frozen=True)
class PidFile:
    pid: int
    port: int | None
    listen: str
    status: str


def read_pid_file(pgdata: Path) -> PidFile | None:
    """Parse postmaster.pid. Tolerates a partially written file (postgres fills it in as it
    starts up), which the wheel's PostmasterInfo asserts on."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        return PidFile(pid=0, port=None, listen="", status="")  # garbage: treated as stale

    def line(i: int) -> str:
        return lines[i].strip() if len(lines) > i else ""

    port = int(line(3)) if line(3).isdigit() else None
    return PidFile(pid=pid, port=port, listen=line(5), status=line(7))


def is_our_postmaster(pid: int, pgdata: Path) -> bool:
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


def probe(port: int, timeout: int = 2) -> str | None:
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


def same_dir(reported: str | None, pgdata: Path) -> bool:
    return reported is not None and os.path.realpath(reported) == str(pgdata)


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR like postgres itself, so TIME_WAIT leftovers do not count as "taken".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def read_port_file(p: Paths) -> int | None:
    try:
        text = p.port_file.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def write_port_file(p: Paths, port: int) -> None:
    tmp = p.port_file.with_suffix(".port.tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(p.port_file)  # atomic: readers never see a half-written port


def running_server(p: Paths) -> EmbeddedServer | None:
    """Our postmaster, if postmaster.pid names a live one; whether it answers is not checked."""
    info = read_pid_file(p.pgdata)
    if info is None or info.port is None or not is_our_postmaster(info.pid, p.pgdata):
        return None
    return EmbeddedServer(p.instance_dir, p.pgdata, info.port, info.pid)
