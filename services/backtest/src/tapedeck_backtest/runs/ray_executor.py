"""The Ray executor: each run is one Ray task, whose engine runs in a process of its own on a node.

The pool in this service stays the control plane (queue, leases, progress, cancel, recovery); Ray
only places the engine. A task (`num_cpus=1`: the CPU its engine uses) hands its job to an engine
process started exactly as the local executor starts one (`LocalWorker`, forked from a forkserver
with NautilusTrader imported, running `worker_main`), relays its progress and returns its outcome
(denials, then done, failed or cancelled). The Ray worker process that runs the task is reused by
Ray for later tasks, and it keeps what a local worker slot keeps: its warm forkserver, and the
engine process of its last run when that run completed, for its next run on the same data (the
engine reset between runs, as a local worker does). One engine per process, as NautilusTrader
requires: other data, a failed or cancelled run, or `idle_engine_seconds` without a run end the
process, and the next run gets a fresh one. Progress and the cancel flag go through one small
actor per pool, placed on this service's node and restarted by Ray wherever it can when lost
(`RunChannel`: a node's death must not cut the pool off the other runs). Ray never retries a task
(`max_retries=0`): a task whose process or node dies surfaces as an error on its result, and the
pool re-queues the run or fails it with that reason, counting attempts like a dead local worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import tempfile
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tapedeck_backtest import storage
from tapedeck_backtest.runs.domain import RunProgress
from tapedeck_backtest.runs.engine import RunJob
from tapedeck_backtest.runs.executors import LocalExecutor, LocalWorker, Message, Worker

logger = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 0.2
RELAY_WAIT_SECONDS = 0.05
WARM_TIMEOUT_SECONDS = 120.0


class RunChannel:
    """Per pool: the latest progress of each run, where each runs, and which were cancelled."""

    def __init__(self) -> None:
        self._updates: list[Message] = []
        self._cancelled: set[str] = set()

    def started(self, run_id: str, pid: int, node_id: str) -> None:
        """Record the process and node a run's task started in."""
        self._updates.append(("started", run_id, (pid, node_id)))

    def progress(self, run_id: str, progress: RunProgress) -> None:
        """Record a run's progress."""
        self._updates.append(("progress", run_id, progress))

    def take(self) -> list[Message]:
        """Return and forget the updates since the last call."""
        updates, self._updates = self._updates, []
        return updates

    def cancel(self, run_id: str) -> None:
        """Mark a run cancelled (its task sees it at its next check)."""
        self._cancelled.add(run_id)

    def forget(self, run_id: str) -> None:
        """Drop what is held about an ended run."""
        self._cancelled.discard(run_id)

    def is_cancelled(self, run_id: str) -> bool:
        """Tell whether the run was cancelled."""
        return run_id in self._cancelled


class _CancelFlag:
    """The run's cancel flag, asked of the channel actor at most every CANCEL_POLL_SECONDS.

    Never waited for: while the channel restarts (its process or node lost) the relay goes on and
    the answer comes later; a question lost with the old actor is asked again.
    """

    def __init__(self, channel: Any, run_id: str) -> None:
        self._channel = channel
        self._run_id = run_id
        self._asked = 0.0
        self._answer: Any = None
        self._set = False

    def is_set(self) -> bool:
        if self._set:
            return True
        if self._answer is not None:
            answered, answer = _answer(self._answer)
            if not answered:
                return False
            self._set, self._answer = bool(answer), None
        now = time.monotonic()
        if not self._set and now - self._asked >= CANCEL_POLL_SECONDS:
            self._asked = now
            self._answer = self._channel.is_cancelled.remote(self._run_id)
        return self._set


def _answer(ref: Any) -> tuple[bool, Any]:
    """Tell whether a channel call's answer is in, without waiting, and give it.

    The answer is None when the call was lost with the actor's process: the caller asks again.
    """
    ready, _ = ray.wait([ref], timeout=0)
    if not ready:
        return False, None
    try:
        return True, ray.get(ref)
    except ray.exceptions.RayError:
        return True, None


class EngineProcessDied(RuntimeError):
    """The run's engine process ended without reporting an outcome."""


class EngineProcesses:
    """This Ray worker's engine process between tasks: kept for a next run on the same data.

    What a local worker slot does, in the Ray worker that Ray reuses for later tasks: a run whose
    engine key matches the kept process's runs in it (its engine was reset after the last run);
    any other run ends it and gets a fresh process. A process with an engine is ended after
    `idle_seconds` without a run, freeing its memory (a thread of this Ray worker, which is idle
    then). The forkserver every process is forked from stays warm for the Ray worker's life.
    """

    def __init__(self) -> None:
        self._executor = LocalExecutor()
        self._lock = threading.Lock()
        self._kept: LocalWorker | None = None
        self._paths: tuple[str, ...] = ()
        self._key: str | None = None
        self._timer: threading.Timer | None = None

    def take(self, key: str | None, strategy_paths: tuple[str, ...]) -> LocalWorker:
        """Return the kept process if it can run a job with this engine key, else a fresh one."""
        with self._lock:
            self._stop_timer()
            worker, self._kept = self._kept, None
            reusable = (
                worker is not None
                and worker.is_alive()
                and self._paths == strategy_paths
                and self._key in (None, key)
            )
            if worker is not None and not reusable:
                _end(worker)
                worker = None
            if worker is None:
                worker = self._executor.spawn(strategy_paths)
            self._paths, self._key = strategy_paths, key
            return worker

    def keep(self, worker: LocalWorker, idle_seconds: float | None) -> None:
        """Keep a process whose last run completed; end it after `idle_seconds` without a run."""
        with self._lock:
            self._kept = worker
            if idle_seconds is not None:
                self._timer = threading.Timer(idle_seconds, self._unload, args=(worker,))
                self._timer.daemon = True
                self._timer.start()

    def _unload(self, worker: LocalWorker) -> None:
        with self._lock:
            if self._kept is worker:
                self._kept = None
                _end(worker)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _end(worker: LocalWorker) -> None:
    # Killed, not asked: an idle process has nothing to finish (a run's results are written
    # before its outcome is sent), and a failed or cancelled one must not hold the next run up.
    worker.stop(graceful=False)
    worker.close()


@functools.cache
def engine_processes() -> EngineProcesses:
    """Return this Ray worker process's engine processes (one, kept while Ray reuses the worker)."""
    return EngineProcesses()


def warm_task(strategy_paths: tuple[str, ...]) -> None:
    """Start this Ray worker's forkserver and its first engine process (no engine loaded yet)."""
    processes = engine_processes()
    processes.keep(processes.take(None, strategy_paths), idle_seconds=None)


def run_task(
    job: RunJob, strategy_paths: tuple[str, ...], channel: Any, idle_engine_seconds: float
) -> list[Message]:
    """Run one job in this Ray worker's engine process and return its outcome messages."""
    job = _with_node_catalog(job)
    processes = engine_processes()
    worker = processes.take(job.engine_key, strategy_paths)
    completed = False
    try:
        node_id = ray.get_runtime_context().get_node_id()
        channel.started.remote(job.run_id, worker.pid, node_id)
        worker.send(job)
        outcome = _relay(worker, job.run_id, channel)
        completed = outcome[-1][0] == "done"
        return outcome
    finally:
        if completed:
            processes.keep(worker, idle_engine_seconds)
        else:
            # Failed (its engine may be half way through a run), cancelled (`ray.cancel` may have
            # interrupted this task mid-relay) or lost: the process never gets another run.
            _end(worker)


def _with_node_catalog(job: RunJob) -> RunJob:
    # A sweep's runs all read one window: a node downloads a bucket's catalog once and its later
    # runs read it from local disk. Only datasets a worker would keep in memory (the same
    # threshold): a large one streams its window from the bucket instead of filling the disk.
    source = job.source
    if storage.local_path(source.catalog_path) is not None or source.row_count > job.in_memory_rows:
        return job
    root = Path(
        os.environ.get("BACKTEST_CACHE_DIR") or Path(tempfile.gettempdir(), "tapedeck-cache")
    )
    local = storage.local_copy(source.catalog_path, root / "catalogs")
    return replace(job, source=replace(source, catalog_path=str(local)))


def _relay(worker: LocalWorker, run_id: str, channel: Any) -> list[Message]:
    cancel = _CancelFlag(channel, run_id)
    # The last progress goes with the outcome too: the channel's copy may be taken after it.
    outcome: list[Message] = []
    latest: list[Message] = []
    while True:
        if cancel.is_set():
            worker.request_cancel()
        try:
            if not worker.poll(RELAY_WAIT_SECONDS):
                if worker.is_alive() or worker.poll():
                    continue
                raise EngineProcessDied(worker.exit_reason())
            message = worker.recv()
        except (EOFError, OSError) as error:
            raise EngineProcessDied(worker.exit_reason()) from error
        if message[0] == "progress":
            channel.progress.remote(run_id, message[2])  # latest wins: never waited for
            latest = [message]
            continue
        outcome.append(message)
        if message[0] != "denials":
            return latest + outcome


class RayWorker:
    """A slot's worker on the cluster: idle until given a job, then one task, then ended."""

    def __init__(self, executor: RayExecutor, strategy_paths: tuple[str, ...]) -> None:
        self._executor = executor
        self._strategy_paths = strategy_paths
        self.run_id: str | None = None
        self.ref: Any = None
        self.node_id: str | None = None
        self._pid: int | None = None
        self._inbox: deque[Message] = deque()
        self._ended: str | None = None  # why the task ended, once its result is in

    @property
    def pid(self) -> int | None:
        """Return the task's process id (known once the task started)."""
        return self._pid

    def send(self, job: RunJob) -> None:
        """Submit the job as a task."""
        self.run_id = job.run_id
        self.ref = self._executor.submit(job, self._strategy_paths)

    def poll(self) -> bool:
        """Tell whether a message was collected (by the executor's `refresh`)."""
        return bool(self._inbox)

    def recv(self) -> Message:
        """Return the next collected message."""
        return self._inbox.popleft()

    def is_alive(self) -> bool:
        """Alive until the task's result is in (its outcome is then in the inbox already)."""
        return self._ended is None

    def exit_reason(self) -> str:
        """Say how the task ended (a Ray error names the lost worker or node)."""
        return self._ended or "the Ray task is running"

    def request_cancel(self) -> None:
        """Set the run's flag in the channel actor."""
        if self.run_id is not None:
            self._executor.channel.cancel.remote(self.run_id)

    def stop(self, *, graceful: bool) -> None:
        """Cancel the task: it kills its engine process (an idle worker has none)."""
        if self.ref is not None and self._ended is None:
            # Not force: that would kill the warm Ray worker too; the task's relay is never stuck
            # (only its engine process can be), and it kills that process as it ends.
            with contextlib.suppress(Exception):
                ray.cancel(self.ref)

    def close(self) -> None:
        """Stop tracking this worker."""
        self._executor.forget(self)

    def absorb(self, message: Message) -> None:
        """Take an update from the channel (the process, node and progress of the run)."""
        kind, _, payload = message
        if kind == "started":
            self._pid, self.node_id = payload
        else:
            self._inbox.append(message)

    def finish(self) -> None:
        """Collect the finished task's outcome, or the error that ended it."""
        try:
            outcome: list[Message] = ray.get(self.ref)
        except ray.exceptions.RayError as error:
            self._ended = _describe(error)
        else:
            self._inbox.extend(outcome)
            self._ended = "the Ray task ended"


def _describe(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = lines[0] if lines else ""
    return f"the Ray task failed ({type(error).__name__}: {detail})"[:500]


class RayExecutor:
    """Runs each job as a Ray task on the cluster at `address` (or a local Ray it starts)."""

    def __init__(
        self,
        *,
        address: str | None,
        warm_workers: int,
        strategy_paths: tuple[str, ...],
        idle_engine_seconds: float,
    ) -> None:
        self._address = address
        self._warm_workers = warm_workers
        self._strategy_paths = strategy_paths
        self._idle_engine_seconds = idle_engine_seconds
        self._owns_ray = False
        self._workers: list[RayWorker] = []
        self.channel: Any = None
        self._take: Any = None  # the channel's updates, asked for and not yet taken
        self._task: Any = None

    async def start(self) -> None:
        """Connect to the cluster (start a local Ray when no address is set) and make the channel."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        if not ray.is_initialized():
            address = self._address or os.environ.get("RAY_ADDRESS")
            if address:
                try:
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, RuntimeError) as error:
                    raise RuntimeError(
                        f"cannot join the Ray cluster at {address} ({error}); a Ray driver runs on"
                        f" a node of its cluster: `ray start --address={address} --num-cpus=0`"
                        " on this host first (the image's entrypoint does)"
                    ) from error
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
            self._owns_ray = True
        here = ray.get_runtime_context().get_node_id()
        # Restarted by Ray when its process or node is lost (on another node if need be), its
        # handle and the calls in flight carrying over: what it held is only the latest progress
        # (sent again 0.2 s later), where runs started, and cancel flags (`ray.cancel` follows).
        self.channel = (
            ray.remote(RunChannel)
            .options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True),
                max_restarts=-1,
                max_task_retries=-1,
            )
            .remote()
        )
        self._task = ray.remote(num_cpus=1, max_retries=0)(run_task)
        # As the local pool starts its processes before the first run: warm as many Ray workers
        # as runs this pool keeps in flight, spread over the nodes. Waited for, but not for ever:
        # a cluster without free CPUs now (scaling up, busy with others) must not stop the start.
        warm = ray.remote(num_cpus=1, max_retries=0, scheduling_strategy="SPREAD")(warm_task)
        refs = [warm.remote(self._strategy_paths) for _ in range(self._warm_workers)]
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=WARM_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        """Drop the channel; disconnect from Ray if this executor connected."""
        if self.channel is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.channel)
            self.channel = self._take = None
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

    def spawn(self, strategy_paths: tuple[str, ...]) -> Worker:
        """Return an idle worker: its task starts with its job."""
        worker = RayWorker(self, strategy_paths)
        self._workers.append(worker)
        return worker

    def submit(self, job: RunJob, strategy_paths: tuple[str, ...]) -> Any:
        """Submit one job as a task and return its result's reference."""
        return self._task.remote(job, strategy_paths, self.channel, self._idle_engine_seconds)

    def forget(self, worker: RayWorker) -> None:
        """Stop tracking an ended worker."""
        with contextlib.suppress(ValueError):
            self._workers.remove(worker)
        if worker.run_id is not None and self.channel is not None:
            self.channel.forget.remote(worker.run_id)

    def _taken(self) -> list[Message]:
        """Return the channel's updates asked for at the last call, and ask again.

        Never waited for: while the channel restarts, the pool goes on renewing leases, seeing
        cancels and collecting outcomes, and the progress comes when the channel is back.
        """
        updates: list[Message] = []
        if self._take is not None:
            answered, answer = _answer(self._take)
            if not answered:
                return updates
            updates = answer or updates
        self._take = self.channel.take.remote()
        return updates

    def running_nodes(self) -> dict[str, str]:
        """Return the node id each running run's task is on (for operators and tests)."""
        return {
            w.run_id: w.node_id
            for w in self._workers
            if w.run_id is not None and w.node_id is not None and w.is_alive()
        }

    def refresh(self) -> None:
        """Collect progress from the channel, then the outcomes of the tasks that ended."""
        running = {w.run_id: w for w in self._workers if w.ref is not None and w.is_alive()}
        if not running:
            return
        for message in self._taken():
            worker = running.get(message[1])
            if worker is not None:
                worker.absorb(message)
        refs = [w.ref for w in running.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = set(ready)
        for worker in running.values():
            if worker.ref in done:
                worker.finish()
