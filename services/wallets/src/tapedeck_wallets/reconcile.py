"""Reconciliation jobs: run in the background, store each wallet's result, let watchers follow."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_common.errors import NotFound
from tapedeck_wallets import publishing, repository
from tapedeck_wallets.cache import BalanceCache
from tapedeck_wallets.domain import (
    Balance,
    ExchangeSnapshot,
    Reconciliation,
    ReconciliationRequest,
    ReconciliationState,
    Wallet,
    WalletResult,
    WalletStatus,
    adopted_balances,
    compare,
)
from tapedeck_wallets.exchange import ExchangeFailure, ExchangeGateway

logger = logging.getLogger(__name__)

ABANDONED = "the service running this reconciliation stopped before it finished; start a new one"
STOPPED = "the service stopped before this reconciliation finished; start a new one"
_WATCH_POLL_SECONDS = 1.0
_DELETED: dict[str, Any] = {
    "status": WalletStatus.EXCHANGE_ERROR,
    "error_message": "the wallet was deleted before it was reconciled",
    "fetch_time": None,
    "from_cache": False,
}

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Job:
    request: ReconciliationRequest
    # The wallets as submit read them (None: read them when the job starts). Only their
    # accounts and names are used before the results are written; the write re-reads them
    # locked, so a wallet deleted since is still reported as deleted.
    wallets: dict[str, Wallet] | None = None
    task: asyncio.Task[None] | None = None
    next_seq: int = 1
    # Results waiting to be written; the writer drains them in one transaction per batch.
    pending: list[tuple[WalletResult, ExchangeSnapshot | None]] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    # Every wallet's result is queued (none failed unexpectedly): the batch writing the last
    # of them also marks the job SUCCEEDED, in the same transaction.
    all_queued: bool = False
    succeeded: bool = False


class Reconciler:
    """Starts reconciliation jobs in this process, keeps their leases, and fails abandoned ones."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        cache: BalanceCache,
        gateway: ExchangeGateway,
        lease_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._cache = cache
        self.gateway = gateway
        self._lease = lease_seconds
        self.owner = uuid.uuid4().hex
        self._jobs: dict[str, _Job] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        """Fail jobs whose owner is gone, then keep leases and keep looking for abandoned jobs."""
        await self._fail_abandoned()
        self._keeper = asyncio.create_task(self._keep_leases(), name="reconciliation leases")

    async def stop(self) -> None:
        """Cancel running jobs and mark them FAILED; a restart does not leave them RUNNING."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        jobs = dict(self._jobs)
        for job in jobs.values():
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(
            *(j.task for j in jobs.values() if j.task is not None), return_exceptions=True
        )
        await asyncio.gather(*self._writes, return_exceptions=True)
        if jobs:
            async with self._sessions.begin() as session:
                for reconciliation_id in jobs:
                    await repository.finish_reconciliation(
                        session=session,
                        reconciliation_id=reconciliation_id,
                        state=ReconciliationState.FAILED,
                        error_message=STOPPED,
                        now=_now(),
                    )
            for reconciliation_id in jobs:
                self._notify(reconciliation_id)

    @property
    def running(self) -> int:
        """Return how many jobs this process is running."""
        return len(self._jobs)

    def watcher_count(self, reconciliation_id: str) -> int:
        """Return how many streams follow a job in this process."""
        return len(self._watchers.get(reconciliation_id, ()))

    async def submit(self, request: ReconciliationRequest, *, requested_by: str) -> Reconciliation:
        """Store a QUEUED job, start it in the background and return it at once."""
        found: dict[str, Wallet] | None = None
        async with self._sessions.begin() as session:
            if not request.wallet_ids:
                ids = await repository.all_wallet_ids(session=session)
                request = ReconciliationRequest(
                    wallet_ids=tuple(ids),
                    threshold=request.threshold,
                    max_cache_age=request.max_cache_age,
                    adopt_exchange_balances=request.adopt_exchange_balances,
                )
            else:
                found = await repository.get_wallets(session=session, wallet_ids=request.wallet_ids)
                missing = [w for w in request.wallet_ids if w not in found]
                if missing:
                    raise NotFound(f"wallets/{missing[0]} does not exist")
            reconciliation = await repository.create_reconciliation(
                session=session,
                request=request,
                requested_by=requested_by,
                owner=self.owner,
                now=_now(),
            )
        job = _Job(request=request, wallets=found)
        self._jobs[reconciliation.id] = job
        job.task = asyncio.create_task(
            self._run(reconciliation.id, job), name=f"reconciliation {reconciliation.id}"
        )
        return reconciliation

    async def _durable(self, work: Coroutine[Any, Any, T]) -> T:
        # A cancelled job must not abandon a transaction half way: on SQLite that leaves the
        # write lock held. The write finishes in its own task; stop() waits for it.
        task = asyncio.ensure_future(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _start_job(self, reconciliation_id: str, job: _Job) -> dict[str, Wallet]:
        async with self._sessions.begin() as session:
            await repository.mark_running(
                session=session, reconciliation_id=reconciliation_id, now=_now()
            )
            if job.wallets is not None:
                return job.wallets
            return await repository.get_wallets(session=session, wallet_ids=job.request.wallet_ids)

    async def _finish(
        self, reconciliation_id: str, state: ReconciliationState, error_message: str
    ) -> None:
        async with self._sessions.begin() as session:
            await repository.finish_reconciliation(
                session=session,
                reconciliation_id=reconciliation_id,
                state=state,
                error_message=error_message,
                now=_now(),
            )

    async def _run(self, reconciliation_id: str, job: _Job) -> None:
        try:
            wallets = await self._durable(self._start_job(reconciliation_id, job))
            self._notify(reconciliation_id)
            writer = asyncio.create_task(self._write_results(reconciliation_id, job))
            try:
                await asyncio.gather(
                    *(
                        self._reconcile_wallet(job, wallet_id, wallets.get(wallet_id))
                        for wallet_id in job.request.wallet_ids
                    )
                )
                job.all_queued = True
            except BaseException:
                writer.cancel()
                raise
            finally:
                job.done = True
                job.wakeup.set()
                await asyncio.gather(writer, return_exceptions=True)
            writer.result()
            if not job.succeeded:
                await self._durable(
                    self._finish(reconciliation_id, ReconciliationState.SUCCEEDED, "")
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            reference = uuid.uuid4().hex[:12]
            logger.exception("reconciliation %s failed (ref %s)", reconciliation_id, reference)
            with contextlib.suppress(Exception):
                await self._durable(
                    self._finish(
                        reconciliation_id,
                        ReconciliationState.FAILED,
                        f"internal error (ref {reference}): {type(error).__name__}",
                    )
                )
        finally:
            self._jobs.pop(reconciliation_id, None)
            self._notify(reconciliation_id)

    async def _reconcile_wallet(self, job: _Job, wallet_id: str, wallet: Wallet | None) -> None:
        if wallet is None:
            result = WalletResult(wallet_id=wallet_id, display_name="", **_DELETED)
            self._queue(job, result, None)
            return
        account = wallet.account_key
        try:
            snapshot = await self._cache.get(
                account,
                max_age=job.request.max_cache_age,
                fetch=lambda: self.gateway.fetch(account),
            )
        except ExchangeFailure as failure:
            result = WalletResult(
                wallet_id=wallet.id,
                display_name=wallet.display_name,
                status=WalletStatus.EXCHANGE_ERROR,
                error_kind=failure.kind,
                error_message=failure.message,
            )
            self._queue(job, result, None)
            return
        result = WalletResult(
            wallet_id=wallet.id,
            display_name=wallet.display_name,
            status=WalletStatus.MATCHED,
            fetch_time=snapshot.fetch_time,
            from_cache=snapshot.from_cache,
        )
        self._queue(job, result, snapshot)

    def _queue(self, job: _Job, result: WalletResult, snapshot: ExchangeSnapshot | None) -> None:
        job.pending.append((result, snapshot))
        job.wakeup.set()

    async def _write_results(self, reconciliation_id: str, job: _Job) -> None:
        # The only writer of a job's results: seq order is commit order, so a watcher reading
        # "seq > last seen" never skips one. Results that finish together share a transaction.
        while True:
            await job.wakeup.wait()
            job.wakeup.clear()
            batch, job.pending = job.pending, []
            if batch:
                numbered = [
                    (replace(result, seq=job.next_seq + i), snapshot)
                    for i, (result, snapshot) in enumerate(batch)
                ]
                await self._durable(self._write_batch(reconciliation_id, job, numbered))
                job.next_seq += len(batch)
                self._notify(reconciliation_id)
            if job.done and not job.pending:
                return

    async def _write_batch(
        self,
        reconciliation_id: str,
        job: _Job,
        batch: list[tuple[WalletResult, ExchangeSnapshot | None]],
    ) -> None:
        async with self._sessions.begin() as session:
            # Compare against the stored balances as they are now, inside the transaction that
            # may replace them, so a concurrent SetBalances is never overwritten blind.
            fetched = [r.wallet_id for r, snapshot in batch if snapshot is not None]
            stored = (
                await repository.lock_wallets(session=session, wallet_ids=fetched)
                if fetched
                else {}
            )
            entries: list[tuple[WalletResult, tuple[Balance, ...] | None]] = []
            for result, snapshot in batch:
                if snapshot is None:
                    entries.append((result, None))
                    continue
                wallet = stored.get(result.wallet_id)
                if wallet is None:
                    entries.append((replace(result, **_DELETED), None))
                    continue
                diffs = compare(
                    stored=wallet.balances,
                    exchange=snapshot.balances,
                    threshold=job.request.threshold,
                )
                mismatched = any(d.beyond_threshold for d in diffs)
                adopt = (
                    adopted_balances(snapshot.balances)
                    if mismatched and job.request.adopt_exchange_balances
                    else None
                )
                status = WalletStatus.MISMATCHED if mismatched else WalletStatus.MATCHED
                entries.append((replace(result, diffs=diffs, status=status), adopt))
            now = _now()
            stored_results = await repository.add_results(
                session=session, reconciliation_id=reconciliation_id, results=entries, now=now
            )
            # Same transaction: a mismatch event exists exactly when its stored result does.
            await publishing.publish_mismatches(
                session=session,
                reconciliation_id=reconciliation_id,
                results=stored_results,
                now=now,
            )
            # The last batch (every result queued, none waiting) finishes the job in its own
            # transaction: one commit less, and a watcher sees the results and the end at once.
            finishing = job.all_queued and not job.pending
            if finishing:
                await repository.finish_reconciliation(
                    session=session,
                    reconciliation_id=reconciliation_id,
                    state=ReconciliationState.SUCCEEDED,
                    error_message="",
                    now=now,
                )
        if finishing:
            job.succeeded = True

    def _notify(self, reconciliation_id: str) -> None:
        for event in self._watchers.get(reconciliation_id, ()):
            event.set()

    async def watch(self, reconciliation_id: str) -> AsyncIterator[WalletResult | Reconciliation]:
        """Yield stored results, then each new one as it is stored, then the finished report."""
        event = asyncio.Event()
        self._watchers.setdefault(reconciliation_id, set()).add(event)
        try:
            seen = 0
            # Every result streamed so far, in seq order: the final report is built from them
            # rather than reading back (and decoding) all results just sent.
            streamed: list[WalletResult] = []
            while True:
                event.clear()
                async with self._sessions() as session:
                    # State first: a finished job has every result stored before its state changed.
                    report = await repository.get_reconciliation(
                        session=session, reconciliation_id=reconciliation_id, with_results=False
                    )
                    fresh = await repository.results_after(
                        session=session, reconciliation_id=reconciliation_id, seq=seen
                    )
                for result in fresh:
                    seen = result.seq
                    streamed.append(result)
                    yield result
                if report.state.finished:
                    # The state was read first and a finished job stores no more results, so
                    # `streamed` is all of them.
                    yield replace(report, results=tuple(streamed))
                    return
                # Woken by this process's runner; the poll covers jobs run by another replica.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_WATCH_POLL_SECONDS):
                        await event.wait()
        finally:
            watchers = self._watchers.get(reconciliation_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[reconciliation_id]

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self._durable(self._renew_leases())
                await self._durable(self._fail_abandoned())
            except Exception:
                logger.exception("renewing reconciliation leases failed")

    async def _renew_leases(self) -> None:
        async with self._sessions.begin() as session:
            await repository.renew_leases(
                session=session, reconciliation_ids=list(self._jobs), now=_now()
            )

    async def _fail_abandoned(self) -> None:
        now = _now()
        async with self._sessions.begin() as session:
            failed = await repository.fail_abandoned(
                session=session,
                stale_before=now - timedelta(seconds=self._lease),
                reason=ABANDONED,
                now=now,
            )
        for reconciliation_id in failed:
            logger.warning("reconciliation %s was abandoned; marked FAILED", reconciliation_id)
            self._notify(reconciliation_id)
