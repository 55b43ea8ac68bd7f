"""Prometheus metrics of a service: every call timed and counted by one interceptor, domain
gauges sampled in the background, all served on the service's own HTTP port.

Label values are bounded: `service` and `method` come from the contract (only registered
methods reach the interceptor), `code` is a gRPC status name, and domain labels are enums.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tapedeck_common.entrypoint import StartupError
from tapedeck_common.interceptors import stream_handler, unary_handler
from tapedeck_common.request_ids import current_request_id, from_metadata

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from tapedeck_common.interceptors import Context, Continuation, Handler

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("tapedeck.access")

# From a cached read (~0.5 ms) to a backtest watched for minutes.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300)

RPC_DURATION = Histogram(
    "tapedeck_rpc_duration_seconds",
    "Time from a call's arrival to its status, by service, method and status code.",
    ("service", "method", "code"),
    buckets=_LATENCY_BUCKETS,
)

POOL_WAITS = Histogram(
    "tapedeck_db_pool_wait_seconds",
    "Time a request waited for a database connection because the pool had handed out all it"
    " may (timeouts included); the count is the number of waits.",
    buckets=_LATENCY_BUCKETS,
)


def hits_and_misses(name: str, documentation: str) -> tuple[Counter, Counter]:
    """Return the hit and miss children of a cache's `<name>_total{result}` counter."""
    lookups = Counter(name, documentation, ("result",))
    return lookups.labels("hit"), lookups.labels("miss")


RPC_IN_FLIGHT = Gauge(
    "tapedeck_rpc_in_flight_calls",
    "Calls being served now, streams included.",
    ("service", "method"),
)
RPC_OPEN_STREAMS = Gauge(
    "tapedeck_rpc_open_streams",
    "Server streams open now.",
    ("service", "method"),
)


@dataclass
class _Method:
    service: str
    method: str
    in_flight: Gauge
    streams: Gauge
    durations: dict[str, Histogram] = field(default_factory=dict)

    def observe(self, code: str, seconds: float) -> None:
        histogram = self.durations.get(code)
        if histogram is None:
            histogram = self.durations[code] = RPC_DURATION.labels(self.service, self.method, code)
        histogram.observe(seconds)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Serve each call under its request id; time it, count it by status code, and log it."""

    def __init__(self, *, access_log: bool) -> None:
        self._access_log = access_log
        self._methods: dict[str, _Method] = {}

    def _method(self, full: str) -> _Method:
        known = self._methods.get(full)
        if known is None:
            service, _, method = full.lstrip("/").partition("/")
            known = self._methods[full] = _Method(
                service=service,
                method=method,
                in_flight=RPC_IN_FLIGHT.labels(service, method),
                streams=RPC_OPEN_STREAMS.labels(service, method),
            )
        return known

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = self._method(handler_call_details.method)
        request_id = from_metadata(handler_call_details.invocation_metadata)
        if handler.unary_unary is not None:
            unary: Any = handler.unary_unary

            async def unary_behavior(request: Any, context: Context) -> Any:
                current_request_id.set(request_id)
                started = time.perf_counter()
                method.in_flight.inc()
                code = "UNKNOWN"
                try:
                    response = await unary(request, context)
                    code = _code(context)
                    return response
                except BaseException as error:
                    code = _failed(context, error)
                    raise
                finally:
                    method.in_flight.dec()
                    self._done(method, code, started)

            return unary_handler(handler, unary_behavior)
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def stream_behavior(request: Any, context: Context) -> AsyncIterator[Any]:
                current_request_id.set(request_id)
                started = time.perf_counter()
                method.in_flight.inc()
                method.streams.inc()
                code = "UNKNOWN"
                try:
                    async for response in stream(request, context):
                        yield response
                    code = _code(context)
                except BaseException as error:
                    code = _failed(context, error)
                    raise
                finally:
                    method.streams.dec()
                    method.in_flight.dec()
                    self._done(method, code, started)

            return stream_handler(handler, stream_behavior)
        return handler

    def _done(self, method: _Method, code: str, started: float) -> None:
        seconds = time.perf_counter() - started
        method.observe(code, seconds)
        if self._access_log:
            access_logger.info(
                "%s/%s %s",
                method.service,
                method.method,
                code,
                extra={
                    "rpc": f"{method.service}/{method.method}",
                    "code": code,
                    "seconds": seconds,
                },
            )


def _code(context: Context) -> str:
    code = context.code()  # None until a handler sets or aborts with one
    return "OK" if code is None else code.name


def _failed(context: Context, error: BaseException) -> str:
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    # Anything but an abort reaches grpc as an exception, which answers UNKNOWN.
    return "UNKNOWN" if code is None else code.name


Sample = tuple[tuple[str, ...], float]
"""One sampled value: its label values and the value."""


@dataclass(frozen=True)
class Probe:
    """A gauge family whose values come from an async query run in the background."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    read: Callable[[], Awaitable[Iterable[Sample]]]
    due: Callable[[], bool] | None = None
    """None: read at every sample. Else read only when it says the values may have changed since
    the last read, so a gauge of database rows costs no transaction while nothing changes."""


class _Sampled(Collector):
    """The registry's view of every running sampler (one per service; tests run several)."""

    def __init__(self) -> None:
        self.samplers: set[Sampler] = set()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for sampler in list(self.samplers):
            for probe, samples in sampler.latest():
                family = families.get(probe.name)
                if family is None:
                    family = families[probe.name] = GaugeMetricFamily(
                        probe.name, probe.documentation, labels=probe.labels
                    )
                for labels, value in samples:
                    family.add_metric(list(labels), value)
        yield from families.values()


_SAMPLED = _Sampled()
REGISTRY.register(_SAMPLED)


class Sampler:
    """Run a service's probes every `interval` seconds and expose their latest values.

    Queries run on the service's event loop and scrapes only read the last values, so a scrape
    never touches the database and a slow database never blocks a scrape. A probe that is not
    due keeps its last values: at rest, sampling reads nothing from the database.
    """

    def __init__(self, probes: Sequence[Probe], *, interval: float) -> None:
        self._probes = tuple(probes)
        self._interval = interval
        self._latest: dict[str, list[Sample]] = {}
        self._task: asyncio.Task[None] | None = None

    async def sample(self) -> None:
        """Run every due probe once; a failing probe keeps its last values and is logged."""
        # Asked up front: a read may settle what another probe's `due` looks at.
        due = [probe.due is None or probe.due() for probe in self._probes]
        for probe, read_now in zip(self._probes, due, strict=True):
            if not read_now:
                continue
            try:
                self._latest[probe.name] = list(await probe.read())
            except Exception:
                logger.warning("metrics probe %s failed", probe.name, exc_info=True)

    def start(self) -> Sampler:
        """Sample in the background; scrapes show the values from now on."""
        _SAMPLED.samplers.add(self)
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")
        return self

    async def stop(self) -> None:
        """Stop sampling; scrapes no longer show this sampler's values."""
        _SAMPLED.samplers.discard(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def latest(self) -> Iterator[tuple[Probe, list[Sample]]]:
        """Yield each probe with its latest values."""
        for probe in self._probes:
            yield probe, self._latest.get(probe.name, [])

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._interval)


@dataclass
class MetricsServer:
    """The HTTP server of `/metrics` and the port it listens on."""

    server: WSGIServer
    port: int

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(*, host: str, port: int) -> MetricsServer | None:
    """Serve the process's metrics over HTTP on host:port; port 0 means metrics are off."""
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError:
        raise StartupError(
            f"cannot serve metrics on {host}:{port} (in use or not available)"
        ) from None
    logger.info("metrics", extra={"address": f"{host}:{server.server_port}"})
    return MetricsServer(server=server, port=server.server_port)
