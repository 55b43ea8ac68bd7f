"""SQLAlchemy models of the wallet service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

AMOUNT = Numeric(38, 18)


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
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    balances: Mapped[list[BalanceRow]] = relationship(
        back_populates="wallet", cascade="all, delete-orphan", order_by="BalanceRow.asset"
    )


class BalanceRow(Base):
    """One asset's stored balance in a wallet."""

    __tablename__ = "balances"
    __table_args__ = (UniqueConstraint("wallet_id", "asset"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id", ondelete="CASCADE"))
    asset: Mapped[str] = mapped_column(String(32))
    total: Mapped[Decimal] = mapped_column(AMOUNT)
    available: Mapped[Decimal] = mapped_column(AMOUNT)
    hold: Mapped[Decimal] = mapped_column(AMOUNT)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    wallet: Mapped[WalletRow] = relationship(back_populates="balances")
