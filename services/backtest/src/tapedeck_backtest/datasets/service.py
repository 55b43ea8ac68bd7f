"""Importing raw files into datasets: path checks, content hashing, atomic catalogs, the database.

Each dataset is its own NautilusTrader catalog at `<catalog_dir>/<dataset_id>/`, where
`catalog_dir` is a local directory or an fsspec URL (`storage.py`). An import is written under a
local staging directory and published in one step (a rename on local disk, an upload to an object
store), then the row is committed: a catalog without a row is never read, and a failure at any
point removes what was written. The same content imported the
same way (kind and instrument) is one dataset: the second import does no conversion, and an
unchanged file (same path, size and mtime) is not even hashed again.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_backtest import storage
from tapedeck_backtest.datasets import repository
from tapedeck_backtest.datasets.catalog import WrittenFile, verify_read_back
from tapedeck_backtest.datasets.domain import (
    DataKind,
    Dataset,
    DatasetSource,
    FileFormat,
    ImportRequest,
    ImportUpdate,
    dataset_source,
    import_key,
    label_offset_ns,
    request_key,
)
from tapedeck_backtest.datasets.importer import (
    ConversionProgress,
    ImportCancelled,
    MalformedInput,
    check_format,
    convert_file,
    hash_file,
)
from tapedeck_backtest.datasets.instruments import to_nautilus
from tapedeck_backtest.datasets.metrics import imported
from tapedeck_backtest.keysets import Keyset
from tapedeck_common.errors import FieldViolation, InvalidArgument, NotFound
from tapedeck_common.validation import new_id

logger = logging.getLogger(__name__)

STAGING = ".staging"
HASH_SHARE = 25.0  # percent of an import's progress given to hashing
ORPHAN_AGE_SECONDS = 3600.0


def resolve_source(data_root: Path, source_path: str, *, field: str = "source_path") -> Path:
    """Return the real path of `source_path` under `data_root`; anything escaping it is refused."""
    if source_path.strip() == "":
        raise InvalidArgument([FieldViolation(field, "is required (a path under the data root)")])
    if "\x00" in source_path:
        raise InvalidArgument([FieldViolation(field, "must not contain NUL")])
    candidate = Path(source_path)
    if candidate.is_absolute():
        raise InvalidArgument([FieldViolation(field, "must be relative to the data root")])
    root = data_root.resolve()
    # resolve() follows every symlink and `..`, so the containment check sees the real target.
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise InvalidArgument([FieldViolation(field, "resolves outside the data root")])
    if not resolved.exists():
        raise NotFound(f"{source_path} does not exist under the data root")
    if not resolved.is_file():
        raise InvalidArgument([FieldViolation(field, "is not a regular file")])
    return resolved


async def load_dataset_source(
    *, session: AsyncSession, catalog_dir: str, dataset_id: str, field: str = "spec.dataset"
) -> DatasetSource:
    """Return the catalog path, instrument and data type of a dataset; NotFound if unknown."""
    dataset = await repository.get_dataset(session=session, dataset_id=dataset_id)
    if dataset is None:
        raise NotFound(f"datasets/{dataset_id} does not exist ({field})")
    return dataset_source(dataset, catalog_dir=catalog_dir)


class Datasets:
    """Datasets on disk and in the database: import, read, and clean up after crashes."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        data_root: Path,
        catalog_dir: str,
        cache_dir: Path,
        concurrency: int = 2,
    ) -> None:
        self._sessions = sessions
        self.data_root = data_root
        self.catalog_dir = catalog_dir
        local = storage.local_path(catalog_dir)
        # On local disk, staging sits beside the catalogs so that publishing is a rename.
        self._staging = (local if local is not None else cache_dir) / STAGING
        self._slots = asyncio.Semaphore(concurrency)

    def catalog_path(self, dataset_id: str) -> str:
        """Return the catalog location of one dataset."""
        return storage.join(self.catalog_dir, dataset_id)

    async def get(self, dataset_id: str) -> Dataset:
        """Return one dataset or raise NotFound."""
        async with self._sessions() as session:
            dataset = await repository.get_dataset(session=session, dataset_id=dataset_id)
        if dataset is None:
            raise NotFound(f"datasets/{dataset_id} does not exist")
        return dataset

    async def page(
        self, *, instrument_id: str | None, after: Keyset | None, limit: int
    ) -> list[Dataset]:
        """Return up to `limit` datasets, newest first, after the keyset position `after`."""
        async with self._sessions() as session:
            return await repository.list_datasets(
                session=session, instrument_id=instrument_id, after=after, limit=limit
            )

    async def remove_leftovers(self) -> None:
        """Delete staging directories and catalogs without a row, left by a crash (an hour old)."""
        async with self._sessions() as session:
            known = await repository.dataset_ids(session=session)
        await asyncio.to_thread(_remove_leftovers, self.catalog_dir, self._staging, known)

    async def import_dataset(self, request: ImportRequest) -> AsyncIterator[ImportUpdate]:
        """Import a file, yielding progress and, last, the dataset (or the existing one)."""
        source = resolve_source(self.data_root, request.source_path)
        relative = source.relative_to(self.data_root.resolve()).as_posix()
        file_format = request.file_format or check_format(source.name)
        if file_format is None:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "format", "is unset and the file name ends in neither .csv nor .parquet"
                    )
                ]
            )
        stat = source.stat()
        total = stat.st_size
        how = request_key(request.kind, request.instrument, request.columns, request.bar_convention)
        async with self._sessions() as session:
            unchanged = await repository.find_by_source_stat(
                session=session,
                source_path=relative,
                source_size=stat.st_size,
                source_mtime_ns=stat.st_mtime_ns,
                request_key=how,
            )
        if unchanged is not None and await self._still_on_disk(unchanged):
            yield _done(unchanged, total, already=True)
            return

        async with self._slots:
            started = time.perf_counter()
            content_hash = ""
            async for step in _in_thread(
                None,
                lambda report, cancel: hash_file(
                    source,
                    on_bytes=lambda done: report(
                        ImportUpdate(0, 0, total, HASH_SHARE * done / max(total, 1))
                    ),
                    cancel=cancel,
                ),
            ):
                if isinstance(step, ImportUpdate):
                    yield step
                else:
                    content_hash = step
            key = import_key(
                content_hash,
                request.kind,
                request.instrument,
                request.columns,
                request.bar_convention,
            )
            async with self._sessions() as session:
                existing = await repository.find_by_import_key(session=session, import_key=key)
            if existing is not None and await self._still_on_disk(existing):
                yield _done(existing, total, already=True)
                return

            dataset_id = new_id()
            staging = self._staging / dataset_id
            final = self.catalog_path(dataset_id)
            written: WrittenFile | None = None
            try:
                async for item in _in_thread(
                    # A caller that leaves mid-import: the work stops, and its files go.
                    lambda: shutil.rmtree(staging, ignore_errors=True),
                    lambda report, cancel: self._write_catalog(
                        source=source,
                        display_path=relative,
                        file_format=file_format,
                        request=request,
                        dataset_id=dataset_id,
                        report=lambda p: report(
                            ImportUpdate(
                                p.rows,
                                p.bytes_read,
                                total,
                                HASH_SHARE
                                + (100.0 - HASH_SHARE) * min(p.bytes_read, total) / max(total, 1),
                            )
                        ),
                        cancel=cancel,
                    ),
                ):
                    if isinstance(item, ImportUpdate):
                        yield item
                    else:
                        written = item
                assert written is not None
                dataset = Dataset(
                    id=dataset_id,
                    display_name=request.display_name or source.name,
                    instrument=request.instrument,
                    kind=request.kind,
                    source_path=relative,
                    content_hash=content_hash,
                    row_count=written.rows,
                    # Rows are stored at their ts_event; a dataset names them by their label.
                    start_ns=written.first_ns - label_offset_ns(request.kind),
                    end_ns=written.last_ns - label_offset_ns(request.kind),
                    size_bytes=written.size_bytes,
                    create_time=datetime.now(UTC),
                    bar_convention=request.bar_convention
                    if request.kind is DataKind.BARS
                    else None,
                )
                # Publish the whole catalog, then commit the row that makes it visible.
                await asyncio.to_thread(storage.publish, staging, final)
                async with self._sessions() as session, session.begin():
                    await repository.insert_dataset(
                        session=session,
                        dataset=dataset,
                        import_key=key,
                        request_key=how,
                        source_size=stat.st_size,
                        source_mtime_ns=stat.st_mtime_ns,
                    )
            except MalformedInput as error:
                raise InvalidArgument([FieldViolation("source_path", str(error))]) from None
            except IntegrityError:
                # Another import of the same content won the race: keep its dataset, drop ours.
                await asyncio.to_thread(storage.remove, final)
                async with self._sessions() as session:
                    winner = await repository.find_by_import_key(session=session, import_key=key)
                if winner is None:
                    raise
                yield _done(winner, total, already=True)
                return
            except BaseException:
                # Also on cancellation and GeneratorExit, where awaiting is not safe: remove
                # synchronously (a handful of files).
                shutil.rmtree(staging, ignore_errors=True)
                storage.remove(final)
                raise
            imported(
                rows=dataset.row_count,
                source_bytes=total,
                seconds=time.perf_counter() - started,
            )
            logger.info(
                "dataset imported",
                extra={"dataset": dataset_id, "rows": dataset.row_count, "source": relative},
            )
            yield _done(dataset, total, already=False)

    async def _still_on_disk(self, dataset: Dataset) -> bool:
        """Return True if the dataset's catalog exists; otherwise forget the row so it re-imports."""
        if await asyncio.to_thread(storage.exists, self.catalog_path(dataset.id)):
            return True
        logger.warning(
            "dataset catalog is missing; importing it again", extra={"dataset": dataset.id}
        )
        async with self._sessions() as session, session.begin():
            await repository.delete_dataset(session=session, dataset_id=dataset.id)
        return False

    def _write_catalog(
        self,
        *,
        source: Path,
        display_path: str,
        file_format: FileFormat,
        request: ImportRequest,
        dataset_id: str,
        report: Callable[[ConversionProgress], None],
        cancel: threading.Event,
    ) -> WrittenFile:
        staging = self._staging / dataset_id
        try:
            staging.mkdir(parents=True)
            written = convert_file(
                source,
                display_path=display_path,
                file_format=file_format,
                kind=request.kind,
                instrument=request.instrument,
                catalog=staging,
                on_progress=report,
                cancel=cancel,
                columns=dict(request.columns),
                ts_offset_ns=request.ts_offset_ns,
            )
            # The catalog's own reader must give back exactly the first and last rows written.
            verify_read_back(
                staging,
                request.kind,
                instrument_id=request.instrument.instrument_id,
                written=written,
            )
            # The instrument goes in through the official path: one row, and the catalog is whole.
            ParquetDataCatalog(str(staging)).write_data([to_nautilus(request.instrument)])
            size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            # Arrow's allocator keeps the import's freed batches (~35 MB for 300,000 ticks) for
            # reuse; imports are rare, so hand them back to the system when one ends.
            pa.default_memory_pool().release_unused()
        return WrittenFile(
            path=written.path,
            rows=written.rows,
            first_ns=written.first_ns,
            last_ns=written.last_ns,
            size_bytes=size,
        )


def _done(dataset: Dataset, total: int, *, already: bool) -> ImportUpdate:
    return ImportUpdate(
        rows_read=dataset.row_count,
        bytes_read=total,
        total_bytes=total,
        percent=100.0,
        dataset=dataset,
        already_imported=already,
    )


async def _in_thread[T](
    on_abandon: Callable[[], None] | None,
    work: Callable[[Callable[[ImportUpdate], None], threading.Event], T],
) -> AsyncIterator[ImportUpdate | T]:
    """Run blocking `work` in a thread, yielding the updates it reports and then its result.

    If the consumer goes away, the work is told to stop at its next batch and cleans up itself.
    """
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue[ImportUpdate] = asyncio.Queue()
    cancel = threading.Event()

    def report(update: ImportUpdate) -> None:
        loop.call_soon_threadsafe(updates.put_nowait, update)

    task = asyncio.ensure_future(asyncio.to_thread(work, report, cancel))
    # If the consumer leaves early nobody awaits the task; retrieve its outcome so it is not logged.
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        while not task.done():
            getter = asyncio.ensure_future(updates.get())
            await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        yield task.result()
    except ImportCancelled:
        raise asyncio.CancelledError from None
    finally:
        cancel.set()
        if on_abandon is not None and not task.done():
            # The work ends at its next batch; clean up after it, off the event loop.
            task.add_done_callback(lambda _: loop.run_in_executor(None, on_abandon))


def _remove_leftovers(catalog_dir: str, staging: Path, known: set[str]) -> None:
    cutoff = time.time() - ORPHAN_AGE_SECONDS
    candidates = list(staging.iterdir()) if staging.exists() else []
    local = storage.local_path(catalog_dir)
    # A remote catalog without a row (a crash between upload and commit) is never read; removing
    # it needs listing the bucket, left to the bucket's lifecycle rules.
    if local is not None and local.exists():
        candidates += [
            entry
            for entry in local.iterdir()
            if entry.name != STAGING and entry.is_dir() and entry.name not in known
        ]
    for entry in candidates:
        if entry.stat().st_mtime < cutoff:
            logger.warning("removing a leftover import directory", extra={"path": str(entry)})
            shutil.rmtree(entry, ignore_errors=True)
