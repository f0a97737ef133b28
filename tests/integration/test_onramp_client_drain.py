"""`drain` as a real subprocess, against a real service and real worker processes on the test
database: to completion, into the brake, Ctrl-C, the confirmation rule, and a re-run after the
answer that started the job was lost on the network."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from sqlalchemy import func
from sqlalchemy import select as sql_select

from app.models import Project, RetryBatch, RetryJob
from devtools.onramp.drain import PAUSE_REASON
from devtools.onramp.pending import FILE_NAME
from tests.integration.test_onramp_client import JOBS, REPO_ROOT, WINDOW, Api, Cli
from tests.support.retry_scenarios import api_key_headers, backlog
from tests.support.worker import running_workers, wait_for

pytestmark = pytest.mark.slow

STEPS = ["fetch_crm_record", "find_or_create_account", "create_project"]
PROGRESS = re.compile(r"job [0-9a-f-]{36} (queued|running|completed|halted): (\d+)/(\d+) done ")


@pytest.fixture
def admin(session_factory):
    return api_key_headers(session_factory, name="cli-admin")


@pytest.fixture
def service(service_process):
    with service_process("cli") as running:
        yield running


@pytest.fixture
def workers(database_url, tmp_path):
    with running_workers(database_url, tmp_path / "workers", task_modules=()) as started:
        yield started


@pytest.fixture
def cli(service, admin, tmp_path) -> Cli:
    return Cli(service.url, tmp_path / "state", headers=admin)


@pytest.fixture
def api(service, admin) -> Api:
    return Api(service.url, admin)


def count(session_factory, model) -> int:
    with session_factory() as session, session.begin():
        return session.scalar(sql_select(func.count()).select_from(model))


def test_drain_to_completion_prints_plain_progress_lines_and_exits_0(
    cli, api, load, workers, session_factory, tmp_path
):
    load(backlog(30))
    done = cli.run("drain", *WINDOW, "--suppress-notifications", "--rate", "50", "--yes")
    assert done.code == 0, done.stdout + done.stderr
    assert done.lines[0] == "Dry run: 30 rows in scope, 30 eligible, 0 skipped (batch " + done.lines[0][-37:]
    started = next(line for line in done.lines if line.startswith("Started job "))
    job_id = started.split()[2].rstrip(":")
    assert started == f"Started job {job_id}: 30 rows."
    progress = [PROGRESS.match(line) for line in done.lines if line.startswith("job ")]
    assert progress and all(progress)
    assert [int(m.group(2)) for m in progress] == sorted(int(m.group(2)) for m in progress)  # never backwards
    assert progress[-1].group(1, 2, 3) == ("completed", "30", "30")
    assert done.lines[-1] == f"Job {job_id} completed: 30 rows, 30 success, 0 error, 0 skipped."
    assert "\x1b" not in done.stdout and "━" not in done.stdout  # lines, not a bar, when not a terminal

    job = api.job(job_id)
    assert job["state"] == "completed" and job["request"]["suppress_notifications"] is True
    assert job["max_replays_per_second"] == 50
    assert count(session_factory, Project) == 30
    with session_factory() as session, session.begin():
        key = session.scalar(sql_select(RetryJob.idempotency_key))
    assert key.startswith("onramp-cli-")
    assert json.loads((tmp_path / "state" / FILE_NAME).read_text()) == {}  # answered: nothing pending

    # The same command again: nothing is left, so nothing is started.
    again = cli.run("drain", *WINDOW, "--suppress-notifications", "--yes")
    assert again.code == 0 and again.lines[-1] == "Nothing to drain: no job started."
    assert len(api.jobs()) == 1


def test_a_drain_into_a_crm_that_answers_503_halts_and_exits_1_with_the_reason(
    cli, api, load, workers, webhook_receiver
):
    load(backlog(40, base_url=webhook_receiver.url, steps=STEPS))
    webhook_receiver.respond(503)
    halted = cli.run("drain", *WINDOW, "--suppress-notifications", "--rate", "100", "--yes", "--json")
    assert halted.code == 1, halted.stdout + halted.stderr
    job = halted.json()  # --json: the job as the API answered at the end
    assert job["state"] == "halted"
    assert job == api.job(job["job_id"]) | {
        "rate_per_second": job["rate_per_second"],
        "eta_seconds": job["eta_seconds"],
    }
    assert re.fullmatch(r"\d+ of the last \d+ replays failed, limit 5 \(20%\)", job["state_reason"])
    messages = halted.stderr  # with --json, the words go to stderr
    assert f"Job {job['job_id']} halted: {job['state_reason']}." in messages
    assert "IntegrationConnectionError" in messages  # the recent failures
    assert f"jobs resume {job['job_id']}" in messages


def test_drain_refuses_to_wait_for_an_answer_nobody_can_give(cli, load, session_factory):
    load(backlog(3))
    refused = cli.run("drain", *WINDOW)  # stdin is a pipe, not a terminal, and no --yes
    assert refused.code == 2
    assert "stdin is not a terminal" in refused.stderr and "--yes" in refused.stderr
    # Refused before any request: no dry run was even audited, no job exists.
    assert count(session_factory, RetryBatch) == 0 and count(session_factory, RetryJob) == 0


# ---- Ctrl-C -----------------------------------------------------------------------------------


def _read_until(process, text: str, timeout: float = 60) -> str:
    """What the process printed until `text` appeared (a prompt has no newline to wait for)."""
    seen = b""
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} did not appear; got:\n{seen.decode(errors='replace')}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"the client exited before {text!r}:\n{seen.decode(errors='replace')}"
            seen += chunk
    return seen.decode()


@pytest.mark.parametrize("answer", ["pause", "leave"])
def test_ctrl_c_asks_whether_to_pause_the_job_or_leave_it_running(cli, api, load, workers, answer):
    load(backlog(30))
    process = cli.popen("drain", *WINDOW, "--suppress-notifications", "--rate", "1", "--yes")
    try:
        printed = _read_until(process, " running: ")
        job_id = re.search(r"Started job ([0-9a-f-]{36})", printed).group(1)
        process.send_signal(signal.SIGINT)
        printed += _read_until(process, "[p]ause / [l]eave running: ")
        process.stdin.write(f"{answer}\n".encode())
        process.stdin.flush()
        code = process.wait(30)
        printed += process.stdout.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    cli.check_no_secrets(printed)
    assert code == 130, printed
    job = api.job(job_id)
    if answer == "pause":
        assert (job["state"], job["state_reason"]) == ("paused", PAUSE_REASON)
        assert f"Paused job {job_id}" in printed and f"jobs resume {job_id}" in printed
        # No replay starts after the pause was answered: the count stays put.
        time.sleep(3)
        assert api.job(job_id)["progress"]["done"] == job["progress"]["done"] < 30
    else:
        assert job["state"] in ("queued", "running")
        assert f"Left job {job_id} running" in printed
        wait_for(lambda: api.job(job_id)["progress"]["done"] > job["progress"]["done"], 15, message="job goes on")
        assert api.post(f"{JOBS}/{job_id}/cancel", {}).status_code == 200


# ---- a lost answer ----------------------------------------------------------------------------


class DroppingProxy:
    """An HTTP proxy in front of the service that passes requests on but, while `drop` > 0, loses
    the answer to `POST .../retry-jobs` (the job is created and the client hears nothing), and
    while `down`, answers nothing at all (the service is out of reach)."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.drop, self.dropped, self.down = upstream, 0, 0, False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.down:
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = requests.request(
                    self.command, upstream + self.path, data=body, headers=headers, timeout=60, allow_redirects=False
                )
                if self.command == "POST" and self.path.endswith("/retry-jobs") and proxy.drop > 0:
                    proxy.drop -= 1
                    proxy.dropped += 1
                    self.close_connection = True  # the job exists upstream; the client gets nothing
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _relay

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_rerun_after_a_lost_answer_follows_the_same_job_instead_of_starting_another(
    service, admin, api, load, workers, tmp_path
):
    load(backlog(20))
    with DroppingProxy(service.url) as proxy:
        cli = Cli(proxy.url, tmp_path / "state", headers=admin)
        command = ("drain", *WINDOW, "--suppress-notifications", "--rate", "50", "--yes")
        proxy.drop = 1
        lost = cli.run(*command)
        assert proxy.dropped == 1
        assert lost.code == 4, lost.stdout + lost.stderr
        assert "it may or may not have started" in lost.stdout
        assert "error: cannot reach the service at" in lost.stderr
        [job] = api.jobs()  # the service did start it
        pending = json.loads((tmp_path / "state" / FILE_NAME).read_text())
        assert len(pending) == 1

        rerun = cli.run(*command)
        assert rerun.code == 0, rerun.stdout + rerun.stderr
        assert "got no answer, so its job may have started" in rerun.stdout
        assert f"Job {job['job_id']} was already started by this command (same Idempotency-Key)" in rerun.stdout
        assert rerun.lines[-1] == f"Job {job['job_id']} completed: 20 rows, 20 success, 0 error, 0 skipped."
        assert [j["job_id"] for j in api.jobs()] == [job["job_id"]]  # still one job
        assert json.loads((tmp_path / "state" / FILE_NAME).read_text()) == {}

        # Answered now: the same command later is a new drain (here: with nothing left to drain).
        later = cli.run(*command)
        assert later.code == 0 and later.lines[-1] == "Nothing to drain: no job started."
        assert len(api.jobs()) == 1


def test_following_a_job_waits_out_a_service_that_is_briefly_out_of_reach(service, admin, load, workers, tmp_path):
    load(backlog(12))
    with DroppingProxy(service.url) as proxy:
        cli = Cli(proxy.url, tmp_path / "state", headers=admin)
        process = cli.popen("drain", *WINDOW, "--suppress-notifications", "--rate", "2", "--yes")
        try:
            printed = _read_until(process, " running: ")
            proxy.down = True
            printed += _read_until(process, "cannot reach the service")
            time.sleep(3)  # a few more polls get no answer
            proxy.down = False
            code = process.wait(60)
            printed += process.stdout.read().decode()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    cli.check_no_secrets(printed)
    assert code == 0, printed
    assert printed.count("cannot reach the service") == 1  # said once, not on every poll
    assert "the job goes on in the workers" in printed and "In contact with the service again." in printed
    assert "completed: 12 rows, 12 success, 0 error, 0 skipped." in printed


def test_drain_on_a_terminal_draws_a_progress_bar_with_counts_rate_and_eta(cli, load, workers):
    load(backlog(12))
    master, terminal = pty.openpty()
    drain = subprocess.Popen(
        [*cli.command, "drain", *WINDOW, "--suppress-notifications", "--rate", "4", "--yes"],
        cwd=REPO_ROOT,
        env={**cli.env, "COLUMNS": "160", "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)
    shown = b""
    while select.select([master], [], [], 60)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the client exited and closed its end of the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert drain.wait(30) == 0, drain.stderr.read()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))
    cli.check_no_secrets(text)
    # The bar's own columns while the job ran (state, done of total, counts, the rate and the
    # time left the service measures), then its end.
    assert re.search(r"running .* \d+/12 +\d+ success, 0 error, 0 skipped +\d+\.\d/s, ETA \S+", text), text
    assert "12/12" in text and "completed: 12 rows, 12 success, 0 error, 0 skipped." in text
