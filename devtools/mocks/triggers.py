"""Fire fresh CRM trigger webhooks at a running service, signed like the real CRM (stdlib only).

Each call is `POST {url}/api/ramps/<ramp_uuid>/trigger` with body
`{"trigger_key": "...", "data": {"company": {...}, "owner": {...}}}` and the header
`X-Onramp-Signature: sha256=<HMAC-SHA256 of the raw body with the integration's signing secret>`.
Trigger keys are fresh every run (prefix + run stamp + counter) so nothing is deduplicated.

Examples:
  # ramp and secret taken from a scenario file (first active ramp with an integration)
  python -m devtools.mocks.triggers --url http://127.0.0.1:8000 \
      --scenario devtools/scenarios/crm-outage.json --count 5
  # explicit ramp and secret
  python -m devtools.mocks.triggers --ramp-uuid <uuid> --secret s3cr3t
  # a deliberately bad signature (the service must answer 401)
  python -m devtools.mocks.triggers --scenario ... --bad-signature
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from devtools.mocks.crm import SIGNATURE_HEADER, expected_signature


@dataclass
class FireResult:
    trigger_key: str
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def fire(
    base_url: str,
    ramp_uuid: str,
    secret: str,
    trigger_key: str,
    data: dict,
    timeout: float = 30.0,
    bad_signature: bool = False,
) -> FireResult:
    """Send one signed trigger; returns the HTTP status and the decoded JSON answer."""
    body = json.dumps({"trigger_key": trigger_key, "data": data}).encode()
    signature = expected_signature(secret + ("-wrong" if bad_signature else ""), body)
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/api/ramps/{ramp_uuid}/trigger",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        parsed: Any = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    return FireResult(trigger_key, status, parsed)


def describe(result: FireResult) -> str:
    """One line: HTTP status, execution outcome and error (201 = accepted, whatever the outcome)."""
    body = result.body if isinstance(result.body, dict) else {}
    if not result.ok:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        return f"HTTP {result.status} {error.get('code', '')}: {error.get('message', result.body)}"
    line = f"HTTP {result.status} execution {body.get('execution_uuid')} {body.get('status')}"
    if body.get("error"):
        err = body["error"]
        line += f" ({err.get('category')}: {err.get('type')}: {err.get('message')})"
    elif body.get("project_uuid"):
        line += f" project {body['project_uuid']}"
    return line


def ramp_from_scenario(path: str, vendor_id: int | None = None, ramp_uuid: str | None = None) -> tuple[str, str]:
    """(ramp_uuid, signing_secret) of the first active ramp whose vendor has an integration."""
    with open(path, encoding="utf-8") as handle:
        scenario = json.load(handle)
    secrets = {
        v["id"]: (v.get("integration") or {}).get("signing_secret") for v in scenario["vendors"] if v.get("integration")
    }
    for ramp in scenario["ramps"]:
        if ramp_uuid and ramp["uuid"] != ramp_uuid:
            continue
        if vendor_id is not None and ramp["vendor_id"] != vendor_id:
            continue
        if (ramp_uuid or ramp["status"] == "active") and secrets.get(ramp["vendor_id"]):
            return ramp["uuid"], secrets[ramp["vendor_id"]]
    raise SystemExit(f"{path}: no active ramp with a CRM integration matches")


def make_payload(n: int, stamp: str, company_name: str, owner_email: str | None) -> dict:
    data: dict[str, Any] = {"company": {"id": f"live-{stamp}-{n}", "name": f"{company_name} {n}"}}
    if owner_email:
        data["owner"] = {"email": owner_email}
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.mocks.triggers", description="Fire signed CRM trigger webhooks at a running service."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL")
    parser.add_argument("--scenario", help="take ramp uuid and signing secret from this scenario file")
    parser.add_argument("--vendor-id", type=int, help="with --scenario: pick this vendor's ramp")
    parser.add_argument("--ramp-uuid", help="ramp to trigger (or with --scenario: which ramp)")
    parser.add_argument("--secret", help="the integration's signing secret (default: from --scenario)")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--key-prefix", default="deal-live", help="trigger keys are <prefix>-<stamp>-<n>")
    parser.add_argument("--company-name", default="Live Customer")
    parser.add_argument("--owner-email", default="owner@customer.example")
    parser.add_argument("--bad-signature", action="store_true", help="sign with a wrong secret")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = parser.parse_args(argv)

    ramp_uuid, secret = args.ramp_uuid, args.secret
    if args.scenario:
        found_uuid, found_secret = ramp_from_scenario(args.scenario, args.vendor_id, args.ramp_uuid)
        ramp_uuid, secret = found_uuid, secret or found_secret
    if not ramp_uuid or not secret:
        parser.error("give --scenario, or both --ramp-uuid and --secret")

    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    results = []
    for n in range(1, args.count + 1):
        data = make_payload(n, stamp, args.company_name, args.owner_email)
        result = fire(
            args.url,
            ramp_uuid,
            secret,
            f"{args.key_prefix}-{stamp}-{n}",
            data,
            timeout=args.timeout,
            bad_signature=args.bad_signature,
        )
        results.append(result)
        if not args.json:
            print(f"{result.trigger_key}: {describe(result)}", flush=True)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
    # Exit status tells scripts whether the service accepted every trigger.
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
