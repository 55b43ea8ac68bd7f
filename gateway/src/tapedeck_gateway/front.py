"""The gateway's front service: reflection over the contract, health aggregated from upstreams,
and the stack's status read from the services' metrics (`tapedeck.stack.v1.StackService`),
and WhoAmI (the caller's token name and role, for the browser app's header and disabled actions).

Envoy routes `grpc.reflection.*` and `grpc.health.v1.Health/*` here, so an operator talking to the
gateway's one address sees every service with `grpcurl list` and one health answer per service
(and "" for the whole stack). Each service still serves its own health and reflection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import tapedeck
from tapedeck.backtest.v1 import backtest_pb2
from tapedeck.common.v1 import common_pb2
from tapedeck.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from tapedeck.live.v1 import live_pb2
from tapedeck.stack.v1 import stack_pb2, stack_pb2_grpc
from tapedeck.wallets.v1 import wallets_pb2
from tapedeck_common.auth import TokenStore, current_principal
from tapedeck_common.interceptors import ServiceInterceptor
from tapedeck_gateway.documented_pool import DocumentedPool
from tapedeck_gateway.settings import FrontSettings
from tapedeck_gateway.stack_status import StackStatus

logger = logging.getLogger(__name__)

CONTRACT_SERVICES = (
    backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"].full_name,
    wallets_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name,
    live_pb2.DESCRIPTOR.services_by_name["LiveService"].full_name,
)
STACK_SERVICE = stack_pb2.DESCRIPTOR.services_by_name["StackService"].full_name
GATEWAY_SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
CONTRACT_DESCRIPTOR_SET = Path(tapedeck.__file__).parent / "contract.binpb"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RETRY_SECONDS = 1.0


@dataclass
class FrontApp:
    """The running front service and its upstream watchers."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    watchers: list[asyncio.Task[None]]
    grace_seconds: float
    stack: StackStatus

    async def stop(self) -> None:
        """Report NOT_SERVING, stop watching upstreams, stop the server."""
        await self.health.enter_graceful_shutdown()
        for task in self.watchers:
            task.cancel()
        for task in self.watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.stack.stop()
        await self.server.stop(self.grace_seconds)


class StackHealth:
    """Mirror each upstream's health into the library servicer; "" is SERVING when all are."""

    def __init__(self, servicer: health.aio.HealthServicer, upstreams: Mapping[str, str]) -> None:
        self._servicer = servicer
        self._upstreams = dict(upstreams)
        self._status = dict.fromkeys(upstreams, NOT_SERVING)

    def serving(self, name: str) -> bool:
        """Tell whether the upstream service reported SERVING last."""
        return bool(self._status.get(name) == SERVING)

    async def start(self) -> list[asyncio.Task[None]]:
        """Set every service NOT_SERVING and start one watcher per upstream."""
        for name in self._upstreams:
            await self._servicer.set(name, NOT_SERVING)
        await self._servicer.set("", NOT_SERVING)
        return [
            asyncio.create_task(self._watch(name, address), name=f"health-watch-{name}")
            for name, address in self._upstreams.items()
        ]

    async def _update(
        self, name: str, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        if self._status[name] != status:
            logger.info(
                "upstream health",
                extra={
                    "upstream": name,
                    "status": health_pb2.HealthCheckResponse.ServingStatus.Name(status),
                },
            )
        self._status[name] = status
        await self._servicer.set(name, status)
        whole = SERVING if all(s == SERVING for s in self._status.values()) else NOT_SERVING
        await self._servicer.set("", whole)

    async def _watch(self, name: str, address: str) -> None:
        # Health/Watch pushes every change; on any stream error the upstream counts as down
        # until a new stream reports otherwise.
        while True:
            try:
                async with grpc.aio.insecure_channel(address) as channel:
                    stub = health_pb2_grpc.HealthStub(channel)
                    async for reply in stub.Watch(health_pb2.HealthCheckRequest(service=name)):
                        await self._update(name, reply.status)
            except grpc.aio.AioRpcError:
                pass
            await self._update(name, NOT_SERVING)
            await asyncio.sleep(RETRY_SECONDS)


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """WhoAmI: the interceptor has authenticated the token; this names it."""

    async def WhoAmI(
        self,
        request: gateway_pb2.WhoAmIRequest,
        context: grpc.aio.ServicerContext[gateway_pb2.WhoAmIRequest, gateway_pb2.WhoAmIResponse],
    ) -> gateway_pb2.WhoAmIResponse:
        principal = current_principal.get()
        return gateway_pb2.WhoAmIResponse(
            name=principal.name, role=common_pb2.Role.ValueType(principal.role)
        )


async def start_front(settings: FrontSettings) -> FrontApp:
    """Start the front service with reflection over the contract and aggregated health."""
    host, port = settings.host, settings.port
    backtest, wallets, live = CONTRACT_SERVICES
    upstreams = {
        backtest: settings.backtest_address,
        wallets: settings.wallets_address,
        live: settings.live_address,
    }
    # Health and reflection are open; WhoAmI needs a known token (none in development).
    tokens = None if settings.tokens_file is None else TokenStore.from_file(settings.tokens_file)
    server = grpc.aio.server(interceptors=[ServiceInterceptor(tokens)])
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(GatewayServicer(), server)
    servicer = health.aio.HealthServicer()
    stack_health = StackHealth(servicer, upstreams)
    short = {backtest: "backtest", wallets: "wallets", live: "live"}
    metrics = {
        "backtest": settings.backtest_metrics_address,
        "wallets": settings.wallets_metrics_address,
        "live": settings.live_metrics_address,
    }
    full = {name: service for service, name in short.items()}
    stack = StackStatus(
        metrics={name: address for name, address in metrics.items() if address},
        serving=lambda name: stack_health.serving(full[name]),
        interval=settings.stack_status_seconds,
        window=settings.stack_status_window_seconds,
    )
    stack_pb2_grpc.add_StackServiceServicer_to_server(stack, server)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        (
            *CONTRACT_SERVICES,
            STACK_SERVICE,
            GATEWAY_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
        pool=DocumentedPool(CONTRACT_DESCRIPTOR_SET),
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    watchers = await stack_health.start()
    logger.info("front listening", extra={"address": f"{host}:{bound}"})
    return FrontApp(
        server=server,
        health=servicer,
        port=bound,
        watchers=watchers,
        grace_seconds=settings.shutdown_grace_seconds,
        stack=stack,
    )
