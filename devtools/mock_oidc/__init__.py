"""A tiny OpenID Connect provider for local sign-in and tests (never for production).

It speaks just enough of the authorization-code flow for the app's real Authlib client:
discovery, an authorize page (you type the email to sign in as), a token endpoint (client
authentication, single-use codes, PKCE) and a JWKS endpoint; ID tokens are RS256-signed.

    python -m devtools.mock_oidc --port 9400          # a server for `make run`

    with MockOIDCProvider(client_id="c", client_secret="s") as provider:   # tests
        provider.metadata_url  # -> http://127.0.0.1:<port>/.well-known/openid-configuration

`GET /authorize?...&email=ada@example.com` skips the form and redirects straight back with a code
(handy for tests and curl). Tests can make it misbehave through `claim_overrides`,
`sign_with_unknown_key` and `omit_id_token`.
"""

from devtools.mock_oidc.provider import MockOIDCProvider

__all__ = ["MockOIDCProvider"]
