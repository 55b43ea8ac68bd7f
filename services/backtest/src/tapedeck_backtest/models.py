"""SQLAlchemy models of the backtest service."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tapedeck_common.outbox_repository import outbox_table


class Base(DeclarativeBase):
    """Declarative base of the backtest service's tables."""


def as_utc(moment: datetime) -> datetime:
    """Return a stored time as an aware UTC datetime (SQLite hands back naive ones)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class DatasetRow(Base):
    """An imported dataset: one instrument's ticks or bars in the catalog."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    instrument_id: Mapped[str] = mapped_column(String(128), index=True)
    instrument_json: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    source_path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # sha256(content_hash, kind, instrument): the same file imported the same way is one dataset.
    import_key: Mapped[str] = mapped_column(String(64), unique=True)
    # sha256(kind, instrument): with the source's size and mtime, lets a re-import skip hashing.
    request_key: Mapped[str] = mapped_column(String(64))
    source_size: Mapped[int] = mapped_column(BigInteger)
    source_mtime_ns: Mapped[int] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(BigInteger)
    start_ns: Mapped[int] = mapped_column(BigInteger)
    end_ns: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # Bars only: "open" or "close", what the source file's timestamps named.
    bar_convention: Mapped[str | None] = mapped_column(String(8))


# --- runs and sweeps ---


class BacktestRow(Base):
    """A backtest run: its resolved spec, where it is in the queue, its progress and stats."""

    __tablename__ = "backtests"
    __table_args__ = (Index("ix_backtests_state_create", "state", "create_time"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec_json: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    sweep_id: Mapped[str | None] = mapped_column(String(64), index=True)
    progress_json: Mapped[str | None] = mapped_column(Text)
    stats_json: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(64))
    heartbeat_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    content_version: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SweepRow(Base):
    """A parameter sweep: the shared spec, the axes, the ranking metric and (searches) the sampler."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_spec_json: Mapped[str] = mapped_column(Text)
    axes_json: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    total_runs: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A search's sampler, budget, parallelism, seed and objectives (JSON); NULL for a grid.
    search_json: Mapped[str | None] = mapped_column(Text)


class SweepRunRow(Base):
    """One point of a sweep's grid and the run that holds its result (maybe a cached earlier run)."""

    __tablename__ = "sweep_runs"

    sweep_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    backtest_id: Mapped[str] = mapped_column(String(64), ForeignKey("backtests.id"), index=True)
    parameters_json: Mapped[str] = mapped_column(Text)
    # What a search's sampler stored with this trial (JSON); empty for grid points.
    trial_attrs_json: Mapped[str] = mapped_column(Text, default="")


class WalkForwardRow(Base):
    """A walk-forward: how its window is cut into folds, and the metric that picks winners."""

    __tablename__ = "walk_forwards"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_spec_json: Mapped[str] = mapped_column(Text)
    spec_json: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WalkForwardFoldRow(Base):
    """One fold: its windows, its in-sample sweep and (once known) its out-of-sample run."""

    __tablename__ = "walk_forward_folds"

    walk_forward_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("walk_forwards.id", ondelete="CASCADE"), primary_key=True
    )
    fold: Mapped[int] = mapped_column(Integer, primary_key=True)
    in_start_ns: Mapped[int] = mapped_column(BigInteger)
    in_end_ns: Mapped[int] = mapped_column(BigInteger)
    out_start_ns: Mapped[int] = mapped_column(BigInteger)
    out_end_ns: Mapped[int] = mapped_column(BigInteger)
    sweep_id: Mapped[str] = mapped_column(String(64), ForeignKey("sweeps.id"))
    out_run_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("backtests.id"))
    error: Mapped[str] = mapped_column(Text, default="")


# --- events for the live service ---

# Run lifecycle events and order denials waiting to be sent (see runs/publishing.py).
live_outbox = outbox_table(Base.metadata, name="backtest_live_outbox")
