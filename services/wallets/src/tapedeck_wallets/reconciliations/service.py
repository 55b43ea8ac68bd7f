"""Reconciliation jobs: run in the background, store each wallet's result, let watchers follow.

A job is stored RUNNING when it is submitted and runs in the submitting process: balances still
fresh in the cache are read in one go, the others are fetched concurrently (single-flight, with
the exchange bound), and results are written in batches, one transaction per batch, the last one
also ending the job. Watchers in this process are fed each batch from memory once its transaction
has committed, so what they are sent is what the database holds, without reading it back;
watchers elsewhere (another replica) read the stored results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck_common.errors import NotFound
from tapedeck_common.listener import listener_for
from tapedeck_common.validation import new_id
from tapedeck_wallets import publishing
from tapedeck_wallets.exchange.cache import BalanceCache
from tapedeck_wallets.exchange.domain import ExchangeFailure, ExchangeSnapshot
from tapedeck_wallets.exchange.gateway import ExchangeGateway
from tapedeck_wallets.reconciliations import repository
from tapedeck_wallets.reconciliations.domain import (
    Reconciliation,
    ReconciliationRequest,
    ReconciliationState,
    WalletResult,
    balances_to_adopt,
    new_reconciliation,
    wallet_result,
)
from tapedeck_wallets.reconciliations.repository import ReconciliationPosition
from tapedeck_wallets.wallets import repository as wallet_repository
from tapedeck_wallets.wallets.domain import WalletAccount

logger = logging.getLogger(__name__)

ABANDONED = "the service running this reconciliation stopped before it finished; start a new one"
STOPPED = "the service stopped before this reconciliation finished; start a new one"
_WATCH_POLL_SECONDS = 1.0
# Finished jobs kept in memory, so a watcher that arrives just after the end (the usual case when
# every balance was cached) is answered without reading the report back. Bounded by jobs and by
# results held.
_RECENT_JOBS = 16
_RECENT_RESULTS = 20_000

T = TypeVar("T")
Update = list[WalletResult] | Reconciliation
# A wallet and what its exchange read gave: balances or the classified failure.
_Outcome = tuple[WalletAccount, ExchangeSnapshot | ExchangeFailure]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Job:
    report: Reconciliation
    request: ReconciliationRequest
    # The wallets whose balances are not in the cache, as submit read them: only their accounts
    # and names are used before results are written, and the write re-reads the stored
    # balances, so a wallet deleted since is reported as such.
    to_fetch: list[WalletAccount]
    task: asyncio.Task[None] | None = None
    next_seq: int = 1
    # Results waiting to be written; the writer drains them in one transaction per batch.
    pending: list[_Outcome] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    # Every wallet's result is queued (none failed unexpectedly): the batch writing the last
    # of them also marks the job SUCCEEDED, in the same transaction.
    all_queued: bool = False
    # Results whose transaction committed, in seq order: exactly the stored ones.
    stored: list[WalletResult] = field(default_factory=list)
    # Nothing more will be stored. `final` is the stored report when this process wrote the end;
    # None when it could not (a failure, a stop, another replica): watchers then read it back.
    ended: bool = False
    final: Reconciliation | None = None


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
        self._owner = uuid.uuid4().hex
        self._jobs: dict[str, _Job] = {}
        self._recent: OrderedDict[str, _Job] = OrderedDict()
        self._recent_results = 0
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Future[Any]] = set()
        # The look for abandoned jobs only finds work while some job runs that this process
        # does not hold, so once a look found none and no job runs here, the keeper sleeps until
        # a job starts: here, or on PostgreSQL in another replica, whose start NOTIFYs every
        # replica (a LISTEN reconnection wakes it too, for what it missed). On SQLite the file
        # belongs to this process: jobs a crashed run of it left are failed at start.
        self._held_elsewhere = True
        self._starts_elsewhere = 0  # notifications seen: one landing during a look keeps it going
        self._listener = listener_for(
            sessions,
            channel=repository.JOB_STARTED_CHANNEL,
            application="tapedeck-wallets-jobs",
            wake=self._started_elsewhere,
            retry_seconds=lease_seconds / 3,
        )
        self._job_started = asyncio.Event()

    async def start(self) -> None:
        """Fail jobs whose owner is gone, then keep leases and keep looking for abandoned jobs."""
        await self._fail_abandoned()
        self._keeper = asyncio.create_task(self._keep_leases(), name="reconciliation leases")
        if self._listener is not None:
            self._listener.start()

    def _started_elsewhere(self) -> None:
        self._starts_elsewhere += 1
        self._held_elsewhere = True
        self._job_started.set()

    async def stop(self) -> None:
        """Cancel running jobs and mark them FAILED; a restart does not leave them RUNNING."""
        if self._listener is not None:
            await self._listener.stop()
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
            await self._fail(list(jobs), STOPPED)
            for reconciliation_id in jobs:
                self._notify(reconciliation_id)

    def watcher_count(self, reconciliation_id: str) -> int:
        """Return how many streams follow a job in this process."""
        return len(self._watchers.get(reconciliation_id, ()))

    async def get(self, reconciliation_id: str) -> Reconciliation:
        """Return a stored report with its results."""
        async with self._sessions() as session:
            return await repository.get_reconciliation(
                session=session, reconciliation_id=reconciliation_id
            )

    async def page(
        self,
        *,
        start: datetime | None,
        end: datetime | None,
        after: ReconciliationPosition | None,
        limit: int,
    ) -> tuple[list[Reconciliation], bool]:
        """Return a page of stored reports, newest first, and whether more follow."""
        async with self._sessions() as session:
            return await repository.list_reconciliations(
                session=session, start=start, end=end, after=after, limit=limit
            )

    async def submit(self, request: ReconciliationRequest, *, requested_by: str) -> Reconciliation:
        """Store the job and return it at once: RUNNING, or SUCCEEDED if the cache had it all.

        When every balance is fresh in the cache there is nothing to wait for, so the results
        are compared and stored in this same transaction and the job is returned done (as a
        long-running operation may be); otherwise it runs in the background.
        """
        async with self._sessions.begin() as session:
            request, targets = await self._targets(session, request)
            wallets = [wallet for wallet, _ in targets]
            cached = await self._cache.cached(
                [w.account for w in wallets], max_age=request.max_cache_age
            )
            now = _now()
            job = _Job(
                report=new_reconciliation(
                    reconciliation_id=new_id(),
                    request=request,
                    requested_by=requested_by,
                    now=now,
                ),
                request=request,
                to_fetch=[w for w in wallets if w.account not in cached],
                pending=[(w, cached[w.account]) for w in wallets if w.account in cached],
            )
            report = job.report
            if job.to_fetch:
                await repository.create_reconciliation(
                    session=session, report=report, owner=self._owner
                )
            else:
                # The balances were read (and, to adopt, locked) with the wallets, just now.
                job.stored = await _results(
                    session,
                    report.id,
                    request,
                    job.pending,
                    first_seq=1,
                    now=now,
                    totals={wallet.id: assets for wallet, assets in targets},
                )
                job.final = report.succeeded(job.stored, now)
                await repository.store_finished(
                    session=session, report=job.final, owner=self._owner, results=job.stored
                )
        if job.final is not None:
            job.pending, job.done, job.ended = [], True, True
            self._remember(report.id, job)
            return job.final
        self._jobs[report.id] = job
        self._job_started.set()
        job.wakeup.set()
        job.task = asyncio.create_task(
            self._run(report.id, job), name=f"reconciliation {report.id}"
        )
        return report

    async def _targets(
        self, session: AsyncSession, request: ReconciliationRequest
    ) -> tuple[ReconciliationRequest, list[tuple[WalletAccount, dict[str, Decimal]]]]:
        # The wallets to reconcile in the request's order (every wallet when it names none),
        # with their stored totals, locked when the job may replace them.
        lock = request.adopt_exchange_balances
        if not request.wallet_ids:
            targets = await wallet_repository.reconciliation_targets(
                session=session, wallet_ids=None, lock=lock
            )
            return replace(request, wallet_ids=tuple(w.id for w, _ in targets)), targets
        found = {
            target[0].id: target
            for target in await wallet_repository.reconciliation_targets(
                session=session, wallet_ids=request.wallet_ids, lock=lock
            )
        }
        missing = [w for w in request.wallet_ids if w not in found]
        if missing:
            raise NotFound(f"wallets/{missing[0]} does not exist")
        return request, [found[w] for w in request.wallet_ids]

    async def _durable(self, work: Coroutine[Any, Any, T]) -> T:
        # A cancelled job must not abandon a transaction half way: on SQLite that leaves the
        # write lock held. The write finishes in its own task; stop() waits for it.
        task = asyncio.ensure_future(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _fail(self, reconciliation_ids: list[str], error_message: str) -> None:
        # Watchers read a failed job's report back (job.final stays None): after an unexpected
        # error, memory may not know which writes reached the database.
        async with self._sessions.begin() as session:
            for reconciliation_id in reconciliation_ids:
                await repository.finish_reconciliation(
                    session=session,
                    reconciliation_id=reconciliation_id,
                    state=ReconciliationState.FAILED,
                    error_message=error_message,
                    now=_now(),
                )

    async def _run(self, reconciliation_id: str, job: _Job) -> None:
        try:
            writer = asyncio.create_task(self._write_results(reconciliation_id, job))
            try:
                await self._reconcile_all(job)
                job.all_queued = True
            except BaseException:
                writer.cancel()
                raise
            finally:
                job.done = True
                job.wakeup.set()
                await asyncio.gather(writer, return_exceptions=True)
            writer.result()
            if not job.ended:  # the last batch was written before the last fetch returned
                await self._durable(self._succeed_alone(reconciliation_id, job))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            reference = uuid.uuid4().hex[:12]
            logger.exception("reconciliation %s failed (ref %s)", reconciliation_id, reference)
            with contextlib.suppress(Exception):
                await self._durable(
                    self._fail(
                        [reconciliation_id],
                        f"internal error (ref {reference}): {type(error).__name__}",
                    )
                )
        finally:
            job.ended = True
            self._jobs.pop(reconciliation_id, None)
            self._remember(reconciliation_id, job)
            self._notify(reconciliation_id)

    async def _succeed_alone(self, reconciliation_id: str, job: _Job) -> None:
        now = _now()
        async with self._sessions.begin() as session:
            succeeded = await repository.store_results(
                session=session, reconciliation_id=reconciliation_id, results=(), succeeded_at=now
            )
        job.ended = True
        if succeeded:
            job.final = job.report.succeeded(job.stored, now)

    async def _reconcile_all(self, job: _Job) -> None:
        await asyncio.gather(*(self._reconcile_wallet(job, wallet) for wallet in job.to_fetch))

    async def _reconcile_wallet(self, job: _Job, wallet: WalletAccount) -> None:
        account = wallet.account
        outcome: ExchangeSnapshot | ExchangeFailure
        try:
            outcome = await self._cache.get(
                account,
                max_age=job.request.max_cache_age,
                fetch=lambda: self.gateway.fetch(account),
            )
        except ExchangeFailure as failure:
            outcome = failure
        job.pending.append((wallet, outcome))
        job.wakeup.set()

    async def _write_results(self, reconciliation_id: str, job: _Job) -> None:
        # The only writer of a job's results: seq order is commit order, so a watcher reading
        # "seq > last seen" never skips one. Results that finish together share a transaction.
        while True:
            await job.wakeup.wait()
            job.wakeup.clear()
            batch, job.pending = job.pending, []
            if batch:
                await self._durable(self._write_batch(reconciliation_id, job, batch))
                job.next_seq += len(batch)
                self._notify(reconciliation_id)
            if job.done and not job.pending:
                return

    async def _write_batch(self, reconciliation_id: str, job: _Job, batch: list[_Outcome]) -> None:
        async with self._sessions.begin() as session:
            # The last batch (every result queued, none waiting) also ends the job: one commit
            # less, and a watcher sees the last results and the end at once.
            finishing = job.all_queued and not job.pending
            now = _now()
            results = await _results(
                session, reconciliation_id, job.request, batch, first_seq=job.next_seq, now=now
            )
            succeeded = await repository.store_results(
                session=session,
                reconciliation_id=reconciliation_id,
                results=results,
                succeeded_at=now if finishing else None,
            )
        job.stored.extend(results)
        if finishing:
            job.ended = True
            if succeeded:
                job.final = job.report.succeeded(job.stored, now)

    def _remember(self, reconciliation_id: str, job: _Job) -> None:
        if job.final is None:
            return
        self._recent[reconciliation_id] = job
        self._recent_results += len(job.stored)
        while len(self._recent) > _RECENT_JOBS or self._recent_results > _RECENT_RESULTS:
            _, oldest = self._recent.popitem(last=False)
            self._recent_results -= len(oldest.stored)

    def _notify(self, reconciliation_id: str) -> None:
        for event in self._watchers.get(reconciliation_id, ()):
            event.set()

    async def watch(self, reconciliation_id: str) -> AsyncIterator[Update]:
        """Yield stored results in batches, then each new batch as it is stored, then the report.

        The report's results are exactly the results yielded before it, in order.
        """
        event = asyncio.Event()
        self._watchers.setdefault(reconciliation_id, set()).add(event)
        try:
            job = self._jobs.get(reconciliation_id) or self._recent.get(reconciliation_id)
            streamed: list[WalletResult] = []
            if job is not None:
                while True:
                    event.clear()
                    if len(job.stored) > len(streamed):
                        fresh = job.stored[len(streamed) :]
                        streamed.extend(fresh)
                        yield fresh
                    elif job.ended:
                        break
                    else:
                        await event.wait()
                if job.final is not None:
                    yield job.final
                    return
                # The end was written elsewhere or not at all: the database has the report.
            async for update in self._watch_stored(reconciliation_id, streamed, event):
                yield update
        finally:
            watchers = self._watchers.get(reconciliation_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[reconciliation_id]

    async def _watch_stored(
        self, reconciliation_id: str, streamed: list[WalletResult], event: asyncio.Event
    ) -> AsyncIterator[Update]:
        # A job run by another process, or one this process no longer holds: poll the stored
        # results after those already streamed, woken early by this process's notifications.
        while True:
            event.clear()
            async with self._sessions() as session:
                # State first: a finished job has every result stored before its state changed.
                report = await repository.get_reconciliation(
                    session=session, reconciliation_id=reconciliation_id, with_results=False
                )
                fresh = await repository.results_after(
                    session=session,
                    reconciliation_id=reconciliation_id,
                    seq=streamed[-1].seq if streamed else 0,
                )
            if fresh:
                streamed.extend(fresh)
                yield fresh
            if report.state.finished:
                # The state was read first and a finished job stores no more results, so
                # `streamed` is all of them: the report is built from them, not read back.
                yield replace(report, results=tuple(streamed))
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_WATCH_POLL_SECONDS):
                    await event.wait()

    async def _keep_leases(self) -> None:
        while True:
            if not (self._jobs or self._held_elsewhere):
                self._job_started.clear()
                await self._job_started.wait()
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
        starts = self._starts_elsewhere
        async with self._sessions.begin() as session:
            failed, running = await repository.fail_abandoned(
                session=session,
                stale_before=now - timedelta(seconds=self._lease),
                reason=ABANDONED,
                now=now,
            )
        self._held_elsewhere = starts != self._starts_elsewhere or any(
            job_id not in self._jobs for job_id in running
        )
        for reconciliation_id in failed:
            logger.warning("reconciliation %s was abandoned; marked FAILED", reconciliation_id)
            self._notify(reconciliation_id)


async def _results(
    session: AsyncSession,
    reconciliation_id: str,
    request: ReconciliationRequest,
    batch: list[_Outcome],
    *,
    first_seq: int,
    now: datetime,
    totals: dict[str, dict[str, Decimal]] | None = None,
) -> list[WalletResult]:
    # Compare a batch against the stored balances as they are now, in the transaction that
    # stores the results and may replace the balances; locked only when it may, so a
    # concurrent SetBalances is never overwritten blind while read-only jobs do not queue
    # behind each other. `totals`: those balances, when this transaction already read them.
    # Mismatches are published in the same transaction, so an event exists exactly when its
    # stored result does; the caller stores the results.
    stored = (
        totals
        if totals is not None
        else await wallet_repository.stored_totals(
            session=session,
            wallet_ids=[w.id for w, o in batch if isinstance(o, ExchangeSnapshot)],
            lock=request.adopt_exchange_balances,
        )
    )
    results = []
    for seq, (wallet, outcome) in enumerate(batch, start=first_seq):
        result = wallet_result(
            wallet=wallet,
            outcome=outcome,
            stored=stored.get(wallet.id),
            threshold=request.threshold,
            seq=seq,
        )
        adopt = balances_to_adopt(result, outcome, request)
        if adopt is not None and await wallet_repository.adopt_balances(
            session=session, wallet_id=wallet.id, balances=adopt, now=now
        ):
            result = replace(result, adopted=True)
        results.append(result)
    await publishing.publish_mismatches(
        session=session, reconciliation_id=reconciliation_id, results=results, now=now
    )
    return results
