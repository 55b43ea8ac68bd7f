"""The Ray executor: each run is one Ray task, owning one fresh engine process on a cluster node.

The pool in this service stays the control plane (queue, leases, progress, cancel, recovery); Ray
only places the engine. A task (`num_cpus=1`: the CPU its engine uses) starts one fresh process for
its run, exactly as the local executor starts one (`LocalWorker`, forked from a forkserver with
NautilusTrader imported), hands it the job, relays its progress and returns its outcome (denials,
then done, failed or cancelled), then kills it: one engine per process, as NautilusTrader requires,
and a fresh process per run. The Ray worker process that runs the task is reused by Ray for later
tasks, and with it the node's warm forkserver: a run pays a fork and its data window, not a Python
start and NautilusTrader's import (seconds each). Progress and the cancel flag go through one small
actor per pool, pinned to this service's node (`RunChannel`). Ray never retries a task
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
    """The run's cancel flag, read from the channel actor at most every CANCEL_POLL_SECONDS."""

    def __init__(self, channel: Any, run_id: str) -> None:
        self._channel = channel
        self._run_id = run_id
        self._checked = 0.0
        self._set = False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now - self._checked >= CANCEL_POLL_SECONDS:
            self._checked = now
            self._set = bool(ray.get(self._channel.is_cancelled.remote(self._run_id)))
        return self._set


class EngineProcessDied(RuntimeError):
    """The run's engine process ended without reporting an outcome."""


@functools.cache
def _engine_processes() -> LocalExecutor:
    # One per Ray worker process, kept while Ray reuses it: its forkserver stays warm.
    return LocalExecutor()


def warm_task() -> None:
    """Start this Ray worker's forkserver and wait until it has NautilusTrader imported."""
    worker = _engine_processes().spawn(())
    worker.stop(graceful=True)
    worker.close()


def run_task(job: RunJob, strategy_paths: tuple[str, ...], channel: Any) -> list[Message]:
    """Run one job in a fresh engine process and return its outcome messages."""
    job = _with_node_catalog(job)
    worker = _engine_processes().spawn(strategy_paths)
    try:
        node_id = ray.get_runtime_context().get_node_id()
        channel.started.remote(job.run_id, worker.pid, node_id)
        worker.send(job)
        return _relay(worker, job.run_id, channel)
    finally:
        # The outcome is in (results are written before it is sent), or the task was cancelled:
        # the process is done either way, and is never given a second run.
        worker.stop(graceful=False)
        worker.close()


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
    outcome: list[Message] = []
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
            continue
        outcome.append(message)
        if message[0] != "denials":
            return outcome


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

    def __init__(self, *, address: str | None, warm_workers: int = 0) -> None:
        self._address = address
        self._warm_workers = warm_workers
        self._owns_ray = False
        self._workers: list[RayWorker] = []
        self.channel: Any = None
        self._task: Any = None

    async def start(self) -> None:
        """Connect to the cluster (start a local Ray when no address is set) and make the channel."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        if not ray.is_initialized():
            address = self._address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
            self._owns_ray = True
        here = ray.get_runtime_context().get_node_id()
        self.channel = (
            ray.remote(RunChannel)
            .options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=True),
            )
            .remote()
        )
        self._task = ray.remote(num_cpus=1, max_retries=0)(run_task)
        # As the local pool starts its processes before the first run: warm as many Ray workers
        # as runs this pool keeps in flight, spread over the nodes. Waited for, but not for ever:
        # a cluster without free CPUs now (scaling up, busy with others) must not stop the start.
        warm = ray.remote(num_cpus=1, max_retries=0, scheduling_strategy="SPREAD")(warm_task)
        refs = [warm.remote() for _ in range(self._warm_workers)]
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=WARM_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        """Drop the channel; disconnect from Ray if this executor connected."""
        if self.channel is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.channel)
            self.channel = None
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
        return self._task.remote(job, strategy_paths, self.channel)

    def forget(self, worker: RayWorker) -> None:
        """Stop tracking an ended worker."""
        with contextlib.suppress(ValueError):
            self._workers.remove(worker)
        if worker.run_id is not None and self.channel is not None:
            self.channel.forget.remote(worker.run_id)

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
        for message in ray.get(self.channel.take.remote()):
            worker = running.get(message[1])
            if worker is not None:
                worker.absorb(message)
        refs = [w.ref for w in running.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = set(ready)
        for worker in running.values():
            if worker.ref in done:
                worker.finish()
