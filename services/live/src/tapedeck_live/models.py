"""SQLAlchemy models of the live-event service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PAYLOAD = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements an INTEGER PRIMARY KEY.
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")

BLOCKED = text("type = 'trade_blocked'")
HAS_REASON = text("reason <> ''")


def _blocks_index(name: str, *columns: str) -> Index:
    # Partial: only blocks pay for it on append, and ListBlocks filters read it without a residual.
    # Carrying reason lets the counts per reason be an index-only scan on PostgreSQL.
    return Index(
        name,
        *columns,
        postgresql_where=BLOCKED,
        postgresql_include=[] if "reason" in columns else ["reason"],
        sqlite_where=BLOCKED,
    )


class Base(DeclarativeBase):
    """Declarative base of the live-event service's tables."""


class EventRow(Base):
    """One appended event; `sequence` is the store's order and the subscription cursor.

    Every page reads newest first by sequence, so each filter has an index ending in sequence:
    an equality filter walks its index backwards and stops after page size + 1 rows.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("event_id", name="uq_events_event_id"),
        Index("ix_events_type_sequence", "type", "sequence"),
        Index("ix_events_run_sequence", "run_id", "sequence"),
        Index("ix_events_symbol_sequence", "symbol", "sequence"),
        # Most events carry no reason; only those with one are indexed (reason = 'x' implies it).
        Index(
            "ix_events_reason_sequence",
            "reason",
            "sequence",
            postgresql_where=HAS_REASON,
            sqlite_where=HAS_REASON,
        ),
        Index("ix_events_ts_sequence", "ts_ns", "sequence"),
        _blocks_index("ix_blocks_sequence", "sequence"),
        _blocks_index("ix_blocks_reason_sequence", "reason", "sequence"),
        _blocks_index("ix_blocks_run_sequence", "run_id", "sequence"),
        _blocks_index("ix_blocks_symbol_sequence", "symbol", "sequence"),
    )

    sequence: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(128), server_default="")
    symbol: Mapped[str] = mapped_column(String(64), server_default="")
    reason: Mapped[str] = mapped_column(String(128), server_default="")
    # Nanoseconds since the epoch (UTC): exact for Timestamp and NautilusTrader's clocks alike.
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(PAYLOAD)
    append_time: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
