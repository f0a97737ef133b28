"""The onramp service's HTTP API, as the command-line client calls it.

Credentials come from the environment only and never leave this module except as request
headers: `Credentials` has no readable repr, errors name variables and never values, and
`redact()` cuts every credential value out of any text the client prints.

Requests are never redirected (a redirect would carry `or-internal-api-auth-secret` to another
address) and never pick up credentials from `~/.netrc` (our own `requests` auth object is always
set, which is what keeps netrc out). Each request carries its own `X-Request-ID`, so even a
request that got no answer has an id to quote and to look for in the service's log.
"""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from devtools.onramp.errors import ApiError, Unreachable, UsageError

ENV_URL = "ONRAMP_URL"
ENV_API_KEY = "ONRAMP_API_KEY"
ENV_API_SECRET = "ONRAMP_API_SECRET"
ENV_SESSION = "ONRAMP_SESSION"

API = "/api/ramps/executions"
CONNECT_TIMEOUT = 5.0
# A dry run over a large window or a job created from one can take a while.
READ_TIMEOUT = 120.0
USER_AGENT = "onramp-cli/1"
# Credentials the service issues are far longer; a scenario's hand-written ones can be short.
WHOLE_WORD_BELOW = 12


class Credentials(AuthBase):
    """The API-key pair or the session cookie, applied as headers; never shown."""

    def __init__(self, kind: str, headers: Mapping[str, str], values: tuple[str, ...]) -> None:
        self.kind = kind  # "api key" or "session cookie"
        self._headers = dict(headers)
        self._values = values

    def __call__(self, request):
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return f"<Credentials {self.kind} (withheld)>"

    def redact(self, text: str) -> str:
        for value in self._values:
            if len(value) >= WHOLE_WORD_BELOW:
                text = text.replace(value, "***")
            elif value:
                # A short value (a scenario's "k-1") is cut only where it stands alone, so that
                # "bank-1" or a job id that happens to contain it is still printed as it is.
                text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "***", text)
        return text


@dataclass(frozen=True)
class Settings:
    url: str  # scheme://host[:port][/prefix], no trailing slash
    credentials: Credentials = field(repr=False)


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"{ENV_URL} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{ENV_URL} must be http(s)://host[:port][/prefix], e.g. http://127.0.0.1:8000")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{ENV_URL} must not carry credentials: use {ENV_API_KEY} + {ENV_API_SECRET}")
    if parts.query or parts.fragment:
        raise UsageError(f"{ENV_URL} must not have a query string or a fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """The service address and one credential, or a UsageError naming what is missing."""
    url = environ.get(ENV_URL, "").strip()
    if not url:
        raise UsageError(f"set {ENV_URL} to the service's address, e.g. http://127.0.0.1:8000")
    key = environ.get(ENV_API_KEY, "").strip()
    secret = environ.get(ENV_API_SECRET, "").strip()
    session = environ.get(ENV_SESSION, "").strip()
    if (key or secret) and session:
        raise UsageError(f"set either {ENV_API_KEY} + {ENV_API_SECRET} or {ENV_SESSION}, not both")
    if key or secret:
        if not (key and secret):
            missing = ENV_API_SECRET if key else ENV_API_KEY
            raise UsageError(f"{missing} is not set: an API key needs both {ENV_API_KEY} and {ENV_API_SECRET}")
        credentials = Credentials(
            "api key", {"Authorization": key, "or-internal-api-auth-secret": secret}, (key, secret)
        )
    elif session:
        credentials = Credentials("session cookie", {"Cookie": f"session={session}"}, (session,))
    else:
        raise UsageError(
            f"no credentials: set {ENV_API_KEY} + {ENV_API_SECRET} (an API key) or {ENV_SESSION}"
            " (the browser's session cookie)"
        )
    return Settings(url=_check_url(url), credentials=credentials)


def _reason(exc: requests.RequestException) -> str:
    """A short cause for a request that got no answer (never the headers)."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {READ_TIMEOUT:g} s" if isinstance(exc, requests.ReadTimeout) else "connect timeout"
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "host name not found"
        if isinstance(current, ConnectionResetError):
            return "connection reset"
        if type(current).__name__ == "RemoteDisconnected":
            return "the connection closed without an answer"
        current = current.__cause__ or current.__context__ or next(iter(getattr(current, "args", ())), None)
        if not isinstance(current, BaseException):
            current = None
    return type(exc).__name__


def _session() -> requests.Session:
    """HTTP with one quiet retry of a read that found its kept-alive connection closed: the
    server drops idle connections after a few seconds, about as often as `drain` asks for the
    job, and a GET asked again changes nothing. Writes are never retried here (a drain's job
    creation has its Idempotency-Key for that)."""
    session = requests.Session()
    retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=frozenset({"GET"}), backoff_factor=0)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class OnrampClient:
    def __init__(self, settings: Settings, http: requests.Session | None = None) -> None:
        self.url = settings.url
        self._credentials = settings.credentials
        self._http = http or _session()

    def redact(self, text: str) -> str:
        return self._credentials.redact(text)

    # ---- the endpoints -------------------------------------------------------------------------

    def error_summary(self, params: Mapping[str, str]) -> dict:
        return self.request("GET", f"{API}/error-summary", params=params)[0]

    def retry_batch(self, body: Mapping[str, Any]) -> dict:
        return self.request("POST", f"{API}/retry-batch", body=body)[0]

    def create_job(self, body: Mapping[str, Any], *, idempotency_key: str) -> tuple[dict, bool]:
        """(the job, whether this call created it: 202, or 200 for an Idempotency-Key seen before)."""
        job, status = self.request("POST", f"{API}/retry-jobs", body=body, headers={"Idempotency-Key": idempotency_key})
        return job, status == 202

    def list_jobs(self, params: Mapping[str, str]) -> list[dict]:
        return self.request("GET", f"{API}/retry-jobs", params=params)[0]["jobs"]

    def get_job(self, job_id: str) -> dict:
        return self.request("GET", f"{API}/retry-jobs/{quote(job_id, safe='')}")[0]

    def control_job(self, job_id: str, action: str, *, reason: str | None = None) -> dict:
        body = {"reason": reason} if reason is not None else {}
        return self.request("POST", f"{API}/retry-jobs/{quote(job_id, safe='')}/{action}", body=body)[0]

    # ---- transport -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, int]:
        """(the answer's JSON, its status) for a 2xx; ApiError or Unreachable otherwise."""
        request_id = f"cli-{secrets.token_hex(8)}"
        sent = {"X-Request-ID": request_id, "User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        try:
            response = self._http.request(
                method,
                self.url + path,
                params=params,
                json=body,
                headers=sent,
                auth=self._credentials,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise Unreachable(self.url, _reason(exc), request_id=request_id) from None
        answered_id = response.headers.get("X-Request-ID") or request_id
        try:
            data = response.json()
        except ValueError:
            data = None
        if 200 <= response.status_code < 300 and data is not None:
            return data, response.status_code
        raise _api_error(response, data, answered_id)


def _api_error(response: requests.Response, data: Any, request_id: str) -> ApiError:
    status = response.status_code
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and "code" in error:
        return ApiError(
            status,
            str(error["code"]),
            str(error.get("message", "")),
            details=error.get("details"),
            request_id=data.get("request_id") or request_id,
            retry_after=response.headers.get("Retry-After"),
            body=data,
        )
    if 300 <= status < 400:
        where = response.headers.get("Location", "?")
        return ApiError(
            status,
            "redirect",
            f"the service redirects to {where}; set {ENV_URL} to the final address",
            request_id=request_id,
        )
    return ApiError(
        status,
        f"http_{status}",
        "the answer is not the service's JSON" + ("" if 200 <= status < 300 else " error shape"),
        request_id=request_id,
        retry_after=response.headers.get("Retry-After"),
    )
