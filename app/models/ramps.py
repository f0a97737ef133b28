"""Ramps (a vendor's workflow) and their published versions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, created_at_column, new_uuid, utcnow

RAMP_STATUSES = ("active", "archived", "deleted", "draft")
STEP_TYPES = ("fetch_crm_record", "find_or_create_account", "create_project", "notify")
DEFAULT_STEPS = [{"type": "find_or_create_account"}, {"type": "create_project"}, {"type": "notify"}]


class Ramp(Base):
    __tablename__ = "or_ramps"
    __table_args__ = (CheckConstraint(f"status IN {RAMP_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("or_vendors.id", ondelete="CASCADE"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    current_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )

    versions: Mapped[list[RampVersion]] = relationship(back_populates="ramp", order_by="RampVersion.version")


class RampVersion(Base):
    __tablename__ = "or_ramp_versions"
    __table_args__ = (UniqueConstraint("ramp_id", "version", name="uq_or_ramp_versions_ramp_id_version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ramp_id: Mapped[int] = mapped_column(ForeignKey("or_ramps.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    draft: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # {"steps": [{"type": "find_or_create_account"}, ...]}
    definition: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = created_at_column()

    ramp: Mapped[Ramp] = relationship(back_populates="versions")

    @property
    def steps(self) -> list[dict]:
        return list(self.definition.get("steps", []))
