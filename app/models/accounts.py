"""Customer accounts, their CRM entity-id linkage, and onboarding projects."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, new_uuid


class Account(Base):
    __tablename__ = "or_accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("or_vendors.id"), index=True, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class ObjectEntityId(Base):
    """Links a CRM object's external id to our account. Archived rows are history, not links."""

    __tablename__ = "or_object_entity_ids"
    __table_args__ = (
        # At most one live link per CRM object: the account step's idempotency rests on it.
        Index(
            "uq_or_object_entity_ids_live_link",
            "vendor_id",
            "object_type",
            "external_id",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("or_vendors.id"), nullable=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("or_accounts.id"), index=True, nullable=False)
    object_type: Mapped[str] = mapped_column(String(50), nullable=False, default="company")
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class Project(Base):
    __tablename__ = "or_projects"
    __table_args__ = (
        # One project per execution, enforced by the database as the last line of defence behind
        # the `project_already_exists` filter.
        Index(
            "uq_or_projects_execution_id",
            "execution_id",
            unique=True,
            postgresql_where=text("execution_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, nullable=False, default=new_uuid)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("or_vendors.id"), nullable=False)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("or_accounts.id"), index=True)
    execution_id: Mapped[int | None] = mapped_column(ForeignKey("or_ramp_executions.id"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
