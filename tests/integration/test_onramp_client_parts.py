"""Pieces of the command-line client that need no service: flags to request bodies, the error
line, credentials from the environment, the pending-drain file, and Ctrl-C without an answer."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import pytest

from devtools.onramp import drain, render
from devtools.onramp.args import job_controls, parse, scope_body, summary_params
from devtools.onramp.client import OnrampClient, settings_from_env
from devtools.onramp.errors import ApiError, Exit, UsageError, flatten_details
from devtools.onramp.pending import FILE_NAME, MAX_AGE_SECONDS, PendingDrains, fingerprint

ENV = {
    "ONRAMP_URL": "http://127.0.0.1:9/prefix/",
    "ONRAMP_API_KEY": "ork_key-value",
    "ONRAMP_API_SECRET": "s3cret-value",
}


def test_flags_become_the_api_fields_they_are_named_after_and_nothing_else():
    args = parse(
        ["drain", "--since", "2026-05-11T12:30:00Z", "--vendor-ids", "1, 2", "--ramp-uuids", "a,b"]
        + ["--error-pattern", "new_task", "--max-attempts", "2", "--workflow-version", "latest", "--force-retry"]
        + ["--suppress-notifications", "--rate", "2.5", "--halt-window", "10"]
    )
    assert scope_body(args) == {
        "since": "2026-05-11T12:30:00Z",
        "vendor_ids": [1, 2],
        "ramp_uuids": ["a", "b"],
        "error_pattern": "new_task",
        "force_retry": True,
        "max_attempts": 2,
        "workflow_version": "latest",
        "suppress_notifications": True,
    }
    assert job_controls(args) == {"max_replays_per_second": 2.5, "halt_window": 10}
    # Left out, a field is not sent: the service fills its own default.
    assert scope_body(parse(["preview", "--execution-uuids", "u1,u2"])) == {"execution_uuids": ["u1", "u2"]}
    assert scope_body(parse(["preview", "--plan", "plan_x", "--notify"])) == {
        "plan_token": "plan_x",
        "suppress_notifications": False,
    }
    assert summary_params(
        parse(["summary", "--since", "s", "--vendor-ids", "3,4", "--group-by", "vendor,category"])
    ) == {
        "since": "s",
        "vendor_ids": "3,4",
        "group_by": "vendor,category",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["preview", "--plan", "p", "--error-pattern", "x"],
        ["preview", "--until", "2026-05-12T00:00:00Z"],
        ["drain", "--since", "s", "--suppress-notifications", "--notify"],
        ["preview", "--since", "s", "--ramp-uuids", "a,,b"],
        ["jobs", "pause"],
    ],
)
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == Exit.USAGE
    assert "error:" in capsys.readouterr().err


def test_the_error_line_carries_code_message_details_and_request_id():
    error = ApiError(
        400,
        "validation_error",
        "The request is not valid",
        details={"until": ["Must be later than since."], "data": {"company": {"name": ["Bad."]}}},
        request_id="cli-1",
    )
    assert error.line() == (
        "error: 400 validation_error: The request is not valid"
        " (until: Must be later than since.; data.company.name: Bad.) [request_id cli-1]"
    )
    busy = ApiError(503, "database_unavailable", "The database is unavailable", retry_after="5", request_id="r")
    assert busy.line() == "error: 503 database_unavailable: The database is unavailable; retry after 5 s [request_id r]"
    assert flatten_details(None) == "" and flatten_details(["a", "b"]) == "a b"


def test_credentials_come_from_the_environment_and_never_show():
    settings = settings_from_env(ENV)
    assert settings.url == "http://127.0.0.1:9/prefix"
    for shown in (repr(settings), repr(settings.credentials), str(settings)):
        assert "s3cret-value" not in shown and "ork_key-value" not in shown
    client = OnrampClient(settings)
    assert client.redact("key ork_key-value secret s3cret-value") == "key *** secret ***"
    cookie = settings_from_env({"ONRAMP_URL": "https://onramp.example.com", "ONRAMP_SESSION": "eyJzaWQi.cookie"})
    assert cookie.credentials.kind == "session cookie" and "eyJzaWQi" not in repr(cookie)
    with pytest.raises(UsageError, match="no credentials") as missing:
        settings_from_env({"ONRAMP_URL": "http://x"})
    assert "ONRAMP_API_KEY" in str(missing.value)
    with pytest.raises(UsageError) as leaked:
        settings_from_env({**ENV, "ONRAMP_URL": "http://u:s3cret-value@host"})
    assert "s3cret-value" not in str(leaked.value)
    # A scenario's short hand-written key is cut where it stands alone, not inside other words.
    short = OnrampClient(settings_from_env({**ENV, "ONRAMP_API_KEY": "k-1", "ONRAMP_API_SECRET": "plain"}))
    assert short.redact("key k-1, secret plain; bank-1 and k-10 explained") == (
        "key ***, secret ***; bank-1 and k-10 explained"
    )
    assert short.redact("Authorization: k-1\nor-internal-api-auth-secret:plain") == (
        "Authorization: ***\nor-internal-api-auth-secret:***"
    )


def test_a_pending_drain_is_kept_until_answered_and_expires_with_its_plan(tmp_path):
    store = PendingDrains(tmp_path / "state")
    command = {"verb": "drain", "scope": {"plan_token": "plan_a"}, "controls": {}}
    fp = fingerprint("http://a", command)
    assert fingerprint("http://b", command) != fp  # another service: another drain
    assert fingerprint("http://a", {**command, "controls": {"max_replays_per_second": 1}}) != fp
    assert store.find(fp) is None
    store.remember(fp, "onramp-cli-1", {"plan_token": "plan_a"})
    found = store.find(fp)
    assert (found.key, found.body) == ("onramp-cli-1", {"plan_token": "plan_a"})
    store.forget(fp)
    assert store.find(fp) is None

    store.remember(fp, "onramp-cli-2", {"plan_token": "plan_a"})
    path = tmp_path / "state" / FILE_NAME
    data = json.loads(path.read_text())
    data[fp]["sent_at"] = time.time() - MAX_AGE_SECONDS - 1
    path.write_text(json.dumps(data))
    assert store.find(fp) is None  # its plan has expired: a re-run starts afresh


class _Stdin(io.StringIO):
    def isatty(self) -> bool:
        return False


class _CtrlC(_Stdin):
    def readline(self, *args):
        raise KeyboardInterrupt


@pytest.mark.parametrize("stdin", [_Stdin(""), _CtrlC()], ids=["end of input", "a second ctrl-c"])
def test_ctrl_c_with_no_answer_leaves_the_job_running_and_sends_nothing(stdin):
    # Nothing listens at this address: any request would raise Unreachable and fail the test.
    client = OnrampClient(settings_from_env(ENV))
    out, prompts = io.StringIO(), io.StringIO()
    console = render.make_console(out)
    session = drain.Io(human=console, prompt_to=prompts, stdin=stdin, json_out=None, interactive=False)
    assert drain.on_interrupt(client, "job-1", session) == Exit.INTERRUPTED
    assert "Pause the job, or leave it running?" in prompts.getvalue()
    assert "Left job job-1 running" in out.getvalue()


class _ForgetfulServer:
    """Answers each connection's first request with keep-alive, and closes the connection without
    a word when a second request arrives on it: a server whose idle timer fired just as the client
    reused the connection. Counts the requests it answered."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.answered = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def _read_request(conn) -> bytes:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                break
            request += chunk
        return request

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one_connection, args=(conn,), daemon=True).start()

    def _one_connection(self, conn) -> None:
        with conn:
            self._read_request(conn)
            body = json.dumps({"job_id": "j", "state": "running"}).encode()
            # Counted before the answer goes out: once sent, the client may assert before this
            # thread runs again.
            self.answered += 1
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            self._read_request(conn)  # the reused connection's request: dropped unanswered


def test_a_kept_alive_connection_the_server_closed_is_asked_again_not_reported_unreachable():
    server = _ForgetfulServer()
    client = OnrampClient(settings_from_env({**ENV, "ONRAMP_URL": server.url}))
    assert client.get_job("j")["state"] == "running"
    assert client.get_job("j")["state"] == "running"  # sent on the kept connection first
    assert server.answered == 2
