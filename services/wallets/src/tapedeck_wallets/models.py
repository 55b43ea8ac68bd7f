"""SQLAlchemy models of the wallet service."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

from tapedeck_common.outbox_repository import outbox_table


class Amount(TypeDecorator[Decimal]):
    """An exact decimal: NUMERIC(38, 18) on PostgreSQL, text on SQLite (which has no decimal type)."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            # SQLite would round NUMERIC values through a 64-bit float; text keeps every digit.
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name == "postgresql":
            # asyncpg decodes NUMERIC to Decimal in C; a per-value Python hop costs more than
            # the query on a 1,000-wallet page.
            return None
        return super().result_processor(dialect, coltype)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name == "postgresql":
            return None  # asyncpg returns timestamptz as aware UTC datetimes already
        return super().result_processor(dialect, coltype)


class Base(DeclarativeBase):
    """Declarative base of the wallet service's tables."""


class WalletRow(Base):
    """A wallet: one account on one exchange."""

    __tablename__ = "wallets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), unique=True)
    exchange: Mapped[str] = mapped_column(String(64), index=True)
    account_ref: Mapped[str] = mapped_column(String(200))
    credentials_ref: Mapped[str] = mapped_column(String(200))
    create_time: Mapped[datetime] = mapped_column(UtcDateTime())
    update_time: Mapped[datetime] = mapped_column(UtcDateTime())
    balances: Mapped[list[BalanceRow]] = relationship(
        back_populates="wallet",
        cascade="all, delete-orphan",
        order_by="BalanceRow.asset",
        passive_deletes=True,
    )


class BalanceRow(Base):
    """One asset's stored balance in a wallet."""

    __tablename__ = "balances"
    __table_args__ = (UniqueConstraint("wallet_id", "asset"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(32))
    total: Mapped[Decimal] = mapped_column(Amount())
    available: Mapped[Decimal] = mapped_column(Amount())
    hold: Mapped[Decimal] = mapped_column(Amount())
    update_time: Mapped[datetime] = mapped_column(UtcDateTime())
    wallet: Mapped[WalletRow] = relationship(back_populates="balances")


class ReconciliationRow(Base):
    """A reconciliation job and its report."""

    __tablename__ = "reconciliations"
    __table_args__ = (
        Index("ix_reconciliations_create_time_id", "create_time", "id"),
        Index("ix_reconciliations_state_heartbeat", "state", "heartbeat_time"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    wallet_ids: Mapped[list[str]] = mapped_column(JSON)
    threshold: Mapped[Decimal] = mapped_column(Amount())
    adopt_exchange_balances: Mapped[bool] = mapped_column(Boolean)
    max_cache_age_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    matched_count: Mapped[int] = mapped_column(Integer, default=0)
    mismatched_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(64))
    heartbeat_time: Mapped[datetime] = mapped_column(UtcDateTime())
    create_time: Mapped[datetime] = mapped_column(UtcDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    error_message: Mapped[str] = mapped_column(Text, default="")


class ReconciliationResultRow(Base):
    """One wallet's result in a reconciliation; seq is its completion order within the job."""

    __tablename__ = "reconciliation_results"
    __table_args__ = (
        UniqueConstraint("reconciliation_id", "wallet_id", name="uq_reconciliation_results_wallet"),
    )

    reconciliation_id: Mapped[str] = mapped_column(
        ForeignKey(
            "reconciliations.id",
            ondelete="CASCADE",
            name="fk_reconciliation_results_reconciliation",
        ),
        primary_key=True,
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # No foreign key: a report outlives the wallets it names.
    wallet_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    error_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error_message: Mapped[str] = mapped_column(Text, default="")
    adopted: Mapped[bool] = mapped_column(Boolean, default=False)
    fetch_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    from_cache: Mapped[bool] = mapped_column(Boolean, default=False)


class ReconciliationItemRow(Base):
    """One asset's comparison in one wallet's result, keyed by the result's (report, seq).

    No foreign key to the result: the job's only writer stores both in one transaction, and
    PostgreSQL's per-row check cost more than the insert (migration 0004).
    """

    __tablename__ = "reconciliation_items"

    reconciliation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    asset: Mapped[str] = mapped_column(String(32), primary_key=True)
    stored_total: Mapped[Decimal] = mapped_column(Amount())
    exchange_total: Mapped[Decimal] = mapped_column(Amount())
    difference: Mapped[Decimal] = mapped_column(Amount())
    beyond_threshold: Mapped[bool] = mapped_column(Boolean)


# Reconciliation mismatch events waiting to be sent to the live service (see publishing.py).
live_outbox = outbox_table(Base.metadata, name="wallets_live_outbox")
