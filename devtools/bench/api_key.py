"""The bench run's own ONRAMP_ADMIN API key."""

from __future__ import annotations

from sqlalchemy import delete

from app.auth.api_keys import create_api_key
from app.config import Config
from app.db import make_engine, make_session_factory
from app.models import ApiKey
from app.models.identity import ROLE_ADMIN


def create_bench_api_key(url: str, name: str = "bench-runner") -> tuple[str, str]:
    """A fresh (key, secret), replacing an older key of the same name. The secret is never
    printed: it exists only in the caller's memory."""
    engine = make_engine(url, Config(database_url=url), pool_size=1, max_overflow=0)
    try:
        session = make_session_factory(engine)()
        with session.begin():
            session.execute(delete(ApiKey).where(ApiKey.name == name))
        with session.begin():
            _row, key, secret = create_api_key(session, name=name, role=ROLE_ADMIN)
        session.close()
    finally:
        engine.dispose()
    return key, secret
