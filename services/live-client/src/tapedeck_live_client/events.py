"""Send a publisher's outbox of `tapedeck.live.v1.Event`s to the live service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc
from pydantic import SecretStr
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tapedeck.live.v1 import live_pb2, live_pb2_grpc
from tapedeck_common.channels import service_channel
from tapedeck_common.outbox import OutboxDrainer, Refused, RetryLater
from tapedeck_common.request_ids import outgoing
from tapedeck_common.settings import secret_value

# Statuses a resend cannot fix: the event is parked with the reason instead of blocking the queue.
_REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)


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
        self._channel = service_channel(
            address, idempotent=[("tapedeck.live.v1.LiveService", "AppendEvents")]
        )
        self._stub = live_pb2_grpc.LiveServiceStub(self._channel)
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
            raise RetryLater(reason) from None

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()


def start_live_events(
    settings: PublisherSettings, *, sessions: async_sessionmaker[AsyncSession], table: Table
) -> OutboxDrainer:
    """Start draining a service's outbox of live events to the live service its settings name."""
    sender = LiveEventsSender(
        address=settings.live_address, service_token=secret_value(settings.service_token)
    )
    return OutboxDrainer(
        sessions=sessions,
        table=table,
        sender=sender,
        retry_max_seconds=settings.live_retry_max_seconds,
    ).start()
