"""Vendors (tenants) and their CRM integration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, created_at_column, utcnow


class Vendor(Base):
    __tablename__ = "or_vendors"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = created_at_column()

    integration: Mapped[CrmIntegration | None] = relationship(back_populates="vendor", uselist=False)


class CrmIntegration(Base):
    """One CRM connection per vendor.

    `signing_secret` must be readable to sign outgoing webhooks and verify incoming triggers, so it
    is stored as is (protect the database, never log it: `__repr__` leaves it out).
    """

    __tablename__ = "or_crm_integrations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("or_vendors.id", ondelete="CASCADE"), unique=True, nullable=False)
    provider: Mapped[str] = mapped_column(String(50), nullable=False)
    user_configured: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    token_revoked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    api_base_url: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    signing_secret: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )

    vendor: Mapped[Vendor] = relationship(back_populates="integration")

    def __repr__(self) -> str:
        return f"<CrmIntegration vendor={self.vendor_id} provider={self.provider}>"

    def is_connected(self, now: datetime) -> bool:
        """Mirror of the `integration_disconnected` filter, for single-row code paths."""
        if not self.user_configured or self.token_revoked:
            return False
        return self.token_expires_at is None or self.token_expires_at > now
