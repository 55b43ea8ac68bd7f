"""All SQL about datasets: AsyncSession in, Dataset out."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapedeck_backtest.datasets.domain import BarConvention, DataKind, Dataset
from tapedeck_backtest.datasets.instruments import InstrumentSpec
from tapedeck_backtest.keyset_repository import newest_first
from tapedeck_backtest.keysets import Keyset
from tapedeck_backtest.models import DatasetRow, as_utc


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
        create_time=as_utc(row.create_time),
        bar_convention=None if row.bar_convention is None else BarConvention(row.bar_convention),
    )


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
            bar_convention=None if dataset.bar_convention is None else dataset.bar_convention.value,
        )
    )
    await session.flush()


async def list_datasets(
    *, session: AsyncSession, instrument_id: str | None, after: Keyset | None, limit: int
) -> list[Dataset]:
    """Return up to `limit` datasets, newest first, after the (create_time, id) keyset position."""
    query = select(DatasetRow)
    if instrument_id is not None:
        query = query.where(DatasetRow.instrument_id == instrument_id)
    query = newest_first(
        query, created=DatasetRow.create_time, row_id=DatasetRow.id, after=after, limit=limit
    )
    return [_to_domain(row) for row in await session.scalars(query)]


async def dataset_ids(*, session: AsyncSession) -> set[str]:
    """Return the ids of every dataset (to tell orphaned catalog directories apart)."""
    return set((await session.scalars(select(DatasetRow.id))).all())


async def delete_dataset(*, session: AsyncSession, dataset_id: str) -> None:
    """Delete a dataset row (its catalog is already gone); the caller commits."""
    await session.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))
