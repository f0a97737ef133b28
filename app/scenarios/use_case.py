"""Use case behind `flask scenario load`: one scenario file, one transaction (all or nothing)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.scenarios.loader import LoadReport, load_scenario_file


def import_scenario_file(session_factory: sessionmaker[Session], path: str | Path) -> LoadReport:
    """Validate and load the file; any error rolls the whole load back."""
    with session_factory() as session, session.begin():
        return load_scenario_file(session, path)
