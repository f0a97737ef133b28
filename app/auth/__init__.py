"""Sign-in and access: OIDC browser sessions, internal API keys, roles, throttling."""
