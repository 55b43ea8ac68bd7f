"""One benchmark server in its own process: the health servicer behind the interceptors of a variant.

    python -m bench.observability.server <bare|deployed|access-log>

`bare` has only the auth/error interceptor (the server before this change), `deployed` adds the
metrics interceptor as `start_server` does, `access-log` also writes a JSON line per call (to
/dev/null). Prints the port, then serves until killed.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tapedeck_common.interceptors import ServiceInterceptor
from tapedeck_common.logs import JsonFormatter
from tapedeck_common.metrics import MetricsInterceptor
from tapedeck_common.tracing import configure_tracing


async def serve(variant: str) -> None:
    unpatched = grpc.aio.server
    configure_tracing(service="bench")  # OTEL_EXPORTER_OTLP_ENDPOINT unset: tracing off
    assert grpc.aio.server is unpatched, "tracing off must not touch the server"
    interceptors: list[grpc.aio.ServerInterceptor] = [ServiceInterceptor(None)]
    if variant != "bare":
        interceptors.insert(0, MetricsInterceptor(access_log=variant == "access-log"))
    server = grpc.aio.server(interceptors=interceptors)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    sink = logging.StreamHandler(open("/dev/null", "w"))  # noqa: SIM115 - lives with the process
    sink.setFormatter(JsonFormatter("bench"))
    logging.getLogger().handlers[:] = [sink]
    logging.getLogger().setLevel(logging.INFO)
    asyncio.run(serve(sys.argv[1]))
