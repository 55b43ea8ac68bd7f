"""All SQL about datasets: AsyncSession in, Dataset out."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck_backtest.datasets import DataKind, Dataset
from tapedeck_backtest.instruments import InstrumentSpec
from tapedeck_backtest.models import DatasetRow


def _to_domain(row: DatasetRow) -> Dataset:
    return Dataset(
        id=row.id,
        display_name=row.display_name,
        instrument=InstrumentSpec.from_json(row.instrument_json),
        kind=DataKind(row.kind),
        source_path=row.source_path,
        content_hash=row.content_hash,
        row_count=row.row_count,
        start_ns=row.start_ns,
        end_ns=row.end_ns,
        size_bytes=row.size_bytes,
        create_time=_utc(row.create_time),
    )


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def get_dataset(*, session: AsyncSession, dataset_id: str) -> Dataset | None:
    """Return one dataset, or None."""
    row = await session.get(DatasetRow, dataset_id)
    return None if row is None else _to_domain(row)


async def find_by_import_key(*, session: AsyncSession, import_key: str) -> Dataset | None:
    """Return the dataset imported from the same content, kind and instrument, or None."""
    row = await session.scalar(select(DatasetRow).where(DatasetRow.import_key == import_key))
    return None if row is None else _to_domain(row)


async def find_by_source_stat(
    *,
    session: AsyncSession,
    source_path: str,
    source_size: int,
    source_mtime_ns: int,
    request_key: str,
) -> Dataset | None:
    """Return a dataset imported from this unchanged file (same size and mtime) the same way."""
    row = await session.scalar(
        select(DatasetRow)
        .where(
            DatasetRow.source_path == source_path,
            DatasetRow.source_size == source_size,
            DatasetRow.source_mtime_ns == source_mtime_ns,
            DatasetRow.request_key == request_key,
        )
        .limit(1)
    )
    return None if row is None else _to_domain(row)


async def insert_dataset(
    *,
    session: AsyncSession,
    dataset: Dataset,
    import_key: str,
    request_key: str,
    source_size: int,
    source_mtime_ns: int,
) -> None:
    """Add a dataset row; the caller commits (and handles a duplicate import_key)."""
    session.add(
        DatasetRow(
            id=dataset.id,
            display_name=dataset.display_name,
            instrument_id=dataset.instrument.instrument_id,
            instrument_json=dataset.instrument.to_json(),
            kind=dataset.kind.value,
            source_path=dataset.source_path,
            content_hash=dataset.content_hash,
            import_key=import_key,
            request_key=request_key,
            source_size=source_size,
            source_mtime_ns=source_mtime_ns,
            row_count=dataset.row_count,
            start_ns=dataset.start_ns,
            end_ns=dataset.end_ns,
            size_bytes=dataset.size_bytes,
            create_time=dataset.create_time,
        )
    )
    await session.flush()


async def list_datasets(
    *,
    session: AsyncSession,
    instrument_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Dataset]:
    """Return up to `limit` datasets, newest first, after the (create_time, id) keyset position."""
    query = select(DatasetRow)
    if instrument_id is not None:
        query = query.where(DatasetRow.instrument_id == instrument_id)
    if after is not None:
        moment, last_id = after
        query = query.where(
            or_(
                DatasetRow.create_time < moment,
                and_(DatasetRow.create_time == moment, DatasetRow.id < last_id),
            )
        )
    query = query.order_by(DatasetRow.create_time.desc(), DatasetRow.id.desc()).limit(limit)
    rows = (await session.scalars(query)).all()
    return [_to_domain(row) for row in rows]


async def dataset_ids(*, session: AsyncSession) -> set[str]:
    """Return the ids of every dataset (to tell orphaned catalog directories apart)."""
    return set((await session.scalars(select(DatasetRow.id))).all())


async def delete_dataset(*, session: AsyncSession, dataset_id: str) -> None:
    """Delete a dataset row (its catalog is already gone); the caller commits."""
    await session.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))
