"""The grpc.aio server bootstrap every service uses: health, reflection, interceptors, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tapedeck_common.auth import TokenStore
from tapedeck_common.entrypoint import StartupError
from tapedeck_common.interceptors import ServiceInterceptor
from tapedeck_common.limits import MAX_HEADER_BYTES, MAX_REQUEST_BYTES
from tapedeck_common.metrics import MetricsInterceptor

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class GrpcService:
    """One service of the contract: its full name and the generated add_*_to_server."""

    name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]

    @classmethod
    def of(cls, pb2: ModuleType, pb2_grpc: ModuleType, service: str) -> GrpcService:
        """Return a service from its generated modules: `of(live_pb2, live_pb2_grpc, "LiveService")`."""
        return cls(
            name=pb2.DESCRIPTOR.services_by_name[service].full_name,
            add_to_server=getattr(pb2_grpc, f"add_{service}Servicer_to_server"),
        )


@dataclass(frozen=True)
class Registration:
    """One servicer to add and the contract service it implements."""

    service: GrpcService
    servicer: object


@dataclass
class RunningServer:
    """A started server and its health servicer."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    service_names: tuple[str, ...]
    interceptor: ServiceInterceptor

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls, then let in-flight calls finish for `grace` s.

        Once new calls are refused, server streams end at once (with a status telling their
        clients to call again), so the grace goes to the unary calls.
        """
        await self.health.enter_graceful_shutdown()
        stopped = asyncio.ensure_future(self.server.stop(grace))
        await asyncio.sleep(0)  # the server stops accepting calls in the first step of stop()
        self.interceptor.end_streams()
        await stopped


async def start_server(
    *,
    host: str,
    port: int,
    registrations: Sequence[Registration],
    tokens: TokenStore | None,
    access_log: bool = False,
) -> RunningServer:
    """Build and start the server with health SERVING for each service and for ""."""
    interceptor = ServiceInterceptor(tokens)
    server = grpc.aio.server(
        # The metrics interceptor is outermost: it sets the request id the other one logs.
        interceptors=[MetricsInterceptor(access_log=access_log), interceptor],
        options=[
            ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_metadata_size", MAX_HEADER_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    for registration in registrations:
        registration.service.add_to_server(registration.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(r.service.name for r in registrations)
    reflection.enable_server_reflection(
        (
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        raise StartupError(f"cannot listen on {host}:{port} (in use or not available)") from None
    await server.start()
    for name in (*names, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("listening", extra={"address": f"{host}:{bound}", "services": list(names)})
    return RunningServer(
        server=server,
        health=health_servicer,
        port=bound,
        service_names=names,
        interceptor=interceptor,
    )
