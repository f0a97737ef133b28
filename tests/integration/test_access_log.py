"""The real service (gunicorn, as gunicorn.conf.py configures it): credentials pasted into a URL
are refused and never reach its output, and what it prints is JSON lines of one shape."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.retry_scenarios import URL, window

KEY = "k-live-in-url-5f2c9a"
SECRET = "url-secret-8d41e7b0c3"


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize(
    "gunicorn_args",
    [
        pytest.param("", id="as-configured"),
        # Someone turns gunicorn's own access log back on: its lines are safe and JSON too.
        pytest.param("--access-logfile -", id="gunicorn-access-log-on"),
    ],
)
def test_credentials_in_the_query_string_never_reach_the_output(service_process, monkeypatch, gunicorn_args):
    query = f"?Authorization={KEY}&or-internal-api-auth-secret={SECRET}&since=2026-05-11"
    monkeypatch.setenv("GUNICORN_CMD_ARGS", gunicorn_args)
    with service_process().start() as service:
        response = requests.post(service.url + URL + query, json=window(), headers={"X-Request-ID": "req-url-1"})
        assert response.status_code == 401
        assert requests.get(service.url + "/healthz" + query, timeout=5).status_code == 200
        service.stop()  # every line written and flushed
        output = service.log_path.read_text()

    assert KEY not in output and SECRET not in output
    # Every line is one JSON object of the app's shape, gunicorn's own lines included.
    lines = _lines(output)
    for line in lines:
        assert {"ts", "level", "logger", "message", "request_id"} <= set(line), line
    assert any(line["logger"] == "gunicorn.error" for line in lines)  # "Listening at ..." and co.
    access = [line for line in lines if line.get("path") == URL]
    assert access, "the refused call is in the access log"
    for line in access:
        assert line["request_id"] == "req-url-1"
        assert (line["method"], line["status"]) == ("POST", 401)
        assert "?" not in line["message"]
    by_logger = {line["logger"] for line in access}
    assert by_logger == ({"app.request", "gunicorn.access"} if gunicorn_args else {"app.request"})


def test_a_uri_quoted_in_gunicorns_error_lines_loses_its_query_string(capsys):
    # gunicorn logs "Error handling request <uri>" when a request fails outside the app.
    from gunicorn.config import Config

    from app.observability.gunicorn_logging import JsonLogger

    cfg = Config()
    cfg.set("errorlog", "-")
    logger = JsonLogger(cfg)
    capsys.readouterr()
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logger.exception("Error handling request %s", f"{URL}?Authorization={KEY}&or-internal-api-auth-secret={SECRET}")
    logger.info("Is the server running? %s", "yes")
    err = capsys.readouterr().err

    assert KEY not in err and SECRET not in err
    failed, other = _lines(err)
    assert failed["logger"] == "gunicorn.error" and failed["level"] == "ERROR"
    assert failed["message"] == f"Error handling request {URL}?[Filtered]"
    assert "ConnectionResetError: peer went away" in failed["exc"]
    assert other["message"] == "Is the server running? yes"  # a question is not a query string
