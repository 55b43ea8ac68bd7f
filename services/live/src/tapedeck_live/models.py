"""SQLAlchemy models of the live-event service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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


class SessionRow(Base):
    """One run_id's events summarized (see sessions.py); a trading session once it has an instance."""

    __tablename__ = "sessions"
    __table_args__ = (
        # ListSessions: newest first by the session's first event, all or one trader's.
        Index("ix_sessions_first_sequence", "first_sequence"),
        Index("ix_sessions_trader_first_sequence", "trader_id", "first_sequence"),
    )

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    trader_id: Mapped[str] = mapped_column(String(128), server_default="")
    instance_id: Mapped[str] = mapped_column(String(128), server_default="")
    first_sequence: Mapped[int] = mapped_column(BigInteger)
    last_sequence: Mapped[int] = mapped_column(BigInteger)
    first_ts_ns: Mapped[int] = mapped_column(BigInteger)
    last_ts_ns: Mapped[int] = mapped_column(BigInteger)
    event_count: Mapped[int] = mapped_column(BigInteger)
    # {event type: count}; {currency: decimal string}.
    type_counts: Mapped[dict[str, int]] = mapped_column(PAYLOAD)
    realized_pnl: Mapped[dict[str, str]] = mapped_column(PAYLOAD)


class SessionPositionRow(Base):
    """A session's position as its latest position event left it; amounts are decimal strings."""

    __tablename__ = "session_positions"

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    position_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    instrument_id: Mapped[str] = mapped_column(String(128))
    strategy_id: Mapped[str] = mapped_column(String(128))
    quantity: Mapped[str] = mapped_column(String(64))
    average_open_price: Mapped[str] = mapped_column(String(64))
    realized: Mapped[str] = mapped_column(String(64))
    closed_realized: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(32))
    is_open: Mapped[bool] = mapped_column(Boolean)
    opened_ns: Mapped[int] = mapped_column(BigInteger)


class SummaryCursorRow(Base):
    """How far the session summaries have read the event store (one row, locked while summarizing)."""

    __tablename__ = "session_summary_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
