"""Engine and session factory.

Sessions are created with `autobegin=False`: every unit of work must open its own transaction
with `with session.begin():`, so a forgotten commit or a transaction left open by a query helper
fails loudly instead of holding row locks.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config


def resolve_database_url(config: Config) -> str:
    if config.database_url:
        return config.database_url
    from app.embedded_db import default_database_url

    return default_database_url(config.instance_dir)


def make_engine(url: str, config: Config, **kwargs) -> Engine:
    options = " ".join(
        [
            f"-c lock_timeout={config.lock_timeout_ms}",
            f"-c statement_timeout={config.statement_timeout_ms}",
            f"-c idle_in_transaction_session_timeout={config.idle_in_transaction_timeout_ms}",
            "-c timezone=UTC",
        ]
    )
    kwargs.setdefault("pool_pre_ping", True)
    # Bound values stay out of error text (and so out of logs and Sentry): they can be key
    # digests, session ids or customer data.
    kwargs.setdefault("hide_parameters", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(
        url,
        connect_args={"options": options, "application_name": "onramp"},
        **kwargs,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: use cases return ORM objects that views serialize after commit.
    return sessionmaker(engine, autobegin=False, expire_on_commit=False)


@dataclass
class Database:
    engine: Engine
    session_factory: sessionmaker[Session]

    def dispose(self) -> None:
        self.engine.dispose()


def init_app(app, config: Config) -> Database:
    url = resolve_database_url(config)
    engine = make_engine(url, config)
    database = Database(engine=engine, session_factory=make_session_factory(engine))
    app.extensions["onramp_db"] = database

    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    return database


def get_database() -> Database:
    return current_app.extensions["onramp_db"]


def get_session() -> Session:
    """The request's session (closed at teardown). Callers open their own transactions."""
    if "db_session" not in g:
        g.db_session = get_database().session_factory()
    return g.db_session
