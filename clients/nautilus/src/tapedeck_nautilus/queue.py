"""The local durable queue: events waiting for the live service, in one SQLite file (WAL).

Handlers on the trading loop append (one autocommitted INSERT, tens of microseconds, no fsync:
`synchronous=NORMAL` keeps every committed row across a crash of the process, only a power
loss can take the last ones). The drainer thread reads from the head and deletes what the live
service stored. Everything in one process goes through one connection behind a lock, so a
writer never meets SQLite's busy handler (which sleeps a millisecond or more); the WAL is
checkpointed by the drainer on a connection of its own, never inside a handler's commit.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS parked (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    data BLOB NOT NULL,
    error TEXT NOT NULL,
    parked_ns INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One event for the live service: its id, and the event framed as an AppendEventsRequest entry."""

    event_id: str
    data: bytes


class EventQueue:
    """A FIFO of events on local disk, shared by every user of one file in the process."""

    _open: ClassVar[dict[Path, EventQueue]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._users = 0
        self._ready = threading.Event()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")  # see checkpoint()
        self._db.executescript(_SCHEMA)
        self._checkpointer: sqlite3.Connection | None = None

    @classmethod
    def shared(cls, path: str | Path) -> EventQueue:
        """Return the process's queue on this file, opening it on first use; release() when done."""
        resolved = Path(path).expanduser().resolve()
        with cls._open_lock:
            queue = cls._open.get(resolved)
            if queue is None:
                queue = cls._open[resolved] = cls(resolved)
            queue._users += 1
            return queue

    def release(self) -> None:
        """Stop using the queue; the last user closes the file (its rows stay on disk)."""
        with self._open_lock:
            self._users -= 1
            if self._users > 0:
                return
            del self._open[self.path]
        with self._lock:
            self._db.close()
            if self._checkpointer is not None:
                self._checkpointer.close()

    def put(self, event: QueuedEvent) -> None:
        """Append an event durably and wake the drainer."""
        with self._lock:
            self._db.execute(
                "INSERT INTO pending (event_id, data) VALUES (?, ?)", (event.event_id, event.data)
            )
        self._ready.set()

    def head(self, limit: int) -> list[tuple[int, QueuedEvent]]:
        """Return up to `limit` of the oldest events with their queue ids, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, data FROM pending ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(row[0], QueuedEvent(row[1], row[2])) for row in rows]

    def remove(self, ids: Sequence[int]) -> None:
        """Delete events the live service stored (a contiguous run of queue ids)."""
        if not ids:
            return
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))

    def park(self, queue_id: int, error: str) -> None:
        """Move an event the live service refuses aside, with why, so the queue moves on."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO parked (id, event_id, data, error, parked_ns) "
                    "SELECT id, event_id, data, ?, ? FROM pending WHERE id = ?",
                    (error, time.time_ns(), queue_id),
                )
                self._db.execute("DELETE FROM pending WHERE id = ?", (queue_id,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def size(self) -> int:
        """Return how many events wait."""
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM pending").fetchone()
        return int(count)

    def parked(self) -> list[tuple[QueuedEvent, str]]:
        """Return the events the live service refused, with its answer, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, data, error FROM parked ORDER BY id"
            ).fetchall()
        return [(QueuedEvent(row[0], row[1]), row[2]) for row in rows]

    def wait(self, timeout: float) -> None:
        """Wait until an event is appended or `timeout` seconds pass (the drainer's idle wait)."""
        if self._ready.wait(timeout):
            self._ready.clear()

    def wake(self) -> None:
        """End a wait() at once (a drainer told to stop)."""
        self._ready.set()

    def checkpoint(self) -> None:
        """Copy the WAL into the database file on the caller's own connection (no lock held).

        Automatic checkpoints would run inside whichever commit crosses the threshold, a
        handler's included, and cost fsyncs; a passive checkpoint here never blocks a writer.
        Called from one thread (the drainer's).
        """
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
