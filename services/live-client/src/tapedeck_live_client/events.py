"""Send a publisher's outbox of `tapedeck.live.v1.Event`s to the live service."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.channels import service_channel
from tapedeck_common.outbox import OutboxDrainer, Refused, Rejected, RetryLater
from tapedeck_common.request_ids import outgoing
from tapedeck_common.settings import secret_value

# Statuses a resend cannot fix: the event is parked with the reason instead of blocking the queue.
_REFUSED = (grpc.StatusCode.INVALID_ARGUMENT,)
# Statuses that say the service token is wrong: a configuration error, not a bad event.
_REJECTED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
_LIVE_SERVICE = "tapedeck.live.v1.LiveService"


class PublisherSettings(Protocol):
    """The settings of a service that publishes live events."""

    @property
    def live_address(self) -> str: ...

    @property
    def live_retry_max_seconds(self) -> float: ...

    @property
    def service_token(self) -> SecretStr | None: ...


class LiveEventsSender:
    """An outbox `Sender`: one AppendEvents call per batch (the live service stores all or none)."""

    def __init__(
        self, *, address: str, service_token: str | None, timeout_seconds: float = 10.0
    ) -> None:
        # Connects lazily, on first call; AppendEvents is idempotent on event_id.
        self._channel = service_channel(address, idempotent=[(_LIVE_SERVICE, "AppendEvents")])
        self._stub = live_pb2_grpc.LiveServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            () if service_token is None else (("authorization", f"Bearer {service_token}"),)
        )
        self._timeout = timeout_seconds

    async def send(self, events: Sequence[bytes]) -> None:
        """Append the events; AppendEvents is idempotent on event_id, so a resend is harmless."""
        request = live_pb2.AppendEventsRequest(
            events=[live_pb2.Event.FromString(event) for event in events]
        )
        try:
            await self._stub.AppendEvents(
                request, timeout=self._timeout, metadata=outgoing(self._metadata)
            )
        except grpc.aio.AioRpcError as error:
            reason = f"{error.code().name}: {error.details()}"
            if error.code() in _REFUSED:
                raise Refused(reason) from None
            if error.code() in _REJECTED:
                raise Rejected(reason) from None
            raise RetryLater(reason) from None

    async def wait_ready(self) -> None:
        """Watch the live service's health and return once it is serving again.

        A SERVING first answer on a connection that was already up says nothing new (the failure
        was not an outage), so it is skipped; after a reconnection or a non-SERVING status, SERVING
        returns. The watch waits for the connection, which is retried every 0.5 s at most.
        """
        serving = health_pb2.HealthCheckResponse.SERVING
        connected = self._channel.get_state() == grpc.ChannelConnectivity.READY
        while True:
            try:
                async for reply in self._health.Watch(
                    health_pb2.HealthCheckRequest(service=_LIVE_SERVICE),
                    wait_for_ready=True,
                    metadata=self._metadata,
                ):
                    if reply.status == serving and not connected:
                        return
                    connected = False
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    await asyncio.Event().wait()  # no health service: the backoff alone decides
            connected = False
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()


def start_live_events(
    settings: PublisherSettings, *, sessions: async_sessionmaker[AsyncSession], table: Table
) -> OutboxDrainer:
    """Start draining a service's outbox of live events to the live service its settings name.

    An empty address turns delivery off: the events stay in the outbox.
    """
    sender = (
        LiveEventsSender(
            address=settings.live_address, service_token=secret_value(settings.service_token)
        )
        if settings.live_address
        else None
    )
    return OutboxDrainer(
        sessions=sessions,
        table=table,
        sender=sender,
        retry_max_seconds=settings.live_retry_max_seconds,
    ).start()
