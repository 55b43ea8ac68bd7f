"""SQLAlchemy models of the live-event service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PAYLOAD = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements an INTEGER PRIMARY KEY.
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the live-event service's tables."""


class EventRow(Base):
    """One appended event; `sequence` is the store's order and the subscription cursor."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_type_sequence", "type", "sequence"),
        Index("ix_events_run_sequence", "run_id", "sequence"),
        Index("ix_events_reason_sequence", "reason", "sequence"),
        Index("ix_events_symbol_sequence", "symbol", "sequence"),
        Index("ix_events_ts", "ts"),
    )

    sequence: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(128), default="")
    symbol: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(128), default="")
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(PAYLOAD)
    append_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
