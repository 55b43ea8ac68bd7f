"""The worker pool: processes that each run one NautilusTrader engine, fed from the durable queue.

The supervisor is an asyncio task in the service process. It claims QUEUED runs from the database
(so any replica can take any run), hands each to an idle worker (a process of this service, or a
task on a Ray cluster: see `executors.py`; the rest of this module is the same for both), writes the
progress the worker reports back into the database (so `WatchBacktest` works from any replica),
renews a lease (heartbeat) on the runs it holds, and watches for:
- cancel: the run's row left RUNNING; the worker's cancel flag is set (the engine stops at its
  next slice) and the process is killed if it has not stopped within `CANCEL_GRACE_SECONDS`;
- a dead worker (its process exited without reporting): the run is re-queued until it has used
  `max_attempts`, then FAILED with the reason;
- a dead service: runs whose lease expired are re-queued or failed by whichever replica notices,
  at start-up and every few seconds after.
A worker process keeps its loaded engine while the runs it gets share data and venue (a sweep);
otherwise it is replaced by a fresh process, since NautilusTrader allows one engine per process.
A worker left idle with an engine for `idle_engine_seconds` is replaced too: a fresh process
from the forkserver shares most of its pages, a loaded engine holds its dataset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tapedeck_backtest import storage
from tapedeck_backtest.runs.domain import Run, RunProgress, RunState, Stats
from tapedeck_backtest.runs.engine import RunJob, error_message
from tapedeck_backtest.runs.executors import Executor, LocalExecutor, Worker
from tapedeck_backtest.runs.metrics import run_ended
from tapedeck_backtest.runs.publishing import Denial
from tapedeck_backtest.runs.queue import RunQueue

logger = logging.getLogger(__name__)

CANCEL_GRACE_SECONDS = 0.8
PROGRESS_WRITE_SECONDS = 0.25
TICK_SECONDS = 0.1
# With no run in a worker, the supervisor only checks that its workers are alive this often (no
# database work): the queue wakes it (a notification) and a slow poll is its safety net.
IDLE_CHECK_SECONDS = 1.0
CANCEL_CHECK_SECONDS = 0.2
# How a pool's LISTEN connection to the queue shows in pg_stat_activity.
QUEUE_LISTENER_APPLICATION = "tapedeck-backtest-queue-listener"

# The owners of the pools running in this process: alive whatever their pid says (tests run two
# replicas in one process).
_OWNERS_HERE: set[str] = set()
_POOLS_HERE: set[WorkerPool] = set()


def wake_pools_here() -> None:
    """Tell every worker pool of this process that the queue changed (a run queued or cancelled)."""
    for pool in _POOLS_HERE:
        pool.notify()


JobResolver = Callable[[Run], Awaitable[RunJob]]
"""Return what a worker needs to execute a run (where its data is, where its results go)."""


STAGING_MAX_AGE_SECONDS = 3600.0


def remove_stale_staging(results_root: str) -> None:
    """Delete result staging directories a killed worker left (hidden, older than an hour)."""
    # Results for a remote store are staged in each node's temporary directory instead.
    local = storage.local_path(results_root)
    if local is None or not local.is_dir():
        return
    cutoff = time.time() - STAGING_MAX_AGE_SECONDS
    for entry in local.iterdir():
        # Results are written to ".<run_id>.<random>" and renamed into place when complete.
        with contextlib.suppress(OSError):
            if entry.name.startswith(".") and entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)


# --- the supervisor ---


@dataclass
class _Slot:
    worker: Worker | None = None
    key: str | None = None
    run_id: str | None = None
    progress: RunProgress | None = None
    progress_written: float = 0.0
    cancel_deadline: float | None = None
    started: float = 0.0
    freed: float = 0.0
    pending: tuple[str, str, Any] | None = None
    denials: tuple[Denial, ...] = ()

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.is_alive()


class WorkerPool:
    """A fixed number of worker processes fed from the database queue."""

    def __init__(
        self,
        *,
        queue: RunQueue,
        jobs: JobResolver,
        workers: int,
        results_root: str,
        executor: Executor | None = None,
        strategy_paths: tuple[str, ...] = (),
        max_attempts: int = 2,
        lease_seconds: float = 15.0,
        run_timeout_seconds: float | None = None,
        poll_seconds: float = 30.0,
        idle_engine_seconds: float = 30.0,
    ) -> None:
        self._queue = queue
        self._jobs = jobs
        self._slots = [_Slot() for _ in range(workers)]
        self._results_root = results_root
        self._strategy_paths = strategy_paths
        self._max_attempts = max_attempts
        self._lease = timedelta(seconds=lease_seconds)
        self._run_timeout = run_timeout_seconds
        self._poll_seconds = poll_seconds
        self._idle_engine_seconds = idle_engine_seconds
        self._claim_due = True  # claim at start; then when woken, a worker freed, or polled
        # The poll only finds work when some run is queued or running under another owner (one
        # that may die). When its last look found none, the poll sleeps until a wake-up says a
        # run may exist again. Every run starts QUEUED, and queueing wakes every pool that could
        # see it: on PostgreSQL through NOTIFY to every replica (and a LISTEN reconnection wakes
        # too, for what it missed), on SQLite, which one process owns, through
        # `wake_pools_here`. A woken pool polls at once and keeps polling while it sees such a
        # run, so a run another replica claims and then abandons is still recovered. `_wakes`
        # counts wake-ups: one that lands during a look keeps the poll going.
        self._poll_armed = True
        self._wakes = 0
        self._host = os.uname().nodename[:30].replace("-", "_")
        self.owner = f"{self._host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = executor if executor is not None else LocalExecutor()

    def worker_pids(self) -> dict[str, int]:
        """Return the pid of the process running each run (for operators and tests)."""
        return {
            s.run_id: s.worker.pid
            for s in self._slots
            if s.run_id and s.worker is not None and s.alive and s.worker.pid is not None
        }

    @property
    def executor(self) -> Executor:
        """Return where this pool's engines run."""
        return self._executor

    def notify(self) -> None:
        """Wake the supervisor: a run was queued or cancelled (here or, on PostgreSQL, anywhere)."""
        self._claim_due = True
        self._poll_armed = True
        self._wakes += 1
        self._wake.set()

    def peak_rss_mb(self) -> dict[int, float]:
        """Return each live worker process's peak resident memory in MB (Linux /proc)."""
        peaks: dict[int, float] = {}
        for slot in self._slots:
            pid = slot.worker.pid if slot.worker is not None and slot.alive else None
            if pid is None:
                continue
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = int(line.split()[1]) / 1024.0
        return peaks

    async def start(self) -> None:
        """Recover runs orphaned by a dead service, start the workers, then supervise."""
        _OWNERS_HERE.add(self.owner)
        _POOLS_HERE.add(self)
        await self._executor.start()
        await self._recover_stale()
        await asyncio.to_thread(remove_stale_staging, self._results_root)
        # Start the processes now, so the first runs do not wait for them.
        await asyncio.to_thread(self._spawn_all)
        self._task = asyncio.create_task(self._supervise(), name="backtest-worker-pool")

    async def stop(self) -> None:
        """Stop supervising, give running runs back to the queue and end the processes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for slot in self._slots:
            if slot.run_id is not None:
                try:
                    await self._release(slot.run_id, "the service stopped", count_attempt=False)
                except Exception:  # the lease then expires and another start recovers it
                    logger.exception("could not give a run back to the queue")
                slot.run_id = None
            await asyncio.to_thread(self._end_process, slot, graceful=True)
        await self._executor.stop()
        _POOLS_HERE.discard(self)
        _OWNERS_HERE.discard(self.owner)

    async def _supervise(self) -> None:
        # With nothing running, nothing touches the database until a notification or the poll.
        last_cancel_check = last_lease = last_poll = time.monotonic()
        while True:
            busy = False
            try:
                await self._drain()
                await self._unload_idle_engines()
                # On the loop, as _dispatch spawns: a thread would outlive a cancelled supervisor.
                self._replace_dead()
                busy = any(slot.run_id is not None for slot in self._slots)
                now = time.monotonic()
                if busy and now - last_cancel_check >= CANCEL_CHECK_SECONDS:
                    last_cancel_check = now
                    await self._check_cancelled()
                    await self._check_timeouts()
                if busy and now - last_lease >= self._lease.total_seconds() / 3:
                    last_lease = now
                    await self._renew_lease()
                    await self._recover_stale()
                if self._poll_armed and now - last_poll >= self._poll_seconds:
                    last_poll = now
                    await self._recover_stale()
                    self._claim_due = True
                if self._claim_due:
                    await self._dispatch()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("worker pool supervisor error; retrying")
                await asyncio.sleep(1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), TICK_SECONDS if busy else IDLE_CHECK_SECONDS
                )
            self._wake.clear()

    # -- messages and process deaths

    async def _drain(self) -> None:
        await asyncio.to_thread(self._executor.refresh)
        for slot in self._slots:
            while slot.worker is not None and slot.run_id is not None:
                if slot.pending is None:
                    try:
                        if not slot.worker.poll():
                            break
                        slot.pending = slot.worker.recv()
                    except (EOFError, OSError):
                        break
                # Kept until handled: a database error retries it instead of losing a result.
                kind, run_id, payload = slot.pending
                await self._handle(slot, kind, run_id, payload)
                slot.pending = None
            await self._flush_progress(slot)
            if slot.worker is not None and not slot.worker.is_alive():
                await self._reap(slot)

    async def _handle(self, slot: _Slot, kind: str, run_id: str, payload: Any) -> None:
        if run_id != slot.run_id:
            return
        if kind == "progress":
            slot.progress = payload
            return
        if kind == "denials":
            slot.denials = payload
            return
        if kind == "done":
            stats: Stats = payload
            final = replace(slot.progress or RunProgress(), percent=100.0, eta_seconds=0.0)
            stored = await self._finish(
                run_id, RunState.SUCCEEDED, stats=stats, progress=final, denials=slot.denials
            )
            if stored:
                run_ended(RunState.SUCCEEDED, self._held(slot), final.events_per_second)
            # Cancelled while writing results: nobody will read them. (A run another replica
            # took over after a lost lease keeps its directory: it may be theirs.)
            elif (await self._queue.get(run_id)).state is RunState.CANCELLED:
                await asyncio.to_thread(storage.remove, storage.join(self._results_root, run_id))
        elif kind == "failed":
            if await self._finish(
                run_id, RunState.FAILED, error_message=str(payload), denials=slot.denials
            ):
                run_ended(RunState.FAILED, self._held(slot))
            logger.warning("backtest failed", extra={"run_id": run_id, "error": payload})
        self._free(slot)

    async def _reap(self, slot: _Slot) -> None:
        reason = f"{slot.worker.exit_reason()} during the run" if slot.worker is not None else ""
        run_id = slot.run_id
        self._forget_process(slot)
        if run_id is not None:
            if slot.cancel_deadline is None:
                state = await self._release(run_id, reason, count_attempt=True)
                if state is RunState.FAILED:
                    run_ended(state, self._held(slot))
                logger.warning("worker died", extra={"run_id": run_id, "outcome": str(state)})
            self._free(slot)

    async def _flush_progress(self, slot: _Slot) -> None:
        if slot.run_id is None or slot.progress is None:
            return
        now = time.monotonic()
        if now - slot.progress_written < PROGRESS_WRITE_SECONDS:
            return
        slot.progress_written = now
        await self._queue.report(run_id=slot.run_id, owner=self.owner, progress=slot.progress)

    # -- cancel, lease, recovery

    async def _check_cancelled(self) -> None:
        busy = [s.run_id for s in self._slots if s.run_id is not None]
        if not busy:
            return
        running = await self._queue.still_running(owner=self.owner, run_ids=busy)
        now = time.monotonic()
        for slot in self._slots:
            if slot.run_id is None or slot.run_id in running:
                continue
            if slot.cancel_deadline is None:
                slot.cancel_deadline = now + CANCEL_GRACE_SECONDS
                assert slot.worker is not None
                slot.worker.request_cancel()
                # Not RUNNING under us: cancelled, or taken over by another replica.
                if (await self._queue.get(slot.run_id)).state is RunState.CANCELLED:
                    run_ended(RunState.CANCELLED, self._held(slot))
            elif now >= slot.cancel_deadline:
                await asyncio.to_thread(self._end_process, slot, graceful=False)
                self._free(slot)

    async def _check_timeouts(self) -> None:
        if self._run_timeout is None:
            return
        now = time.monotonic()
        for slot in self._slots:
            if slot.run_id is None or now - slot.started < self._run_timeout:
                continue
            run_id = slot.run_id
            # A strategy stuck in a loop never reaches the next chunk: end the process.
            held = self._held(slot)
            await asyncio.to_thread(self._end_process, slot, graceful=False)
            self._free(slot)
            if await self._finish(
                run_id,
                RunState.FAILED,
                error_message=f"the run took longer than the run timeout ({self._run_timeout:g} s)",
            ):
                run_ended(RunState.FAILED, held)

    async def _renew_lease(self) -> None:
        busy = [s.run_id for s in self._slots if s.run_id is not None]
        await self._queue.renew(owner=self.owner, run_ids=busy)

    def _owner_is_dead(self, owner: str | None) -> bool:
        # Owners are "<host>-<pid>-<token>". On this host, an owner whose process is gone (or
        # whose pid is ours but is no pool of this process: an earlier life of this container)
        # is dead now, without waiting for its lease to expire.
        if owner is None or owner == self.owner:
            return False
        parts = owner.rsplit("-", 2)
        if len(parts) != 3 or parts[0] != self._host or not parts[1].isdigit():
            return False
        pid = int(parts[1])
        if pid == os.getpid():
            return owner not in _OWNERS_HERE
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    async def _recover_stale(self) -> None:
        wakes = self._wakes
        orphans, elsewhere = await self._queue.orphans(
            lease=self._lease, owner=self.owner, owner_is_dead=self._owner_is_dead
        )
        if not elsewhere and wakes == self._wakes:
            self._poll_armed = False
        for run_id in orphans:
            state = await self._queue.release(
                run_id=run_id,
                owner=None,
                reason="its service stopped renewing the run's lease (the service died)",
                max_attempts=self._max_attempts,
            )
            logger.warning("recovered orphaned run", extra={"run_id": run_id, "outcome": state})

    # -- dispatch

    async def _dispatch(self) -> None:
        while any(slot.run_id is None for slot in self._slots):
            wakes = self._wakes
            run = await self._queue.claim(owner=self.owner)
            if run is None:
                # A run queued while the claim looked (its wake-up came meanwhile) may be one the
                # look missed: it is claimed at the next tick, not when a worker frees or a poll.
                if wakes == self._wakes:
                    self._claim_due = False
                return
            run_id = run.id
            claimed = time.monotonic()
            try:
                job = await self._jobs(run)
            except Exception as error:
                if await self._finish(run_id, RunState.FAILED, error_message=error_message(error)):
                    run_ended(RunState.FAILED, time.monotonic() - claimed)
                continue
            slot = self._choose_slot(job.engine_key)
            if slot.worker is not None and slot.key not in (None, job.engine_key):
                # Another dataset's engine is loaded: one engine per process, so a fresh one.
                await asyncio.to_thread(self._end_process, slot, graceful=True)
            if not slot.alive:
                self._forget_process(slot)
                await asyncio.to_thread(self._spawn, slot)
            slot.key = job.engine_key
            slot.run_id = run_id
            slot.progress = None
            slot.progress_written = 0.0
            slot.cancel_deadline = None
            slot.started = time.monotonic()
            assert slot.worker is not None
            await asyncio.to_thread(slot.worker.send, job)

    def _choose_slot(self, key: str) -> _Slot:
        # Best: a worker with this data loaded; then a started worker without an engine yet;
        # then an empty slot; last, a worker holding other data (it is replaced).
        idle = [slot for slot in self._slots if slot.run_id is None]
        for wanted in (key, None):
            for slot in idle:
                if slot.alive and slot.key == wanted:
                    return slot
        for slot in idle:
            if not slot.alive:
                return slot
        return idle[0]

    def _spawn_all(self) -> None:
        for slot in self._slots:
            self._spawn(slot)

    def _replace_dead(self) -> None:
        # A worker that died or exited after a failed run is replaced now, not at the next run.
        for slot in self._slots:
            if slot.run_id is None and not slot.alive:
                self._forget_process(slot)
                self._spawn(slot)

    async def _unload_idle_engines(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if (
                slot.run_id is None
                and slot.key is not None
                and now - slot.freed >= self._idle_engine_seconds
            ):
                # Ended here; _replace_dead starts the fresh worker.
                await asyncio.to_thread(self._end_process, slot, graceful=True)

    def _spawn(self, slot: _Slot) -> None:
        slot.worker = self._executor.spawn(self._strategy_paths)
        slot.key = None

    def _end_process(self, slot: _Slot, *, graceful: bool) -> None:
        if slot.worker is not None:
            slot.worker.stop(graceful=graceful)
        self._forget_process(slot)

    @staticmethod
    def _forget_process(slot: _Slot) -> None:
        if slot.worker is not None:
            slot.worker.close()
        slot.worker = None
        slot.key = None

    @staticmethod
    def _held(slot: _Slot) -> float:
        return time.monotonic() - slot.started

    def _free(self, slot: _Slot) -> None:
        self._claim_due = True
        slot.run_id = None
        slot.freed = time.monotonic()
        slot.progress = None
        slot.denials = ()
        slot.cancel_deadline = None

    async def _finish(
        self,
        run_id: str,
        state: RunState,
        *,
        stats: Stats | None = None,
        progress: RunProgress | None = None,
        error_message: str = "",
        denials: tuple[Denial, ...] = (),
    ) -> bool:
        return await self._queue.finish(
            run_id=run_id,
            owner=self.owner,
            state=state,
            stats=stats,
            progress=progress,
            error_message=error_message,
            denials=denials,
        )

    async def _release(self, run_id: str, reason: str, *, count_attempt: bool) -> RunState | None:
        return await self._queue.release(
            run_id=run_id,
            owner=self.owner,
            reason=reason,
            max_attempts=self._max_attempts,
            count_attempt=count_attempt,
        )
