"""Tests for app.embedded_db (the package) against real PostgreSQL servers (no mocks).

One server is initialised per module and restarted by the tests that need a stopped server;
tests run in file order, and test_stop_* come last.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2
import pytest
from sqlalchemy import create_engine, text

from app import embedded_db as edb
from app.embedded_db import common, permissions, state

pytestmark = pytest.mark.slow  # starts, kills and restarts private PostgreSQL clusters

REPO = Path(__file__).resolve().parents[2]


def _new_dir() -> Path:
    # Not tmp_path: pytest resets /tmp/pytest-of-<user> to 0700 at every session start, which,
    # when running as root, would lock the postgres system user out of servers that a
    # concurrently running session started there.
    return Path(tempfile.mkdtemp(prefix="onramp-pg-test-"))


def _teardown(instance_dir: Path) -> None:
    try:
        edb.stop_server(instance_dir)
    except Exception:
        server = edb.get_running_server(instance_dir)
        if server is not None:  # never leak a daemon, even if pg_ctl misbehaves
            psutil.Process(server.pid).kill()
        raise
    finally:
        shutil.rmtree(instance_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def instance():
    d = _new_dir()
    yield d
    _teardown(d)


@pytest.fixture
def other_instance():
    d = _new_dir()
    yield d
    _teardown(d)


def _data_directory(port: int) -> Path:
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            return Path(cur.fetchone()[0])
    finally:
        conn.close()


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("DATABASE_URL", None)
    return env


def _cli(instance_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.embedded_db", "--instance-dir", str(instance_dir), *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _write_postmaster_pid(instance_dir: Path, pid: int, port: int) -> None:
    pgdata = instance_dir.resolve() / "pgdata"
    (pgdata / "postmaster.pid").write_text(
        f"{pid}\n{pgdata}\n1700000000\n{port}\n\n127.0.0.1\n  2146498         9\nready   \n"
    )


def test_start_then_connect_and_select_1(instance):
    server = edb.ensure_server(instance)

    engine = create_engine(server.url("postgres"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
    assert server.pgdata == instance.resolve() / "pgdata"
    assert _data_directory(server.port) == server.pgdata
    assert (instance / "pg.port").read_text().strip() == str(server.port)
    assert server.url("x") == f"postgresql+psycopg2://postgres@127.0.0.1:{server.port}/x"
    assert psutil.Process(server.pid).username() == (
        edb.SYSTEM_USER if os.geteuid() == 0 else psutil.Process().username()
    )


def test_start_again_reuses_the_same_server_and_port(instance):
    first = edb.ensure_server(instance)
    second = edb.ensure_server(instance)
    assert (second.pid, second.port) == (first.pid, first.port)
    assert edb.get_running_server(instance) == first


def test_other_processes_attach_and_the_server_outlives_them(instance):
    server = edb.ensure_server(instance)

    result = _cli(instance, "url", "--db", "postgres")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == server.url("postgres")
    status = _cli(instance, "status")
    assert status.returncode == 0, status.stderr
    assert f"pid={server.pid} port={server.port}" in status.stdout
    # No atexit shutdown (unlike the wheel's PostgresServer): still the same server.
    assert edb.get_running_server(instance) == server


def test_concurrent_starts_share_one_server(instance):
    edb.stop_server(instance)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.embedded_db", "--instance-dir", str(instance), "start"],
            cwd=REPO,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs

    server = edb.get_running_server(instance)
    assert server is not None
    for out, _err in outputs:
        assert f"pid={server.pid} port={server.port}" in out


def test_restart_keeps_port_and_data(instance):
    server = edb.ensure_server(instance)
    edb.ensure_database(server, "persist")
    engine = create_engine(server.url("persist"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS kept (v text)"))
        conn.execute(text("INSERT INTO kept VALUES ('x')"))
    engine.dispose()

    assert edb.stop_server(instance) is True
    restarted = edb.ensure_server(instance)

    assert restarted.port == server.port
    assert restarted.pid != server.pid
    engine = create_engine(restarted.url("persist"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM kept")).scalar() >= 1
    engine.dispose()


@pytest.mark.parametrize("bogus", ["dead pid", "live non-postgres pid", "garbage"])
def test_stale_handle_pids_and_postmaster_pid_do_not_break_startup(instance, bogus):
    port = edb.ensure_server(instance).port
    edb.stop_server(instance)
    pgdata = instance.resolve() / "pgdata"
    (pgdata / ".handle_pids.json").write_text(f"[{_dead_pid()}, {os.getpid()}]")
    if bogus == "dead pid":
        _write_postmaster_pid(instance, _dead_pid(), port)
    elif bogus == "live non-postgres pid":
        # Alive and owned by the same user as postgres when not root: postgres itself would
        # refuse to start ("lock file already exists") if we left this file in place.
        _write_postmaster_pid(instance, os.getpid(), port)
    else:
        (pgdata / "postmaster.pid").write_text("not a pid file\n")

    server = edb.ensure_server(instance)

    assert not (pgdata / ".handle_pids.json").exists()
    assert psutil.Process(server.pid).name() == "postgres"
    assert _data_directory(server.port) == pgdata
    assert server.port == port


def test_foreign_server_is_never_attached_to(instance, other_instance):
    # A leftover from an initdb that was killed half way must not get in the way.
    leftover = other_instance / "pgdata.init-424242"
    leftover.mkdir()
    (leftover / "PG_VERSION").write_text("18\n")
    other = edb.ensure_server(other_instance)
    assert not leftover.exists()
    ours_pgdata = instance.resolve() / "pgdata"

    # 1. Ours is stopped and pg.port names the foreign server's port.
    edb.stop_server(instance)
    (instance / "pg.port").write_text(f"{other.port}\n")
    server = edb.ensure_server(instance)
    assert server.port != other.port
    assert _data_directory(server.port) == ours_pgdata
    assert (instance / "pg.port").read_text().strip() == str(server.port)

    # 2. Ours is running and pg.port was overwritten: keep ours, repair the file.
    (instance / "pg.port").write_text(f"{other.port}\n")
    again = edb.ensure_server(instance)
    assert (again.pid, again.port) == (server.pid, server.port)
    assert (instance / "pg.port").read_text().strip() == str(server.port)

    # 3. postmaster.pid names a live postgres of another cluster (pid reuse after a crash).
    edb.stop_server(instance)
    _write_postmaster_pid(instance, other.pid, other.port)
    third = edb.ensure_server(instance)
    assert third.pid != other.pid
    assert _data_directory(third.port) == ours_pgdata

    # The foreign server was left alone throughout.
    assert edb.get_running_server(other_instance) == other
    assert _data_directory(other.port) == other.pgdata


def test_stored_port_taken_by_another_program(instance):
    port = edb.ensure_server(instance).port
    edb.stop_server(instance)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        # SO_REUSEADDR: the stopped server's closed connections leave the port in TIME_WAIT.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        server = edb.ensure_server(instance)
    assert server.port != port
    assert (instance / "pg.port").read_text().strip() == str(server.port)
    assert _data_directory(server.port) == instance.resolve() / "pgdata"


def test_restarts_our_server_when_it_does_not_listen_on_tcp(instance):
    # As the wheel's get_server() would have started it: unix socket only.
    edb.stop_server(instance)
    paths = common.paths(instance)
    common.pg_ctl(
        ["-w", "-l", str(paths.log_file), "-o", f"-h '' -k {paths.pgdata}", "start"],
        pgdata=paths.pgdata,
        **permissions.run_as_kwargs(),
    )
    unix_only = state.read_pid_file(paths.pgdata)
    assert unix_only is not None and unix_only.listen == ""

    server = edb.ensure_server(instance)

    assert server.pid != unix_only.pid
    assert _data_directory(server.port) == paths.pgdata


def test_start_failure_reports_the_log_tail(instance):
    edb.stop_server(instance)
    auto_conf = instance.resolve() / "pgdata" / "postgresql.auto.conf"
    original = auto_conf.read_text()
    auto_conf.write_text(original + "onramp_bogus_setting = 1\n")  # keeps the file's owner
    try:
        with pytest.raises(edb.EmbeddedPostgresError, match="onramp_bogus_setting"):
            edb.ensure_server(instance)
    finally:
        auto_conf.write_text(original)
    assert edb.ensure_server(instance).port > 0


@pytest.mark.parametrize("how", ["refused", "foreign", "silent"])
def test_our_live_postmaster_that_does_not_answer_fails_fast_and_says_what_to_do(instance, how, request):
    # Seen when a run starts in another network namespace while the daemon of an earlier run is
    # still up: postmaster.pid names our live postmaster, but its port does not reach it from here.
    # "refused": postmaster.pid names a port nobody listens on (what the other namespace sees);
    # "foreign": another cluster answers on that port (that namespace's own server);
    # "silent": the postmaster is frozen (SIGSTOP), so connections are accepted and never answered.
    server = edb.ensure_server(instance)
    pid_file = server.pgdata / "postmaster.pid"
    original = pid_file.read_text()
    postmaster = psutil.Process(server.pid)
    if how == "silent":
        postmaster.suspend()
    else:
        if how == "refused":
            port = state.free_port()
        else:
            port = edb.ensure_server(request.getfixturevalue("other_instance")).port
        lines = original.splitlines(keepends=True)
        lines[3] = f"{port}\n"
        pid_file.write_text("".join(lines))
    try:
        started = time.monotonic()
        with pytest.raises(edb.EmbeddedPostgresError) as failure:
            edb.ensure_server(instance)
        elapsed = time.monotonic() - started
    finally:
        if how == "silent":
            postmaster.resume()
        else:
            pid_file.write_text(original)
    message = str(failure.value)
    assert elapsed < 12, f"took {elapsed:.1f}s to give up"
    assert f"pid {server.pid}" in message
    assert "does not answer" in message
    assert "make db-stop" in message
    if how == "foreign":
        assert "another server" in message
    # The server itself was left alone and is usable again once it answers.
    assert edb.ensure_server(instance) == server


def test_refuses_a_pgdata_that_is_not_a_cluster():
    d = _new_dir()
    try:
        (d / "pgdata").mkdir()
        (d / "pgdata" / "precious.txt").write_text("not ours to delete")
        with pytest.raises(edb.EmbeddedPostgresError, match="not a PostgreSQL data directory"):
            edb.ensure_server(d)
        assert (d / "pgdata" / "precious.txt").exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_orphan_of_a_deleted_pgdata_is_replaced(instance, other_instance):
    # `rm -rf instance/pgdata` while the server runs leaves a postmaster on a deleted dir.
    bystander = edb.ensure_server(instance)
    orphan = edb.ensure_server(other_instance)
    shutil.rmtree(orphan.pgdata)

    server = edb.ensure_server(other_instance)

    assert not psutil.pid_exists(orphan.pid) or psutil.Process(orphan.pid).status() == "zombie"
    assert server.port == orphan.port  # its port was released and is reused
    assert _data_directory(server.port) == other_instance.resolve() / "pgdata"
    assert edb.get_running_server(instance) == bystander


def test_ensure_database_and_default_database_url(instance):
    server = edb.ensure_server(instance)

    edb.ensure_database(server, "onramp_a")
    edb.ensure_database(server, "onramp_a")  # idempotent
    edb.ensure_database(server.url("postgres"), "onramp_b")  # SQLAlchemy URL
    edb.ensure_database(server.libpq_url("postgres"), 'we"ird db')  # libpq URL, odd name

    url = edb.default_database_url(instance)
    assert url == server.url("onramp")
    for dbname in ("onramp_a", "onramp_b", 'we"ird db', "onramp"):
        conn = psycopg2.connect(host="127.0.0.1", port=server.port, user="postgres", dbname=dbname)
        conn.close()


def test_stop_server(instance):
    server = edb.ensure_server(instance)

    assert edb.stop_server(instance) is True

    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == "zombie"
    assert not (server.pgdata / "postmaster.pid").exists()
    assert edb.get_running_server(instance) is None
    assert edb.stop_server(instance) is False  # stopping a stopped server is fine
    assert _cli(instance, "status").returncode == 3
