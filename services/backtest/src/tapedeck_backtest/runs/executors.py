"""Where a worker pool's engines run: the executor interface and the local one (processes here).

The pool (`workers.py`) owns the queue, leases, progress, cancel and recovery; an executor only
starts workers and carries jobs to them and messages back. A worker speaks the worker protocol of
`worker_main`: it receives a `RunJob` (or None: stop), and sends `(kind, run_id, payload)` tuples
("progress", "denials", "done", "failed", "cancelled"). `BACKTEST_EXECUTOR=local` runs workers as
processes of this service (`LocalExecutor`); `ray` runs each job as a Ray task on a cluster
(`ray_executor.py`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Any, Protocol

from tapedeck_backtest import storage
from tapedeck_backtest.runs import publishing
from tapedeck_backtest.runs.domain import RunProgress
from tapedeck_backtest.runs.engine import (
    CancelFlag,
    LoadedEngine,
    RunCancelled,
    RunJob,
    error_message,
    execute,
    load_engine,
    strategy_builder,
)

# Everything a worker imports, loaded once in the forkserver so that every worker shares its
# pages: this module (its target, `worker_main`, and what that imports: the engine, the live
# events' protobuf and gRPC, SQLAlchemy; 1.6 s per run for a Ray task's process otherwise) and
# empyrical, which the engine's statistics import lazily. A module left out is imported again in
# each worker.
FORKSERVER_PRELOAD = ["tapedeck_backtest.runs.executors", "empyrical"]

Message = tuple[str, str, Any]
"""(kind, run_id, payload): what a worker sends back about its run."""


class JobChannel(Protocol):
    """The worker's end of its link to the pool: jobs in, messages out."""

    def recv(self) -> RunJob | None:
        """Return the next job, or None: stop. EOFError when the pool is gone."""
        ...

    def send(self, message: Message) -> None:
        """Send a message to the pool."""
        ...


def worker_main(
    conn: JobChannel,
    cancel: CancelFlag,
    strategy_paths: tuple[str, ...],
    storage_env: dict[str, str] | None = None,
) -> None:
    """Serve jobs from the channel until told to stop; exit after an engine error.

    `storage_env` is the service's object-store environment when it started the worker: a
    forkserver's children inherit the forkserver's environment, which may be older.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when workers stop
    if storage_env is not None:
        for name in storage.ENVIRONMENT:
            os.environ.pop(name, None)
        os.environ.update(storage_env)
    build_strategy = strategy_builder(strategy_paths)
    loaded: LoadedEngine | None = None
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        run_id = job.run_id

        def report(progress: RunProgress, run_id: str = run_id) -> None:
            conn.send(("progress", run_id, progress))

        try:
            if loaded is None or loaded.key != job.engine_key:
                if loaded is not None:
                    return  # one engine per process: the pool starts a fresh one
                loaded = load_engine(job)
            stats = execute(
                loaded, job, build_strategy=build_strategy, report=report, cancel=cancel
            )
        except RunCancelled:
            conn.send(("cancelled", run_id, None))
        except Exception as error:
            _send_denials(conn, run_id, loaded)
            conn.send(("failed", run_id, error_message(error)))
            return  # the engine may be half way through a run: never reuse it
        else:
            _send_denials(conn, run_id, loaded)
            conn.send(("done", run_id, stats))
        try:
            if loaded is not None:
                loaded.reset()
        except Exception:
            return


def _send_denials(conn: JobChannel, run_id: str, loaded: LoadedEngine | None) -> None:
    # Before the run's outcome, so the pool publishes them with it in one transaction.
    denials = publishing.denials_after_run(loaded)
    if denials:
        conn.send(("denials", run_id, denials))


class Worker(Protocol):
    """One process that runs jobs, one at a time."""

    @property
    def pid(self) -> int | None:
        """Return the process id running the current job, when known."""
        ...

    def send(self, job: RunJob) -> None:
        """Hand the worker a job."""
        ...

    def poll(self) -> bool:
        """Tell whether a message is waiting."""
        ...

    def recv(self) -> Message:
        """Return the next message (after `poll` returned True); EOFError/OSError when gone."""
        ...

    def is_alive(self) -> bool:
        """Tell whether the worker can still report (its process has not ended)."""
        ...

    def exit_reason(self) -> str:
        """Describe how the process ended (for the run's error message)."""
        ...

    def request_cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        ...

    def stop(self, *, graceful: bool) -> None:
        """End the process: ask it to stop when graceful, then kill it."""
        ...

    def close(self) -> None:
        """Release what is held for an ended process."""
        ...


class Executor(Protocol):
    """Starts workers for a pool."""

    async def start(self) -> None:
        """Get ready to start workers (connect to a cluster)."""
        ...

    async def stop(self) -> None:
        """Release what `start` took."""
        ...

    def refresh(self) -> None:
        """Collect the messages waiting for this executor's workers (blocking; in a thread)."""
        ...

    def spawn(self, strategy_paths: tuple[str, ...]) -> Worker:
        """Start a worker (blocking; in a thread)."""
        ...


class LocalWorker:
    """A worker process of this service, fed over a pipe, with a shared cancel flag."""

    def __init__(self, context: Any, strategy_paths: tuple[str, ...]) -> None:
        parent, child = context.Pipe()
        self._cancel = context.Event()
        self._process = context.Process(
            target=worker_main,
            args=(child, self._cancel, strategy_paths, storage.environment()),
            name="tapedeck-backtest-worker",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._conn: Connection = parent

    @property
    def pid(self) -> int | None:
        """Return the process id."""
        pid: int | None = self._process.pid
        return pid

    def send(self, job: RunJob) -> None:
        """Clear the cancel flag and hand the job over the pipe."""
        self._cancel.clear()
        self._conn.send(job)

    def poll(self, timeout: float = 0.0) -> bool:
        """Tell whether the pipe holds a message, waiting up to `timeout` seconds for one."""
        return bool(self._conn.poll(timeout))

    def recv(self) -> Message:
        """Return the next message from the pipe."""
        message: Message = self._conn.recv()
        return message

    def is_alive(self) -> bool:
        """Tell whether the process runs."""
        return bool(self._process.is_alive())

    def exit_reason(self) -> str:
        """Name the process and its exit code."""
        return f"worker process {self._process.pid} exited with code {self._process.exitcode}"

    def request_cancel(self) -> None:
        """Set the flag the engine checks between chunks."""
        self._cancel.set()

    def stop(self, *, graceful: bool) -> None:
        """Send the stop message (graceful), then kill the process if it still runs."""
        if graceful:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)
            self._process.join(1.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(2.0)

    def close(self) -> None:
        """Close the pipe and the ended process's handle."""
        self._conn.close()
        if not self._process.is_alive():
            self._process.close()


class LocalExecutor:
    """Worker processes on this machine, started through a forkserver with the engine preloaded."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(FORKSERVER_PRELOAD)

    async def start(self) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to release."""

    def refresh(self) -> None:
        """Messages wait in each worker's pipe."""

    def spawn(self, strategy_paths: tuple[str, ...]) -> LocalWorker:
        """Start a worker process."""
        return LocalWorker(self._context, strategy_paths)
