"""Pure pieces of auth: secret hashing, ID-token claim rules, role ranking."""

from __future__ import annotations

import pytest

from app.auth.access import has_role
from app.auth.api_keys import hash_secret, verify_secret
from app.auth.oidc import SignInRefused, check_claims
from app.auth.throttle import client_address
from app.config import Config, parse_public_base_url
from app.models.identity import ROLE_ADMIN, ROLE_VIEWER

DOMAINS = ("example.com",)
GOOGLE = "https://accounts.google.com"


def test_secret_hash_round_trip_and_salting():
    stored = hash_secret("s3cret")
    assert stored.startswith("scrypt$16384$8$1$")
    assert "s3cret" not in stored
    assert verify_secret("s3cret", stored)
    assert not verify_secret("s3cret ", stored)
    assert not verify_secret("", stored)
    assert hash_secret("s3cret") != stored  # random salt


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "scrypt$1$8$1$AA$AA",
        "scrypt$16384$8$1$!!$!!",
        "bcrypt$16384$8$1$AA$AA",
        "scrypt$9999999999$8$1$AA$AA",
    ],
)
def test_malformed_stored_hashes_never_verify(stored):
    assert not verify_secret("anything", stored)


def _claims(**overrides):
    claims = {"sub": "1", "email": "ops@example.com", "email_verified": True, "hd": "example.com"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_allowed_identity_is_normalised():
    claims = _claims(email="Ops@Example.com")
    identity = check_claims(claims, issuer=GOOGLE, allowed_domains=DOMAINS)
    assert identity.email == "ops@example.com"


@pytest.mark.parametrize(
    "claims, issuer, reason",
    [
        (_claims(email_verified=False), GOOGLE, "email_not_verified"),
        (_claims(email_verified=None), GOOGLE, "email_not_verified"),
        (_claims(email_verified="false"), GOOGLE, "email_not_verified"),
        (_claims(email="ops@evil.test", hd=None), "http://idp", "domain_not_allowed"),
        (_claims(email="ops@sub.example.com", hd=None), "http://idp", "domain_not_allowed"),
        (_claims(email="ops@example.com.evil.test", hd=None), "http://idp", "domain_not_allowed"),
        (_claims(email=None), GOOGLE, "no_email"),
        (_claims(hd=None), GOOGLE, "hd_missing"),  # a consumer Google account
        (_claims(hd="evil.test"), "http://idp", "hd_not_allowed"),
    ],
)
def test_refused_identities(claims, issuer, reason):
    with pytest.raises(SignInRefused) as refused:
        check_claims(claims, issuer=issuer, allowed_domains=DOMAINS)
    assert refused.value.details["reason"] == reason


def test_non_google_provider_may_omit_hd_and_string_true_is_verified():
    claims = _claims(hd=None, email_verified="true")
    identity = check_claims(claims, issuer="http://idp", allowed_domains=DOMAINS)
    assert identity.email == "ops@example.com"


def test_no_allowed_domains_allows_nobody():
    with pytest.raises(SignInRefused):
        check_claims(_claims(), issuer=GOOGLE, allowed_domains=())


def test_roles_rank():
    assert has_role(ROLE_ADMIN, ROLE_ADMIN) and has_role(ROLE_ADMIN, ROLE_VIEWER)
    assert has_role(ROLE_VIEWER, ROLE_VIEWER) and not has_role(ROLE_VIEWER, ROLE_ADMIN)
    assert not has_role("SOMETHING_ELSE", ROLE_VIEWER)


@pytest.mark.parametrize(
    "raw, parsed",
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("https://onramp.example.com", "https://onramp.example.com"),
        ("https://onramp.example.com/", "https://onramp.example.com"),
        (" http://127.0.0.1:8000/ ", "http://127.0.0.1:8000"),
        ("https://tools.example.com/onramp/", "https://tools.example.com/onramp"),
    ],
)
def test_public_base_url_is_parsed(raw, parsed):
    env = {"PUBLIC_BASE_URL": raw} if raw is not None else {}
    assert Config.from_env({"ONRAMP_ENV": "test", "SECRET_KEY": "k", **env}).public_base_url == (parsed)


@pytest.mark.parametrize(
    "raw",
    [
        "onramp.example.com",
        "ftp://onramp.example.com",
        "https://",
        "https://user:pw@onramp.example.com",
        "https://onramp.example.com/?next=x",
        "https://onramp.example.com/#top",
        "https://onramp.example.com:notaport",
    ],
)
def test_a_malformed_public_base_url_stops_start_up(raw):
    with pytest.raises(RuntimeError, match="PUBLIC_BASE_URL"):
        parse_public_base_url(raw)


@pytest.mark.parametrize(
    "remote_addr, counted_as",
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same /64, same bucket
        ("::ffff:198.51.100.7", "198.51.100.7"),
        (None, "unknown"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_client_addresses_are_counted_per_ipv4_address_and_ipv6_64(remote_addr, counted_as):
    assert client_address(remote_addr) == counted_as
