"""python -m devtools.mock_oidc --port 9400"""

from __future__ import annotations

import argparse

from devtools.mock_oidc.provider import MockOIDCProvider


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.mock_oidc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--client-id", default="onramp-local")
    parser.add_argument("--client-secret", default="onramp-local-secret")
    args = parser.parse_args(argv)
    provider = MockOIDCProvider(
        client_id=args.client_id, client_secret=args.client_secret, host=args.host, port=args.port
    )
    print("Mock OIDC provider (local development only). Point the app at it with:")
    base = f"http://{args.host}:{args.port}"
    print(f"  export OIDC_METADATA_URL={base}/.well-known/openid-configuration")
    print(f"  export OIDC_CLIENT_ID={args.client_id}")
    print(f"  export OIDC_CLIENT_SECRET={args.client_secret}")
    print("  export ADMIN_EMAIL_DOMAINS=example.com")
    print("Stop with Ctrl-C.", flush=True)
    try:
        provider.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
