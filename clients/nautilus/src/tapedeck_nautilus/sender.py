"""The drainer: a background thread sending the queue's head to `LiveService/AppendEvents`.

AppendEvents is idempotent on event_id, so a batch is deleted from the queue only after the
live service stored it, and a batch sent twice (a crash in between, a lost reply) is counted as
duplicates there, never stored twice. While the service is unreachable the thread waits with
exponential backoff and jitter; the trading loop never waits for it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import grpc

from tapedeck_nautilus.contract import live_pb2
from tapedeck_nautilus.link import TapedeckLink
from tapedeck_nautilus.queue import EventQueue, QueuedEvent

APPEND_EVENTS = "/tapedeck.live.v1.LiveService/AppendEvents"
# A resend cannot fix these: the batch holds an event the service refuses.
_REFUSED = frozenset({grpc.StatusCode.INVALID_ARGUMENT})
# Checkpoint the queue's WAL at most this often (seconds).
_CHECKPOINT_SECONDS = 2.0


class Log(Protocol):
    """What the drainer logs through (NautilusTrader's component logger fits)."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


def append_request(events: Sequence[QueuedEvent]) -> bytes:
    """Return an AppendEventsRequest of queued events (each already framed as an entry)."""
    return b"".join(event.data for event in events)


class Refused(Exception):
    """The live service refused the batch as invalid; resending it cannot help."""


class LiveEvents:
    """AppendEvents over one channel, with the bearer token and a deadline per call."""

    def __init__(self, link: TapedeckLink, *, timeout_seconds: float) -> None:
        self.address = link.address
        self._channel = link.channel()
        # The request is framed from bytes already serialized: no serializer.
        self._append: grpc.UnaryUnaryMultiCallable[bytes, live_pb2.AppendEventsResponse] = (
            self._channel.unary_unary(
                APPEND_EVENTS, response_deserializer=live_pb2.AppendEventsResponse.FromString
            )
        )
        self._metadata = link.metadata()
        self._timeout = timeout_seconds

    def append(self, events: Sequence[QueuedEvent]) -> live_pb2.AppendEventsResponse:
        """Store the events; Refused when the service calls the batch invalid, RpcError otherwise."""
        try:
            reply: live_pb2.AppendEventsResponse = self._append(
                append_request(events), timeout=self._timeout, metadata=self._metadata
            )
            return reply
        except grpc.RpcError as error:
            if error.code() in _REFUSED:
                raise Refused(error.details()) from None
            raise

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class Drainer:
    """Sends the queue's events in order, in batches, until stopped."""

    def __init__(
        self,
        queue: EventQueue,
        client: LiveEvents,
        *,
        batch_size: int,
        retry_initial_seconds: float,
        retry_max_seconds: float,
        linger_seconds: float = 0.1,
        log: Log,
    ) -> None:
        self._queue = queue
        self._client = client
        self._batch_size = batch_size
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._linger = linger_seconds
        self._log = log
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tapedeck-drainer", daemon=True)
        self.sent = 0
        """Events the live service stored or already had, since start."""

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, *, flush_timeout: float) -> int:
        """Give the queue up to `flush_timeout` seconds to empty, stop, return what still waits."""
        deadline = time.monotonic() + flush_timeout
        while time.monotonic() < deadline and self._queue.size() and self._thread.is_alive():
            self._stopping.wait(0.02)
        self._stopping.set()
        self._queue.wake()
        self._thread.join()
        return self._queue.size()

    def _run(self) -> None:
        delay = self._retry_initial
        checkpointed = time.monotonic()
        failing = False
        while not self._stopping.is_set():
            batch = self._queue.head(self._batch_size)
            if not batch:
                self._queue.wait(0.5)
                continue
            try:
                self._send(batch)
            except grpc.RpcError as error:
                if not failing:
                    self._log.warning(
                        f"Tapedeck at {self._client.address} did not take "
                        f"{len(batch)} events ({error.code().name}); they stay queued, "
                        "retrying with backoff"
                    )
                failing = True
                # Full jitter: replicas of a node that lost Tapedeck together do not retry together.
                self._stopping.wait(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self._retry_max)
                continue
            if failing:
                self._log.info(f"Tapedeck at {self._client.address} is back; sending the queue")
                failing = False
            if len(batch) < self._batch_size:
                # Let events gather: one call per linger instead of one per event keeps this
                # thread's turns at the GIL (and the trading loop's waits for it) few.
                self._stopping.wait(self._linger)
            delay = self._retry_initial
            if time.monotonic() - checkpointed > _CHECKPOINT_SECONDS:
                self._queue.checkpoint()
                checkpointed = time.monotonic()

    def _send(self, batch: list[tuple[int, QueuedEvent]]) -> None:
        try:
            self._client.append([event for _, event in batch])
        except Refused as refused:
            if len(batch) == 1:
                queue_id, event = batch[0]
                self._log.error(
                    f"Tapedeck refused event {event.event_id}: {refused}; parked in {self._queue.path}"
                )
                self._queue.park(queue_id, str(refused))
                return
            # One bad event refuses its whole batch: halve until it is alone, send the rest.
            middle = len(batch) // 2
            self._send(batch[:middle])
            self._send(batch[middle:])
            return
        self._queue.remove([queue_id for queue_id, _ in batch])
        self.sent += len(batch)
