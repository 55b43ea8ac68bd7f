"""The Stack page's numbers: the front service reads each service's `/metrics` every few seconds
and turns the difference between the oldest and newest reads of a sliding window into rates, a
p99 and an error ratio, as Prometheus' rate() would, so the browser needs no Prometheus.

It reads only while someone asks: the first GetStackStatus starts the reads (its reply has the
gauges; rates follow from the second read on) and they stop once nobody asked for a whole window,
so a stack nobody looks at spends nothing on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client.parser import text_string_to_metric_families

from tapedeck.stack.v1 import stack_pb2, stack_pb2_grpc

logger = logging.getLogger(__name__)

# Codes that say the server failed, not that the caller asked for something wrong.
SERVER_ERRORS = frozenset({"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS"})
_DURATION = "tapedeck_rpc_duration_seconds"


@dataclass(frozen=True)
class Reading:
    """What one scrape of a service said: calls by code, the duration buckets, the gauges."""

    at: float
    calls: Mapping[str, float]  # by status code, summed over methods
    buckets: Mapping[float, float]  # cumulative counts by upper bound, summed over methods
    gauges: Mapping[str, float]  # domain gauges summed over labels
    subscribers: float


def parse(text: str, *, at: float) -> Reading:
    """Read the numbers the Stack page needs from a Prometheus text exposition."""
    calls: dict[str, float] = {}
    buckets: dict[float, float] = {}
    gauges: dict[str, float] = {}
    subscribers = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == f"{_DURATION}_count":
                calls[labels["code"]] = calls.get(labels["code"], 0.0) + value
            elif name == f"{_DURATION}_bucket":
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + value
            elif name == "tapedeck_rpc_open_streams" and labels.get("method") == "SubscribeEvents":
                subscribers += value
            elif name == "tapedeck_runs" and labels.get("state") == "QUEUED":
                gauges["run_queue_depth"] = gauges.get("run_queue_depth", 0.0) + value
            elif name == "tapedeck_outbox_oldest_event_age_seconds":
                gauges["outbox_age"] = max(gauges.get("outbox_age", 0.0), value)
    return Reading(at=at, calls=calls, buckets=buckets, gauges=gauges, subscribers=subscribers)


def quantile(q: float, before: Mapping[float, float], after: Mapping[float, float]) -> float:
    """Return the q-quantile of the calls between two readings, as Prometheus'
    histogram_quantile does: linear within the bucket that holds it."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return 0.0
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is the best answer
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


@dataclass
class ServiceTraffic:
    """One service's readings over the window and what went wrong reading it, if anything."""

    window: float
    readings: list[Reading] = field(default_factory=list)
    error: str = ""

    def add(self, reading: Reading) -> None:
        """Keep the reading; drop those older than the window, keeping one to compare with."""
        self.readings.append(reading)
        while len(self.readings) > 2 and reading.at - self.readings[1].at >= self.window:
            self.readings.pop(0)
        self.error = ""

    def status(self, name: str, *, serving: bool) -> stack_pb2.ServiceStatus:
        """Return the service's status between its oldest and latest readings in the window."""
        status = stack_pb2.ServiceStatus(service=name, serving=serving, metrics_error=self.error)
        if len(self.readings) < 2:
            return status
        before, after = self.readings[0], self.readings[-1]
        seconds = after.at - before.at
        delta = {code: n - before.calls.get(code, 0.0) for code, n in after.calls.items()}
        total = sum(delta.values())
        if seconds > 0:
            status.request_rate = total / seconds
        if total > 0:
            errors = sum(n for code, n in delta.items() if code in SERVER_ERRORS)
            status.error_ratio = errors / total
            status.p99_latency_seconds = quantile(0.99, before.buckets, after.buckets)
        return status


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: bytes = response.read()
    return body.decode()


class StackStatus(stack_pb2_grpc.StackServiceServicer):
    """Serve GetStackStatus from the services' metrics, read in the background."""

    def __init__(
        self,
        *,
        metrics: Mapping[str, str],
        serving: Callable[[str], bool],
        interval: float,
        window: float,
    ) -> None:
        self._urls = {name: f"http://{address}/metrics" for name, address in metrics.items()}
        self._serving = serving
        self._interval = interval
        self._window = window
        self._traffic = {name: ServiceTraffic(window=window) for name in metrics}
        self._read_time = 0.0
        self._asked = 0.0
        self._first_read = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def read_once(self) -> None:
        """Read every service's metrics once."""
        for name, url in self._urls.items():
            try:
                text = await asyncio.to_thread(_fetch, url)
            except OSError as error:
                self._traffic[name].error = f"cannot read {url}: {error}"
                continue
            self._traffic[name].add(parse(text, at=time.monotonic()))
        self._read_time = time.time()

    async def _run(self) -> None:
        await self.read_once()
        self._first_read.set()
        while time.monotonic() - self._asked < self._window:
            await asyncio.sleep(self._interval)
            await self.read_once()

    async def _reading(self) -> None:
        self._asked = time.monotonic()
        if self._task is None or self._task.done():
            # Readings from before a pause would stretch the window over it.
            for traffic in self._traffic.values():
                traffic.readings.clear()
            self._first_read.clear()
            self._task = asyncio.create_task(self._run(), name="stack-status")
        await self._first_read.wait()

    async def GetStackStatus(
        self,
        request: stack_pb2.GetStackStatusRequest,
        context: grpc.aio.ServicerContext[
            stack_pb2.GetStackStatusRequest, stack_pb2.GetStackStatusResponse
        ],
    ) -> stack_pb2.GetStackStatusResponse:
        """Return the status over the window."""
        await self._reading()
        reply = stack_pb2.GetStackStatusResponse()
        for name, traffic in self._traffic.items():
            reply.services.append(traffic.status(name, serving=self._serving(name)))
            if traffic.readings:
                latest = traffic.readings[-1]
                reply.run_queue_depth += int(latest.gauges.get("run_queue_depth", 0))
                reply.outbox_oldest_age_seconds = max(
                    reply.outbox_oldest_age_seconds, latest.gauges.get("outbox_age", 0.0)
                )
                reply.subscribers += int(latest.subscribers)
        if self._read_time:
            stamp = Timestamp()
            stamp.FromNanoseconds(int(self._read_time * 1e9))
            reply.read_time.CopyFrom(stamp)
        return reply
